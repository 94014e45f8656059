"""Streaming recognition (speechrecipe.streaming, endpoint, online CMVN, CTCModel.step) on real FSDD audio
with tiny models trained here: the stream gives the decode stage's text, chunk sizes do not matter,
endpoints split a stream into its utterances, bidirectional models are served by decoding again."""

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as AF
from test_transcribe import FEATURES, concatenate, decode_stage, fsdd_wav, train_tiny_model

from speechrecipe.audio import read_audio, resample
from speechrecipe.cmvn import ONLINE_PRIOR_FRAMES, OnlineCMVN, normalize
from speechrecipe.config import ModelConfig
from speechrecipe.endpoint import EndpointConfig
from speechrecipe.fileio import read_table
from speechrecipe.inputs import Source
from speechrecipe.model.network import CTCModel
from speechrecipe.recognizer import Recognizer
from speechrecipe.streaming import StreamingRecognizer, StreamingResampler, is_streamable
from speechrecipe.transcriber import Transcriber

NO_ENDPOINT = EndpointConfig(trailing_silence=0, silence_timeout=0, max_utterance=0)


@pytest.fixture(scope="module")
def streaming(streaming_exp):
    recognizer = Recognizer.load(streaming_exp)
    assert is_streamable(recognizer) and recognizer.cmvn_mode == "online"
    return recognizer


def stream(recognizer, samples, rate, chunk_sizes, endpoint=NO_ENDPOINT):
    """Feed ``samples`` in chunks of the given sizes (cycled); the ended utterances, the last by eof."""
    recognizer = StreamingRecognizer(recognizer, rate, endpoint)
    results, start, i = [], 0, 0
    while start < len(samples):
        size = chunk_sizes[i % len(chunk_sizes)]
        if recognizer.accept_waveform(samples[start : start + size]):
            results.append(recognizer.result())
        start, i = start + size, i + 1
    results.append(recognizer.final_result())
    return results


# --- online CMVN --------------------------------------------------------------------------------------------------


def test_online_cmvn_gives_the_same_numbers_in_one_call_or_in_pieces():
    rng = np.random.default_rng(0)
    feats = rng.normal(5.0, 3.0, (400, 13)).astype(np.float32)
    mean, std = rng.normal(0, 1, 13).astype(np.float32), rng.uniform(0.5, 2, 13).astype(np.float32)
    whole = normalize(feats, "online", None, (mean, std))
    assert whole.dtype == np.float32 and whole.shape == feats.shape
    for sizes in ([1], [7, 0, 13], [399, 1]):
        cmvn, pieces, start, i = OnlineCMVN(mean, std), [], 0, 0
        while start < len(feats):
            pieces.append(cmvn.process(feats[start : start + sizes[i % len(sizes)]]))
            start, i = start + sizes[i % len(sizes)], i + 1
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
    # Frame 0 is normalized by the prior plus itself; frame t only by frames up to t (causal).
    n0, x0 = ONLINE_PRIOR_FRAMES, feats[0].astype(np.float64)
    m = (n0 * mean + x0) / (n0 + 1)
    v = (n0 * (std.astype(np.float64) ** 2 + mean.astype(np.float64) ** 2) + x0**2) / (n0 + 1) - m**2
    np.testing.assert_allclose(whole[0], (x0 - m) / np.sqrt(v), rtol=1e-5)
    changed = feats.copy()
    changed[200:] += 100
    np.testing.assert_array_equal(normalize(changed, "online", None, (mean, std))[:200], whole[:200])
    # As the utterance goes on its own statistics weigh more: a level shift of the input fades out.
    effect = np.abs(normalize(feats + 20, "online", None, (mean, std)) - whole)
    assert effect[-50:].mean() < 0.5 * effect[:50].mean()


# --- the pieces of the stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rates", [(22050, 8000), (44100, 16000), (8000, 16000), (16000, 8000)])
def test_the_resampler_streams_what_torchaudio_gives_for_the_whole(fsdd_recordings, rates):
    samples, _ = read_audio(str(fsdd_wav(fsdd_recordings, 7)))
    samples = np.tile(samples, 2)
    resampler, pieces, start = StreamingResampler(*rates), [], 0
    for size in [1, 333, 4410, 17, 2000] * 50:
        if start >= len(samples):
            break
        pieces.append(resampler.process(samples[start : start + size]))
        start += size
    pieces.append(resampler.flush())
    streamed = np.concatenate(pieces)
    whole = AF.resample(torch.from_numpy(samples), *rates).numpy()
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_the_step_api_computes_what_forward_computes():
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(input_dim=20, vocab_size=12, hidden=32, layers=2, bidirectional=False)).eval()
    feats = torch.randn(1, 100, 20)  # 100 frames: the last stack of 3 is incomplete
    with torch.no_grad():
        whole, lengths = model(feats, torch.tensor([100]))
        for sizes in ([3], [30, 6, 12], [99, 1]):
            state, pieces, start, i = None, [], 0, 0
            while start < 100:
                log_probs, state = model.step(feats[:, start : start + sizes[i % len(sizes)]], state)
                pieces.append(log_probs)
                start, i = start + sizes[i % len(sizes)], i + 1
            streamed = torch.cat(pieces, dim=1)
            assert streamed.shape == whole.shape and int(lengths[0]) == 34
            # The same operations on the same numbers; only the sizes of the matrix products differ.
            torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)
    bidirectional = CTCModel(ModelConfig(input_dim=20, vocab_size=12, hidden=8, layers=1))
    assert not bidirectional.streamable
    with pytest.raises(ValueError, match="bidirectional: false"):
        bidirectional.step(feats[:, :3])


# --- streaming equals offline on real recordings -----------------------------------------------------------------


@pytest.mark.parametrize("subset", ["train", "dev"])
def test_streaming_gives_the_text_of_the_decode_stage(streaming, streaming_exp, fsdd_features, tmp_path, subset):
    offline = decode_stage(
        streaming_exp, fsdd_features / "fbank" / subset, tmp_path / "hyp.txt", '{"method": "greedy"}'
    )
    wav_scp = read_table(fsdd_features / "data" / subset / "wav.scp")
    streamed = {}
    for n, (utt, path) in enumerate(sorted(wav_scp.items())):
        samples, rate = read_audio(path)
        # 0.2 s chunks as Vosk's clients send them, and odd sizes that cut frames and stacks anywhere.
        chunks = [1600] if n % 2 else [1, 97, 555, 80, 3001]
        [result] = stream(streaming, samples, rate, chunks)
        assert result.endpoint == "eof"
        streamed[utt] = result.text
    assert streamed == offline
    if subset == "train":  # the comparison means something only if the model says something
        assert sum(bool(text) for text in offline.values()) >= 0.8 * len(offline)


def test_streamed_log_probs_are_those_of_one_pass(streaming, fsdd_recordings):
    samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, 4, "george", 8)))
    transcriber = Transcriber(streaming, method="greedy")
    feats = transcriber.features(samples, rate)
    with torch.no_grad():
        whole, _ = streaming.model(torch.from_numpy(feats)[None], torch.tensor([len(feats)]))
    recognizer = StreamingRecognizer(streaming, rate, NO_ENDPOINT)
    for start in range(0, len(samples), 1600):
        recognizer.accept_waveform(samples[start : start + 1600])
    utterance = recognizer.utterance
    recognizer.final_result()
    streamed = utterance.all_log_probs()
    assert streamed.shape == whole[0].shape
    # Features of a chunk's frames differ from one pass's by BLAS rounding only (MFCC ~5e-5, fbank ~2e-6).
    torch.testing.assert_close(streamed, whole[0], atol=1e-3, rtol=0)


def test_a_stream_at_another_rate_is_resampled_as_a_file_is(streaming, fsdd_recordings, tmp_path):
    transcriber = Transcriber(streaming, method="greedy")
    for digit in (2, 5, 8):
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit, "george", 9)))
        upsampled = resample(samples, rate, 22050)
        [result] = stream(streaming, upsampled, 22050, [4410])
        assert result.text == transcriber.decode_text(upsampled, 22050)


def test_asr_transcribe_carries_the_state_over_chunks_of_a_long_recording(streaming, fsdd_recordings, tmp_path):
    samples, rate = concatenate([fsdd_wav(fsdd_recordings, d, "jackson", 6) for d in range(10)], 0.3)
    soundfile.write(tmp_path / "long.wav", samples, rate)
    one_pass = Transcriber(streaming, method="greedy", chunk_seconds=1000)
    chunked = Transcriber(streaming, method="greedy", chunk_seconds=1.0, overlap_seconds=0.1)
    feats = one_pass.features(samples, rate)
    assert len(feats) > 5 * chunked.chunk_frames
    torch.testing.assert_close(chunked.log_probs(feats), one_pass.log_probs(feats), atol=1e-5, rtol=0)
    source = Source("long", str(tmp_path / "long.wav"))
    assert chunked.transcribe(source).text == one_pass.transcribe(source).text != ""


# --- endpoints ----------------------------------------------------------------------------------------------------


def test_endpoints_split_a_stream_into_its_utterances(streaming, fsdd_recordings):
    pieces, onsets = [], []
    for digit, speaker, take in [(3, "george", 5), (7, "jackson", 6), (1, "george", 7)]:
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit, speaker, take)))
        onsets.append(sum(map(len, pieces)) / rate)
        pieces += [samples, np.zeros(int(1.5 * rate), np.float32)]  # 1.5 s of silence after each
    audio = np.concatenate(pieces)
    results = stream(streaming, audio, rate, [1600], EndpointConfig(trailing_silence=0.8))
    ended = [r for r in results if r.endpoint == "trailing_silence"]
    assert len(ended) == 3 and all(r.text for r in ended)  # each digit its own utterance
    assert results[-1].endpoint == "eof" and results[-1].text == ""
    # Each utterance is recognized as a recording of its own (fresh CMVN and LSTM state): its text is
    # the offline text of the audio it spans, and the times run on over the whole stream.
    transcriber = Transcriber(streaming, method="greedy")
    window_extra = 200 - 80  # the last frame's window reaches past its 10 ms hop (25 ms at 8 kHz)
    previous_end = 0.0
    for r, onset in zip(ended, onsets):
        assert r.start <= onset < r.start + r.seconds
        first = round(r.start * rate)
        assert r.text == transcriber.decode_text(audio[first : first + round(r.seconds * rate) + window_extra], rate)
        assert r.start == pytest.approx(previous_end) and r.seconds > 0.8
        (word, w_start, w_end, conf), *_ = r.words
        assert word == r.text.split()[0] and r.start <= w_start < w_end <= r.start + r.seconds and 0 < conf <= 1
        previous_end = r.start + r.seconds


def test_an_utterance_ends_at_the_length_limit(streaming):
    rate = 8000
    noise = np.random.default_rng(0).normal(0, 0.1, 5 * rate).astype(np.float32)
    results = stream(streaming, noise, rate, [1600], EndpointConfig(trailing_silence=0, max_utterance=2.0))
    assert [r.endpoint for r in results] == ["max_utterance", "max_utterance", "eof"]
    assert all(2.0 <= r.seconds < 2.3 for r in results[:2])


def test_endpoint_rules_are_checked():
    with pytest.raises(ValueError, match="trailing_silence"):
        EndpointConfig(trailing_silence=-1)
    rules = EndpointConfig(trailing_silence=1.0, silence_timeout=5.0, max_utterance=20.0)
    assert rules.rule_reached(3.0, 0.9, True) is None
    assert rules.rule_reached(3.0, 1.0, True) == "trailing_silence"
    assert rules.rule_reached(4.0, 4.0, False) is None
    assert rules.rule_reached(5.0, 5.0, False) == "silence_timeout"
    assert rules.rule_reached(20.0, 0.0, True) == "max_utterance"


# --- bidirectional models: decoded again at every chunk -----------------------------------------------------------


def test_a_bidirectional_model_is_served_by_decoding_again(fsdd_features, fsdd_recordings, tmp_path_factory):
    recognizer = Recognizer.load(train_tiny_model(fsdd_features, tmp_path_factory.mktemp("blstm"), "speaker"))
    assert not is_streamable(recognizer)
    transcriber = Transcriber(recognizer, method="greedy")
    for digit in (0, 6, 9):
        samples, rate = read_audio(str(fsdd_wav(fsdd_recordings, digit, "george", 5)))
        [result] = stream(recognizer, samples, rate, [1600])
        assert result.text == transcriber.decode_text(samples, rate)
    # Partials along the way are the decoding of the audio so far.
    stream_recognizer = StreamingRecognizer(recognizer, rate, NO_ENDPOINT)
    stream_recognizer.accept_waveform(samples[: len(samples) // 2])
    assert stream_recognizer.partial() == transcriber.decode_text(samples[: len(samples) // 2], rate)
    assert FEATURES["sample_rate"] == rate
