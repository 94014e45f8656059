"""Additive noise: noise sources, mixing at a signal-to-noise ratio, generated noise.

A noisy copy of a data set is made utterance by utterance. What each utterance
gets (noise file, offset into it, SNR) is drawn from a random generator seeded
by ``(seed, utterance id)`` alone, so it does not depend on the order, the
number of jobs or on which other utterances exist, and it is written to the
set's ``utt2noise`` so that any noisy utterance can be rebuilt exactly
(:func:`rebuild`).

Noise sources are audio files, or directories of them. When a recipe names
none, :func:`generate` makes white, pink and babble noise (babble: several
training utterances summed), written as files so that they too are ordinary,
inspectable noise files.

SNR is the ratio of the utterance's mean power to the mean power of the noise
segment added to it, over the whole utterance (silences included, as in the
Aurora and CHiME simulations). A mixture that would clip is scaled down as a
whole, which keeps its SNR.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".aiff", ".aif")
GENERATED_TYPES = ("white", "pink", "babble")
MIN_NOISE_POWER = 1e-12  # below this a noise file is silent and no gain makes it reach an SNR
PEAK = 0.99  # mixtures are scaled below full scale so that 16-bit PCM never clips


class NoiseError(ValueError):
    """A noise source is missing, empty, unreadable or silent."""


def noise_files(sources: list[str | Path]) -> list[Path]:
    """The audio files of ``sources`` (files, or directories searched recursively), sorted.

    Raises :class:`NoiseError`, naming the source and the fix, for a source that does not exist,
    a directory without audio files, and a file soundfile cannot read or that holds no samples.
    Header reads only: checking a noise folder takes milliseconds.
    """
    if not sources:
        raise NoiseError(
            "no noise sources given. Fix: set noise.noise_dirs to folders of noise recordings, "
            "or leave it empty in config to use generated white, pink and babble noise"
        )
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise NoiseError(
                f"noise source '{source}' does not exist. Fix: correct the path in noise.noise_dirs "
                "or noise.test_noise_dirs (relative paths are relative to the working directory)"
            )
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise NoiseError(
                    f"noise directory '{source}' holds no audio files ({', '.join(AUDIO_SUFFIXES)}). "
                    "Fix: point the config at a folder of noise recordings"
                )
            files += found
        else:
            files.append(path)
    for path in files:
        try:
            info = soundfile.info(str(path))
        except Exception as e:
            raise NoiseError(
                f"noise file '{path}' cannot be read ({e}). Fix: re-encode it as WAV or FLAC, "
                "or remove it from the noise folder"
            ) from e
        if info.frames == 0:
            raise NoiseError(f"noise file '{path}' is empty (0 samples). Fix: remove it from the noise folder")
    return sorted(dict.fromkeys(files))


def load_noise(path: str | Path, rate: int) -> np.ndarray:
    """A noise file as float32 mono at ``rate`` (resampled when needed); a silent file is an error."""
    from .audio import read_audio

    samples, _ = read_audio(str(path), rate=rate)
    if float(np.mean(samples.astype(np.float64) ** 2)) < MIN_NOISE_POWER:
        raise NoiseError(f"noise file '{path}' is silent. Fix: remove it from the noise folder")
    return samples


def utterance_rng(seed: int, utt: str) -> np.random.Generator:
    """A random generator that depends only on the seed and the utterance id."""
    digest = hashlib.sha256(f"{seed}\0{utt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class NoiseChoice:
    """What one utterance is mixed with: a line of ``utt2noise`` (``utt snr offset noise-file``)."""

    noise: str  # path of the noise file
    offset: int  # first noise sample added to the utterance's first sample (the noise loops)
    snr: float  # dB

    def to_line(self, utt: str) -> str:
        return f"{utt} {self.snr:g} {self.offset} {self.noise}"

    @classmethod
    def from_value(cls, value: str) -> NoiseChoice:
        """From the value of a ``utt2noise`` line (everything after the utterance id)."""
        snr, offset, noise = value.split(" ", 2)
        return cls(noise=noise, offset=int(offset), snr=float(snr))


def choose(utt: str, noises: dict[str, np.ndarray], snrs: list[float], seed: int) -> NoiseChoice:
    """The noise file, offset and SNR of one utterance, drawn from (seed, utt) alone."""
    rng = utterance_rng(seed, utt)
    names = sorted(noises)
    name = names[int(rng.integers(len(names)))]
    offset = int(rng.integers(len(noises[name])))
    snr = float(snrs[int(rng.integers(len(snrs)))])
    return NoiseChoice(noise=name, offset=offset, snr=snr)


def noise_segment(noise: np.ndarray, offset: int, length: int) -> np.ndarray:
    """``length`` samples of ``noise`` from ``offset`` on, looping when the noise is shorter."""
    index = (offset + np.arange(length)) % len(noise)
    return noise[index]


def mix_gains(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[float, float]:
    """(noise gain, overall scale) of :func:`mix`: ``scale * (clean + gain * noise)``."""
    clean_power = float(np.mean(clean.astype(np.float64) ** 2))
    noise_power = max(float(np.mean(noise.astype(np.float64) ** 2)), MIN_NOISE_POWER)
    gain = float(np.sqrt(clean_power / (noise_power * 10 ** (snr_db / 10))))
    mixture = clean.astype(np.float64) + gain * noise.astype(np.float64)
    peak = float(np.max(np.abs(mixture))) if len(mixture) else 0.0
    return gain, (PEAK / peak if peak > PEAK else 1.0)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noise`` (same length) scaled to ``snr_db``; scaled down as a whole if it would clip.

    Computed in float64, returned as float32. A silent utterance stays silent (the noise is set
    relative to the speech's power).
    """
    gain, scale = mix_gains(clean, noise, snr_db)
    mixture = scale * (clean.astype(np.float64) + gain * noise.astype(np.float64))
    return mixture.astype(np.float32)


def measured_snr(clean: np.ndarray, noisy: np.ndarray, scale: float = 1.0) -> float:
    """The SNR (dB) of ``noisy`` against the ``clean`` signal it was made from (times ``scale``, the
    common gain :func:`mix` applied against clipping): what is not speech is noise."""
    speech = scale * clean.astype(np.float64)
    residual = noisy.astype(np.float64) - speech
    return float(10 * np.log10(np.mean(speech**2) / np.mean(residual**2)))


def rebuild(clean: np.ndarray, choice: NoiseChoice, rate: int) -> np.ndarray:
    """The noisy utterance a ``utt2noise`` line describes, from its clean audio (at ``rate``)."""
    noise = load_noise(choice.noise, rate)
    return mix(clean, noise_segment(noise, choice.offset, len(clean)), choice.snr)


def generate(
    kind: str, seconds: float, rate: int, seed: int, speech: list[np.ndarray] | None = None, talkers: int = 6
) -> np.ndarray:
    """Generated noise of ``kind`` (white, pink or babble), ``seconds`` long, peak-normalized to 0.5.

    white: Gaussian; pink: white shaped to a 1/f power spectrum in the frequency domain;
    babble: ``talkers`` overlapping streams of the given ``speech`` utterances (each stream its
    utterances one after another, at equal power), as in the NOISEX babble used by Aurora.
    """
    rng = np.random.default_rng(seed)
    length = round(seconds * rate)
    if kind == "white":
        noise = rng.standard_normal(length)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(length))
        freqs = np.fft.rfftfreq(length)
        spectrum[1:] /= np.sqrt(freqs[1:])
        spectrum[0] = 0
        noise = np.fft.irfft(spectrum, n=length)
    elif kind == "babble":
        if not speech:
            raise NoiseError("babble noise needs speech: give it training utterances")
        noise = np.zeros(length)
        for _ in range(talkers):
            stream, filled = np.zeros(length), int(rng.integers(rate // 2))
            while filled < length:
                utt = speech[int(rng.integers(len(speech)))].astype(np.float64)
                utt = utt / max(np.sqrt(np.mean(utt**2)), 1e-6)
                take = min(len(utt), length - filled)
                stream[filled : filled + take] = utt[:take]
                filled += take
            noise += stream
    else:
        raise NoiseError(f"unknown generated noise '{kind}' (use one of {', '.join(GENERATED_TYPES)})")
    return (0.5 * noise / max(float(np.max(np.abs(noise))), 1e-9)).astype(np.float32)


def noisy_wav(out_dir: str | Path, utt: str) -> Path:
    """Where a noisy copy keeps utterance ``utt``'s audio: ``out_dir/wav/<xx>/<utt>.wav``, ``xx`` the first
    two hex digits of a hash of the id.

    256 folders: a corpus of 281k utterances puts about 1,100 files in each instead of all in one
    (slow to list, and past the limits of some file systems), and where a file goes depends on its
    id alone, not on how the mixing is split into jobs.
    """
    return Path(out_dir) / "wav" / hashlib.sha256(utt.encode()).hexdigest()[:2] / f"{utt}.wav"


def mix_data_dir(
    clean,
    out_dir: str | Path,
    noises: dict[str, np.ndarray],
    snrs: list[float],
    seed: int,
    rate: int,
    progress: bool = True,
    utterances: list[str] | None = None,
):
    """A noisy copy of the data directory ``clean`` (a :class:`~speechrecipe.datadir.DataDir`) under ``out_dir``,
    or of its ``utterances`` only (one job's share).

    Every utterance is mixed with the noise :func:`choose` draws for it and written to :func:`noisy_wav`
    (16-bit, ``rate``). Returns the copy (same utterance ids, texts and speakers; not yet saved) and
    its ``utt2noise`` table (utt -> ``snr offset noise-file``).
    """
    from tqdm import tqdm

    from .audio import write_wav
    from .datadir import DataDir

    out_dir = Path(out_dir)
    utterances = clean.utterances if utterances is None else utterances
    noisy = DataDir(text={u: clean.text[u] for u in utterances}, utt2spk={u: clean.utt2spk[u] for u in utterances})
    utt2noise = {}
    for utt in tqdm(utterances, desc=f"mix {out_dir.name}", mininterval=5, disable=not progress):
        samples, _ = clean.audio(utt, rate)
        choice = choose(utt, noises, snrs, seed)
        wav = noisy_wav(out_dir, utt)
        write_wav(wav, mix(samples, noise_segment(noises[choice.noise], choice.offset, len(samples)), choice.snr), rate)
        noisy.wav_scp[utt] = str(wav)
        noisy.utt2dur[utt] = len(samples) / rate
        utt2noise[utt] = choice.to_line(utt).split(" ", 1)[1]
    return noisy, utt2noise
