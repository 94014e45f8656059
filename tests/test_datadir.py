"""Data directories: a valid one passes, each kind of breakage is reported with file, line and fix."""

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import kaldi_validate_data_dir
from speechrecipe.audio import AudioError, check_audio_entry, duration, read_audio
from speechrecipe.datadir import BOM, DataDir, DataDirError, normalize_table, validate

RATE = 16000


def tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def good(tmp_path) -> Path:
    """A valid data dir: 2 speakers, 3 utterances, real WAV files (one in a folder with a space)."""
    audio = tmp_path / "audio files"
    audio.mkdir()
    lengths = {"spkA-u1": 0.5, "spkA-u2": 0.25, "spkB-u1": 0.75}
    d = DataDir()
    for utt, seconds in lengths.items():
        path = audio / f"{utt}.wav"
        soundfile.write(path, tone(seconds), RATE, subtype="PCM_16")
        d.wav_scp[utt] = str(path)
        d.text[utt] = {"spkA-u1": "HELLO WORLD", "spkA-u2": "DON'T", "spkB-u1": "ONE TWO THREE"}[utt]
        d.utt2spk[utt] = utt.split("-")[0]
        d.utt2dur[utt] = seconds
    d.save(tmp_path / "data")
    return tmp_path / "data"


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, rows: list[str]) -> None:
    path.write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")


def problem(data: Path) -> str:
    with pytest.raises(DataDirError) as info:
        validate(data)
    return str(info.value)


def test_valid_dir_validates_and_loads(good):
    assert sorted(p.name for p in good.iterdir()) == ["spk2utt", "text", "utt2dur", "utt2spk", "wav.scp"]
    assert lines(good / "spk2utt") == ["spkA spkA-u1 spkA-u2", "spkB spkB-u1"]
    d = validate(good)
    assert d.utterances == ["spkA-u1", "spkA-u2", "spkB-u1"]
    assert d.text["spkA-u2"] == "DON'T"
    assert d.utt2dur == {"spkA-u1": 0.5, "spkA-u2": 0.25, "spkB-u1": 0.75}
    assert " " in d.wav_scp["spkA-u1"]  # the path with a space survives the round trip
    for utt, entry in d.wav_scp.items():
        assert duration(entry) == pytest.approx(d.utt2dur[utt])
    assert d.summary() == "3 utterances, 2 speakers, 0.000 hours"


def test_unsorted_ids(good):
    rows = lines(good / "text")
    write_lines(good / "text", [rows[1], rows[0], rows[2]])
    message = problem(good)
    assert f"{good / 'text'} line 2: 'spkA-u1' comes after 'spkA-u2'" in message
    assert "LC_ALL=C sort" in message


def test_duplicate_ids(good):
    rows = lines(good / "utt2spk")
    write_lines(good / "utt2spk", [rows[0], rows[0], *rows[1:]])
    assert f"{good / 'utt2spk'} line 2: duplicate key 'spkA-u1' (first on line 1)" in problem(good)


def test_missing_audio_file(good):
    (good.parent / "audio files" / "spkA-u2.wav").unlink()
    message = problem(good)
    assert f"{good / 'wav.scp'} line 2: 'spkA-u2': audio file" in message
    assert "does not exist" in message


def test_a_tab_after_the_id_and_an_empty_transcript_are_accepted_as_kaldi_accepts_them(good, caplog):
    rows = lines(good / "text")
    write_lines(good / "text", [rows[0].replace(" ", "\t", 1), "spkA-u2", rows[2].replace(" ", " \t  ", 1)])
    wav_scp = lines(good / "wav.scp")
    write_lines(good / "wav.scp", [wav_scp[0].replace(" ", "\t", 1), *wav_scp[1:]])
    accepted, kaldi_says = kaldi_validate_data_dir(good)
    assert accepted, kaldi_says
    with caplog.at_level(logging.INFO):
        d = validate(good)
    assert d.text == {"spkA-u1": "HELLO WORLD", "spkA-u2": "", "spkB-u1": "ONE TWO THREE"}
    assert d.wav_scp["spkA-u1"] == str(good.parent / "audio files" / "spkA-u1.wav")  # the space in it kept
    assert f"{good / 'text'}: 1 utterance(s) with an empty transcript, kept as Kaldi keeps them" in caplog.text


def test_byte_order_mark_is_named_not_taken_for_a_wrong_id(good):
    (good / "text").write_bytes(BOM + (good / "text").read_bytes())
    assert not kaldi_validate_data_dir(good)[0]
    message = problem(good)
    assert "1 problem(s)" in message, message  # not the sorting and missing-id messages it used to cause
    assert f"{good / 'text'} line 1: the file starts with a UTF-8 byte-order mark" in message
    assert "Fix: save the file as UTF-8 without BOM" in message and "local/kaldi.py" in message
    assert validate(good, tolerate_normalizable=True).text["spkA-u1"] == "HELLO WORLD"


def test_crlf_line_ends_are_named(good):
    for table in ("text", "utt2spk"):
        (good / table).write_bytes((good / table).read_bytes().replace(b"\n", b"\r\n"))
    assert not kaldi_validate_data_dir(good)[0]
    message = problem(good)
    assert "2 problem(s)" in message, message
    for table in ("text", "utt2spk"):
        assert f"{good / table} line 1: carriage return (CRLF line ends) on 3 of 3 line(s)" in message
    assert "dos2unix" in message and "local/kaldi.py" in message
    d = validate(good, tolerate_normalizable=True)
    assert d.text["spkB-u1"] == "ONE TWO THREE" and d.utt2spk["spkB-u1"] == "spkB"


def test_last_line_without_newline_is_named(good):
    (good / "utt2spk").write_bytes((good / "utt2spk").read_bytes().rstrip(b"\n"))
    assert not kaldi_validate_data_dir(good)[0]
    message = problem(good)
    assert f"{good / 'utt2spk'} line 3: no newline at the end of the last line" in message
    validate(good, tolerate_normalizable=True)


def test_normalize_table_makes_what_kaldi_tolerates_canonical_and_counts_each_change():
    raw = BOM + b"u1\tHELLO  WORLD\r\nu2 \t\r\nu3 x\r\nu4   y z"
    fixed, changed = normalize_table(raw)
    assert fixed == b"u1 HELLO  WORLD\nu2\nu3 x\nu4 y z\n"  # spaces inside the value are the value's
    assert changed == Counter(bom=1, crlf=3, separator=3, final_newline=1)
    assert normalize_table(fixed) == (fixed, Counter())


def test_utt2spk_spk2utt_mismatch(good):
    write_lines(good / "spk2utt", ["spkA spkA-u1", "spkB spkA-u2 spkB-u1"])
    message = problem(good)
    assert f"{good / 'spk2utt'} line 2: lists 'spkA-u2' under speaker 'spkB', but utt2spk says 'spkA'" in message
    assert f"{good / 'utt2spk'} line 2: 'spkA-u2' (speaker 'spkA') is missing from spk2utt" in message
    assert "utt2spk_to_spk2utt.pl" in message


def test_unreadable_wav(good):
    (good.parent / "audio files" / "spkB-u1.wav").write_bytes(b"this is not a RIFF header at all" * 10)
    message = problem(good)
    assert f"{good / 'wav.scp'} line 3: 'spkB-u1': audio file" in message
    assert "cannot be read" in message


def test_zero_length_wav(good):
    soundfile.write(good.parent / "audio files" / "spkA-u1.wav", np.zeros(0, np.float32), RATE, subtype="PCM_16")
    message = problem(good)
    assert f"{good / 'wav.scp'} line 1: 'spkA-u1': audio file" in message
    assert "is empty (0 samples)" in message


def test_speaker_not_a_prefix(good):
    write_lines(good / "utt2spk", ["spkA-u1 spkA", "spkA-u2 carol", "spkB-u1 spkB"])
    write_lines(good / "spk2utt", ["carol spkA-u2", "spkA spkA-u1", "spkB spkB-u1"])
    message = problem(good)
    assert f"{good / 'utt2spk'} line 2: speaker 'carol' is not a prefix of utterance 'spkA-u2'" in message


def test_utterance_order_must_be_speaker_order(tmp_path):
    # '_' sorts after digits: utterances 84_a < 841_a would need speakers 84 > 841.
    audio = tmp_path / "a.wav"
    soundfile.write(audio, tone(0.1), RATE)
    d = DataDir(
        wav_scp={"841_a": str(audio), "84_a": str(audio)},
        text={"841_a": "A", "84_a": "B"},
        utt2spk={"841_a": "841", "84_a": "84"},
    )
    d.save(tmp_path / "data")
    message = problem(tmp_path / "data")
    assert f"{tmp_path / 'data' / 'utt2spk'} line 2: utterance '84_a' of speaker '84' comes after '841_a'" in message


def test_non_utf8_text(good):
    raw = (good / "text").read_bytes().replace(b"HELLO", "H\u00c9LLO".encode("latin-1"))
    (good / "text").write_bytes(raw)
    message = problem(good)
    assert f"{good / 'text'} line 1: not valid UTF-8" in message
    assert "iconv" in message


def test_text_and_wav_scp_cover_different_utterances(good):
    rows = lines(good / "wav.scp")
    extra = f"spkB-u2 {good.parent / 'audio files' / 'spkB-u1.wav'}"
    write_lines(good / "wav.scp", [rows[0], rows[2], extra])  # spkA-u2 dropped, spkB-u2 added
    message = problem(good)
    assert f"{good / 'text'} line 2: utterance 'spkA-u2' has no entry in {good / 'wav.scp'}" in message
    assert f"{good / 'wav.scp'} line 3: utterance 'spkB-u2' has no entry in {good / 'text'}" in message


def test_every_problem_is_reported_at_once(good):
    rows = lines(good / "text")
    write_lines(good / "text", [rows[1], rows[0], "spkB-u1 ONE\x07TWO"])
    (good.parent / "audio files" / "spkA-u1.wav").unlink()
    message = problem(good)
    assert "3 problem(s)" in message
    assert "line 2: 'spkA-u1' comes after" in message
    assert "line 3: non-printable character '\\x07' in the transcript of 'spkB-u1'" in message
    assert "does not exist" in message


def test_save_drops_stale_optional_tables(good):
    d = validate(good)
    d.utt2dur = {}
    d.save(good)
    assert not (good / "utt2dur").exists()
    validate(good)


def test_read_audio_mixes_stereo_down(tmp_path):
    left, right = np.full(800, 0.5, np.float32), np.full(800, -0.1, np.float32)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), RATE, subtype="PCM_16")
    samples, rate = read_audio(str(tmp_path / "stereo.wav"))
    assert rate == RATE
    assert samples.dtype == np.float32 and samples.shape == (800,)
    assert samples == pytest.approx(np.full(800, 0.2), abs=1e-4)


def test_read_audio_returns_the_file_rate_and_resamples_on_request(tmp_path):
    soundfile.write(tmp_path / "lj.wav", tone(0.5, rate=22050), 22050, subtype="PCM_16")
    samples, rate = read_audio(str(tmp_path / "lj.wav"))
    assert rate == 22050 and len(samples) == 11025
    resampled, rate = read_audio(str(tmp_path / "lj.wav"), rate=16000)
    assert rate == 16000 and len(resampled) == 8000
    # the segment form reads start..end seconds
    part, rate = read_audio(str(tmp_path / "lj.wav"), 0.1, 0.3)
    assert rate == 22050 and len(part) == 4410


def test_read_audio_path_with_spaces_and_errors(tmp_path):
    folder = tmp_path / "my recordings"
    folder.mkdir()
    soundfile.write(folder / "take 1.wav", tone(0.2), RATE, subtype="PCM_16")
    entry = str(folder / "take 1.wav")
    samples, rate = read_audio(entry)
    assert rate == RATE and len(samples) == 3200 and np.abs(samples).max() == pytest.approx(0.3, abs=1e-3)
    assert check_audio_entry(entry) is None
    with pytest.raises(AudioError, match="no such file"):
        read_audio(str(folder / "take 2.wav"))
    with pytest.raises(AudioError, match="holds no samples"):
        read_audio(entry, 0.15, 0.05)  # an inverted segment is empty, not the whole file


def test_read_audio_pipe(tmp_path):
    soundfile.write(tmp_path / "a.wav", tone(0.25), RATE, subtype="PCM_16")
    samples, rate = read_audio(f"cat '{tmp_path / 'a.wav'}' |")
    assert rate == RATE and len(samples) == 4000
    assert duration(f"cat '{tmp_path / 'a.wav'}' |") == pytest.approx(0.25)
