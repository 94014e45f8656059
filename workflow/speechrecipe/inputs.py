"""What to transcribe: audio files, directories of them, Kaldi data directories and wav.scp files.

An input is an audio file in any format soundfile reads (WAV, FLAC, OGG, MP3, ...; any
rate, mono or stereo), a directory (every audio file under it; a Kaldi data directory is
read through its ``wav.scp`` and ``segments``), or a ``wav.scp``. :func:`collect_inputs`
turns a command line's worth of them into :class:`Source` utterances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AudioError, read_audio
from .fileio import read_table


def audio_suffixes() -> set[str]:
    """File extensions of the formats soundfile (libsndfile) can read here."""
    import soundfile

    suffixes = {f".{name.lower()}" for name in soundfile.available_formats()} - {".raw"}  # raw needs a header
    return suffixes | {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".sph", ".nist"}


@dataclass
class Source:
    """One thing to transcribe: an utterance id and a ``wav.scp`` entry (path or command), maybe a segment."""

    utt: str
    entry: str
    start: float = 0.0
    end: float | None = None
    speaker: str | None = None  # known for a Kaldi data directory's utterances (its utt2spk)

    def read(self) -> tuple[np.ndarray, int]:
        return read_audio(self.entry, self.start, self.end)


def _utt_id(name: str) -> str:
    return "_".join(name.split()) or "utt"


def _from_wav_scp(wav_scp: Path) -> list[Source]:
    try:
        table = read_table(wav_scp)
    except (OSError, UnicodeDecodeError) as e:
        raise AudioError(f"cannot read '{wav_scp}': {e}") from e
    segments, utt2spk = wav_scp.with_name("segments"), wav_scp.with_name("utt2spk")
    speakers = read_table(utt2spk) if wav_scp.name == "wav.scp" and utt2spk.is_file() else {}
    if wav_scp.name == "wav.scp" and segments.is_file():
        sources = []
        for utt, value in read_table(segments).items():
            recording, start, end = value.split()
            if recording not in table:
                raise AudioError(f"{segments}: recording '{recording}' of '{utt}' is not in {wav_scp}")
            sources.append(Source(utt, table[recording], float(start), float(end), speakers.get(utt)))
        return sources
    return [Source(utt, entry, speaker=speakers.get(utt)) for utt, entry in table.items()]


def _expand(path: Path, suffixes: set[str]) -> list[Source]:
    if path.is_dir():
        if (path / "wav.scp").is_file():
            return _from_wav_scp(path / "wav.scp")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise AudioError(
                f"directory '{path}' holds no audio files (.wav, .flac, .ogg, .mp3 or another format "
                "soundfile reads) and no wav.scp"
            )
        return [Source(_utt_id("-".join(f.relative_to(path).with_suffix("").parts)), str(f)) for f in files]
    if path.name == "wav.scp" or path.suffix == ".scp":
        return _from_wav_scp(path)
    # A file that does not exist is kept: reading it reports the error in the same place as any other.
    return [Source(_utt_id(path.stem if path.suffix.lower() in suffixes else path.name), str(path))]


def collect_inputs(paths, problems: list[str] | None = None) -> list[Source]:
    """The utterances named by the command line: audio files, directories and wav.scp files, in order.

    A file's id is its name without extension (inside a directory, its path
    relative to it with '/' as '-'); repeated ids get a '-N' suffix. An input
    that names nothing readable (an empty directory, a broken wav.scp) raises
    AudioError, or, with a ``problems`` list, is described there and skipped.
    """
    sources: list[Source] = []
    suffixes = audio_suffixes()
    for name in paths:
        try:
            sources += _expand(Path(name), suffixes)
        except (AudioError, ValueError) as e:
            if problems is None:
                raise
            problems.append(str(e))
    seen: dict[str, int] = {}
    for source in sources:
        count = seen.get(source.utt, 0)
        seen[source.utt] = count + 1
        if count:
            source.utt = f"{source.utt}-{count + 1}"
    return sources
