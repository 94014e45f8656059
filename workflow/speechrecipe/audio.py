"""Reading audio named in ``wav.scp``: files through soundfile, or Kaldi-style pipes.

A ``wav.scp`` value is either a path (spaces allowed: the value is the rest of
the line) or a shell command ending in ``|`` whose standard output is a WAV
file, as in Kaldi. Audio comes back as float32 mono in [-1, 1] with its sample
rate; stereo is mixed down, and :func:`read_audio` resamples to ``rate`` when
one is asked for. A :class:`FormatReport` passed to it counts what was changed
(channels mixed down, rates converted), so that a job can say so in its log
once instead of silently or once per file.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger(__name__)


class AudioError(ValueError):
    """An audio file is missing, unreadable or empty."""


def _is_pipe(entry: str) -> bool:
    return entry.rstrip().endswith("|")


class FormatReport:
    """What reading a corpus changed about its recordings, for one summary in the log.

    Stereo (or more channels) is mixed down to mono and other sample rates are
    resampled to ``target_rate``; both are legitimate, but a user should see
    that they happened (a corpus expected at 16 kHz that turns out to be 8 kHz
    telephone speech explains a poor WER).
    """

    def __init__(self, target_rate: int | None = None):
        self.target_rate = target_rate
        self.recordings = 0
        self.multichannel: list[str] = []
        self.rates: Counter[int] = Counter()
        self.examples: dict[int, str] = {}

    def add(self, name: str, rate: int, channels: int) -> None:
        self.recordings += 1
        self.rates[rate] += 1
        self.examples.setdefault(rate, name)
        if channels > 1:
            self.multichannel.append(f"{name} ({channels} channels)")

    def lines(self) -> list[str]:
        """One sentence per change made, naming an example of each; empty when nothing was changed."""
        out = []
        if self.multichannel:
            out.append(
                f"{len(self.multichannel)} of {self.recordings} recording(s) have more than one channel: "
                f"mixed down to mono by averaging the channels (e.g. {', '.join(self.multichannel[:3])})"
            )
        for rate, count in sorted(self.rates.items()):
            if self.target_rate is not None and rate != self.target_rate:
                out.append(
                    f"{count} of {self.recordings} recording(s) at {rate} Hz: resampled to {self.target_rate} Hz "
                    f"(features.sample_rate; e.g. {self.examples[rate]})"
                )
        return out


def read_audio(
    entry: str,
    start: float = 0.0,
    end: float | None = None,
    *,
    rate: int | None = None,
    report: FormatReport | None = None,
    name: str | None = None,
) -> tuple[np.ndarray, int]:
    """Read one ``wav.scp`` entry as (float32 mono samples, sample rate).

    ``start``/``end`` (seconds) cut a segment, for data dirs with ``segments``.
    With ``rate`` the audio is resampled to it (and ``rate`` is returned);
    without, the file's own rate is returned. ``report`` records the file's
    own rate and channel count (under ``name``, else the entry).
    """
    target_rate = rate
    try:
        if _is_pipe(entry):
            command = entry.rstrip()[:-1].rstrip()
            # wav.scp pipes are Kaldi's convention and come from the corpus, not from config.
            result = subprocess.run(command, shell=True, capture_output=True, check=False)
            if result.returncode != 0:
                raise AudioError(f"command '{command}' failed: {result.stderr.decode(errors='replace').strip()[:200]}")
            samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
        else:
            if not Path(entry).exists():
                raise AudioError(f"no such file '{entry}'")
            with soundfile.SoundFile(entry) as f:
                rate = f.samplerate
                first = round(start * rate)
                last = round(end * rate) if end is not None else -1
                f.seek(min(first, f.frames))
                # soundfile reads the whole rest of the file for a negative count, so an
                # empty or inverted segment must ask for 0 frames (and fail below).
                frames = max(0, last - first) if last >= 0 else -1
                samples = f.read(frames=frames, dtype="float32", always_2d=True)
            start = end = None
    except AudioError:
        raise
    except FileNotFoundError as e:
        raise AudioError(f"no such file '{entry}'") from e
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"cannot read audio '{entry}': {e}") from e
    if start or end is not None:
        samples = samples[round((start or 0) * rate) : None if end is None else round(end * rate)]
    if report is not None:
        report.add(name or entry, int(rate), samples.shape[1])
    if samples.shape[1] > 1:
        samples = samples.mean(axis=1, keepdims=True)
    samples = samples[:, 0]
    if samples.size == 0:
        raise AudioError(f"'{entry}' holds no samples")
    if target_rate is not None and target_rate != rate:
        samples, rate = resample(samples, int(rate), int(target_rate)), target_rate
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)


def check_audio_entry(entry: str, base: Path | None = None) -> str | None:
    """A one-line description of what is wrong with a wav.scp entry, or None when it is readable.

    Reads only the header, so checking a whole corpus takes seconds.
    """
    if _is_pipe(entry):
        return None  # a command cannot be checked without running it; feature extraction will
    path = Path(entry)
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.exists():
        return f"audio file '{entry}' does not exist. Fix: correct the path (relative paths are relative to the recipe directory)."
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # noqa: BLE001 - soundfile raises several types for a bad header
        return f"audio file '{entry}' cannot be read ({e}). Fix: re-encode it as WAV or FLAC, or remove the utterance."
    if info.frames == 0:
        return f"audio file '{entry}' is empty (0 samples). Fix: remove the utterance or replace the recording."
    return None


# RIFF WAVE, plain or WAVE_FORMAT_EXTENSIBLE (soundfile's names): what Kaldi's wave reader takes.
KALDI_READABLE_FORMATS = ("WAV", "WAVEX")


def file_format(entry: str, base: Path | None = None) -> str | None:
    """soundfile's name for the format of a wav.scp file entry (``'WAV'``, ``'MP3'``, ``'FLAC'``, ...).

    None for a command, or a file that cannot be opened (:func:`check_audio_entry` reports those).
    libsndfile goes by the content, whatever the file is called, so this recipe reads an MP3 named
    ``.wav`` without a word; Kaldi's tools read every file entry as WAV and fail on it.
    """
    if _is_pipe(entry):
        return None
    path = Path(entry)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        return soundfile.info(str(path)).format
    except Exception:  # noqa: BLE001 - missing or unreadable: not this function's report
        return None


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc), deterministic."""
    if from_rate == to_rate:
        return samples
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(samples), from_rate, to_rate).numpy()


def duration(entry: str) -> float:
    """Length in seconds of a wav.scp entry (header only for files)."""
    if _is_pipe(entry):
        samples, rate = read_audio(entry)
        return len(samples) / rate
    if not Path(entry).exists():
        raise AudioError(f"no such file '{entry}'")
    try:
        info = soundfile.info(entry)
    except Exception as e:
        raise AudioError(f"cannot read audio '{entry}': {e}") from e
    return info.frames / info.samplerate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write 16-bit PCM WAV atomically."""
    from .fileio import atomic_path

    with atomic_path(path, suffix=".wav") as tmp:
        soundfile.write(str(tmp), samples, rate, subtype="PCM_16", format="WAV")
