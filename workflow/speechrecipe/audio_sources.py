"""Untranscribed audio for the denoising autoencoder (``dae.extra_audio``): what a source names, as utterances.

A source is a Kaldi data directory (its ``wav.scp``, with ``segments`` when there is one; transcripts
ignored), a folder (its audio files, searched recursively), one audio file, or a glob pattern of files
(``../shared/data/fsdd/recordings/*_lucas_*.wav``). Recordings that an experiment's own sets already
use are left out (:func:`untranscribed_audio`'s ``exclude``): the training set's are in the DAE's
data anyway, and a dev or test set's audio must never be trained on. They are recognized by their
file (the resolved path of a ``wav.scp`` entry), so audio made from a test recording (a copy, a
concatenation) is not recognized: name sources that hold none.

Each utterance's length is known without decoding its audio (``utt2dur``, or the file's header), so
that the length buckets of a large source cost no pass over it.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import soundfile

from .noise import AUDIO_SUFFIXES


class AudioSourceError(ValueError):
    """A source that names no usable audio, with the fix."""


@dataclass(frozen=True)
class AudioItem:
    utt: str  # an id of its own: the source's index, then the data dir's id or the file's name
    entry: str  # a wav.scp entry (a path, or a command for Kaldi dirs)
    start: float
    end: float | None
    seconds: float


def _file_item(utt: str, path: Path) -> AudioItem:
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise AudioSourceError(f"{path}: not readable audio ({e}). Fix: remove it from the source or convert it")
    return AudioItem(utt, str(path), 0.0, None, info.frames / info.samplerate)


def _data_dir_items(prefix: str, folder: Path) -> list[AudioItem]:
    from .datadir import DataDir

    data = DataDir.load(folder)
    items = []
    for utt in data.utterances:
        entry, start, end = data.entry(utt)
        if utt in data.utt2dur:
            seconds = data.utt2dur[utt]
        elif end is not None:
            seconds = end - start
        elif Path(entry).is_file():
            seconds = _file_item(utt, Path(entry)).seconds
        else:
            raise AudioSourceError(
                f"{folder}/wav.scp: utterance '{utt}' is a command, and {folder} has no utt2dur to give its length. "
                "Fix: validate the directory with the recipe (it writes utt2dur) or give its audio files instead"
            )
        items.append(AudioItem(f"{prefix}{utt}", entry, start, end, seconds))
    return items


def source_items(index: int, source: str) -> list[AudioItem]:
    """The utterances of one source (the ``index``-th of the list, which prefixes their ids)."""
    prefix = f"extra{index}-"
    path = Path(source)
    if path.is_dir() and (path / "wav.scp").is_file():
        return _data_dir_items(prefix, path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AudioSourceError(
            f"dae.extra_audio: '{source}' names no audio (a Kaldi data directory, a folder of audio files, a file "
            f"or a glob pattern of {', '.join(AUDIO_SUFFIXES)} files). Fix: correct the entry; relative paths are "
            "relative to the working directory"
        )
    base = path if path.is_dir() else None
    items = []
    for file in files:
        name = file.relative_to(base).with_suffix("") if base else file.with_suffix("").name
        items.append(_file_item(f"{prefix}{str(name).replace('/', '_').replace(' ', '_')}", file))
    return items


def files_of(data_dirs) -> set[str]:
    """The resolved audio files that the ``wav.scp`` of Kaldi data directories name (commands are skipped)."""
    from .fileio import read_table

    files = set()
    for folder in data_dirs:
        for entry in read_table(Path(folder) / "wav.scp").values():
            if Path(entry).is_file():
                files.add(str(Path(entry).resolve()))
    return files


def untranscribed_audio(sources, exclude=()) -> tuple[list[AudioItem], int]:
    """The utterances of every source but those whose file is in ``exclude`` (resolved paths); and how many
    were left out for it. An utterance id met twice (two sources naming the same data) is kept once."""
    kept: dict[str, AudioItem] = {}
    left_out = 0
    seen_files: set[tuple[str, float, float | None]] = set()
    for index, source in enumerate(sources):
        for item in source_items(index, str(source)):
            resolved = str(Path(item.entry).resolve()) if Path(item.entry).is_file() else item.entry
            if resolved in exclude:
                left_out += 1
                continue
            key = (resolved, item.start, item.end)
            if key in seen_files:  # the same recording named by two sources
                continue
            seen_files.add(key)
            kept[item.utt] = item
    return list(kept.values()), left_out
