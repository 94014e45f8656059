"""Kaldi data directories: read, write and validate.

A data directory holds one table per file, keyed by utterance id::

    wav.scp   utt-id  path/to/audio.wav     (or a command ending in '|')
    text      utt-id  TRANSCRIPT WORDS
    utt2spk   utt-id  speaker-id
    spk2utt   speaker-id  utt-id utt-id ...
    utt2dur   utt-id  seconds
    segments  utt-id  recording-id start end    (optional; wav.scp is then keyed by recording)

:func:`validate` applies the checks of Kaldi's ``utils/validate_data_dir.sh``
and reports every problem with the file, the line and how to fix it, so that
bad data fails in seconds, before any feature is computed.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import read_table, split_key, write_table

log = logging.getLogger(__name__)

REQUIRED_FILES = ("wav.scp", "text", "utt2spk", "spk2utt")
KEYED_BY_UTTERANCE = ("text", "utt2spk", "utt2dur", "feats.scp", "utt2num_frames", "segments")


class DataDirError(ValueError):
    """A data directory is malformed; the message lists each problem with its fix."""


@dataclass
class DataDir:
    """The tables of one Kaldi data directory, in memory."""

    wav_scp: dict[str, str] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    utt2dur: dict[str, float] = field(default_factory=dict)
    segments: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    @property
    def utterances(self) -> list[str]:
        return sorted(self.text, key=lambda u: u.encode("utf-8"))

    def spk2utt(self) -> dict[str, str]:
        spk2utt: dict[str, list[str]] = {}
        for utt in sorted(self.utt2spk, key=lambda u: u.encode("utf-8")):
            spk2utt.setdefault(self.utt2spk[utt], []).append(utt)
        return {spk: " ".join(utts) for spk, utts in spk2utt.items()}

    def subset(self, utterances) -> DataDir:
        keep = set(utterances)
        recordings = {self.segments[u][0] for u in keep if u in self.segments} if self.segments else keep
        return DataDir(
            wav_scp={k: v for k, v in self.wav_scp.items() if k in recordings},
            text={k: v for k, v in self.text.items() if k in keep},
            utt2spk={k: v for k, v in self.utt2spk.items() if k in keep},
            utt2dur={k: v for k, v in self.utt2dur.items() if k in keep},
            segments={k: v for k, v in self.segments.items() if k in keep},
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the tables (each atomically), sorted in C order as Kaldi expects."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_table(path / "wav.scp", self.wav_scp)
        write_table(path / "text", self.text)
        write_table(path / "utt2spk", self.utt2spk)
        write_table(path / "spk2utt", self.spk2utt())
        if self.utt2dur:
            write_table(path / "utt2dur", {u: f"{d:.3f}" for u, d in self.utt2dur.items()})
        elif (path / "utt2dur").exists():
            (path / "utt2dur").unlink()  # left by an earlier run: it would describe other utterances
        if self.segments:
            write_table(path / "segments", {u: f"{r} {s:.3f} {e:.3f}" for u, (r, s, e) in self.segments.items()})
        elif (path / "segments").exists():
            (path / "segments").unlink()

    def entry(self, utt: str) -> tuple[str, float, float | None]:
        """(wav.scp entry, start, end) of an utterance: its recording and, with segments, where in it."""
        if utt in self.segments:
            recording, start, end = self.segments[utt]
            return self.wav_scp[recording], start, end
        return self.wav_scp[utt], 0.0, None

    def audio(self, utt: str, rate: int | None = None):
        """An utterance's samples (float32 mono) and rate, resampled to ``rate`` when given."""
        from .audio import read_audio

        entry, start, end = self.entry(utt)
        return read_audio(entry, start, end, rate=rate)

    def summary(self) -> str:
        """``"N utterances, M speakers, H hours"`` (hours from utt2dur; '?' when it is missing)."""
        hours = f"{sum(self.utt2dur.values()) / 3600:.3f}" if self.utt2dur else "?"
        return f"{len(self.text)} utterances, {len(set(self.utt2spk.values()))} speakers, {hours} hours"

    @classmethod
    def load(cls, path: str | os.PathLike) -> DataDir:
        path = Path(path)
        d = cls(
            wav_scp=read_table(path / "wav.scp"),
            text=read_table(path / "text"),
            utt2spk=read_table(path / "utt2spk"),
        )
        if (path / "utt2dur").exists():
            d.utt2dur = {u: float(v) for u, v in read_table(path / "utt2dur").items()}
        if (path / "segments").exists():
            for u, v in read_table(path / "segments").items():
                rec, start, end = v.split()
                d.segments[u] = (rec, float(start), float(end))
        return d


def hours_of(directory: str | os.PathLike, frame_shift_ms: float = 10.0) -> float:
    """Hours of audio in a Kaldi data directory (its utt2dur) or a feature directory (utt2num_frames)."""
    directory = Path(directory)
    if (directory / "utt2dur").is_file():
        return sum(float(v) for v in read_table(directory / "utt2dur").values()) / 3600
    if (directory / "utt2num_frames").is_file():
        frames = sum(int(v) for v in read_table(directory / "utt2num_frames").values())
        return frames * frame_shift_ms / 1000 / 3600
    raise FileNotFoundError(f"{directory}: neither utt2dur nor utt2num_frames, so its hours are unknown")


def job_slice(utterances: list, job: int, nj: int) -> list:
    """Job ``job`` (1-based) of ``nj``'s share of ``utterances``: its contiguous slice, as Kaldi's split_data.sh."""
    n = len(utterances)
    return utterances[(job - 1) * n // nj : job * n // nj]


def _c_order(key: str) -> bytes:
    return key.encode("utf-8")


BOM = "\ufeff".encode()  # a UTF-8 byte-order mark: bytes EF BB BF, invisible in most editors

# What normalize_table changes, each as the log of local/kaldi.py says it. Kaldi's tools refuse the
# first three (validate_text.pl refuses a carriage return, and in the other tables it stays part of the
# last field; a byte-order mark becomes part of the first id; check_sorted_and_uniq refuses a last line
# without a newline); the separator is what Kaldi's readers accept and the recipe writes canonically.
TABLE_FIXES = {
    "crlf": "CRLF line ends made LF",
    "bom": "UTF-8 byte-order mark removed",
    "final_newline": "newline added after the last line",
    "separator": "tab or several spaces/tabs after the id made one space",
}
_SEPARATED = re.compile(rb"([^ \t]+)[ \t]+(.*)", re.DOTALL)


def normalize_table(raw: bytes) -> tuple[bytes, Counter[str]]:
    """A table's bytes with what Kaldi tolerates or what is plainly an encoding accident made canonical.

    Returns the new bytes and how many lines each kind of change (a key of :data:`TABLE_FIXES`)
    touched. Lines keep their numbers, so a problem found in the result names the original's line.
    """
    lines = raw.split(b"\n")
    ends_in_newline = lines[-1] == b""
    if ends_in_newline:
        lines.pop()
    changed: Counter[str] = Counter()
    out = []
    if lines and lines[0].startswith(BOM):
        lines[0] = lines[0][len(BOM) :]
        changed["bom"] += 1
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
            changed["crlf"] += 1
        separated = _SEPARATED.fullmatch(line)
        if separated:
            key, rest = separated.groups()
            canonical = key + b" " + rest if rest else key
            if canonical != line:
                changed["separator"] += 1
                line = canonical
        out.append(line + b"\n")
    if not ends_in_newline:
        changed["final_newline"] += 1
    return b"".join(out), changed


def _read_lines(
    path: Path, problems: list[str], tolerate_normalizable: bool = False
) -> list[tuple[int, str, str]] | None:
    """(line number, key, value) of each line, or None when the file cannot be read.

    A byte-order mark opening the file, CRLF line ends and a last line without a newline are
    reported, named as what they are (not as the wrong ids they would make), unless
    ``tolerate_normalizable``; in either case they are left out of the rows.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.append(f"{path}: cannot be read ({e.strerror}).")
        return None
    on_import = "local/kaldi.py makes this change in the copy it imports"
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the end of a file that ends in a newline
    elif not tolerate_normalizable:
        problems.append(
            f"{path} line {len(lines)}: no newline at the end of the last line (Kaldi's validate_data_dir.sh "
            f"refuses the file: 'invalid newline'). Fix: `echo >> {path}`; {on_import}."
        )
    rows, crlf = [], []
    for number, line_bytes in enumerate(lines, start=1):
        if number == 1 and line_bytes.startswith(BOM):
            line_bytes = line_bytes[len(BOM) :]
            if not tolerate_normalizable:
                problems.append(
                    f"{path} line 1: the file starts with a UTF-8 byte-order mark (bytes EF BB BF, invisible in most "
                    "editors), which Kaldi reads as part of the first id. Fix: save the file as UTF-8 without BOM, "
                    f"e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' {path}`; {on_import}."
                )
        if line_bytes.endswith(b"\r"):
            line_bytes = line_bytes[:-1]
            crlf.append(number)
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(
                f"{path} line {number}: not valid UTF-8 (byte {e.start}). "
                "Fix: re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`."
            )
            continue
        if not line.strip():
            problems.append(f"{path} line {number}: empty line. Fix: delete it.")
            continue
        key, value = split_key(line)
        if not key or any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in key):
            problems.append(
                f"{path} line {number}: the line starts with a space or tab, or its id {key!r} holds other "
                "whitespace or an invisible character (a byte-order mark inside a file made by joining files?). "
                "Fix: start each line with its id, in printable characters, then a space and the rest of the line."
            )
            continue
        rows.append((number, key, value))
    if crlf and not tolerate_normalizable:
        problems.append(
            f"{path} line {crlf[0]}: carriage return (CRLF line ends) on {len(crlf)} of {len(lines)} line(s): "
            "Kaldi's tools refuse it or read it as part of the last field. "
            f"Fix: `sed -i 's/\\r$//' {path}` (or dos2unix); {on_import}."
        )
    return rows


def _check_sorted_unique(path: Path, rows, problems: list[str]) -> None:
    seen: dict[str, int] = {}
    previous = None
    for number, key, _ in rows:
        if key in seen:
            problems.append(
                f"{path} line {number}: duplicate key '{key}' (first on line {seen[key]}). "
                "Fix: keep one line per id; ids must be unique."
            )
            continue
        if previous is not None and _c_order(key) < _c_order(previous):
            problems.append(
                f"{path} line {number}: '{key}' comes after '{previous}' but sorts before it. "
                f"Fix: sort the file in C order: `LC_ALL=C sort -o {path} {path}`."
            )
        seen[key] = number
        previous = key


def validate(path: str | os.PathLike, check_audio: bool = True, tolerate_normalizable: bool = False) -> DataDir:
    """Check a data directory like Kaldi's ``validate_data_dir.sh`` and return it loaded.

    Raises :class:`DataDirError` listing every problem found (each with file,
    line and fix). With ``check_audio`` every audio file in ``wav.scp`` is
    opened (header only) so that missing, unreadable and empty recordings are
    caught before feature extraction. What Kaldi accepts is accepted: a tab or
    several spaces after an id, and empty transcripts (counted in the log).
    ``tolerate_normalizable`` lets through what :func:`normalize_table` fixes
    (a byte-order mark, CRLF line ends, a missing last newline): for a source
    that ``local/kaldi.py`` imports, which validates its normalized copy strictly.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataDirError(f"{path}: no such data directory. Fix: run the data preparation stage or check the path.")
    problems = [
        f"{path / name}: missing. Fix: every data directory needs {', '.join(REQUIRED_FILES)}."
        for name in REQUIRED_FILES
        if not (path / name).is_file()
    ]
    if problems:
        raise DataDirError("\n".join(problems))
    tables = _read_tables(path, problems, tolerate_normalizable)
    _check_transcripts(path, tables.get("text", []), problems)
    _check_coverage(path, tables, problems)
    _check_speaker_order(path, tables.get("utt2spk", []), problems)
    _check_spk2utt(path, tables.get("utt2spk", []), tables.get("spk2utt", []), problems)
    if check_audio and "wav.scp" in tables:
        _check_audio(path, tables["wav.scp"], problems)
    if problems:
        raise DataDirError(f"{path}: {len(problems)} problem(s):\n" + listing(problems, "problems"))
    return DataDir.load(path)


def listing(lines: list[str], what: str, limit: int = 20) -> str:
    """The first ``limit`` lines, one per line, then how many more ``what`` there are."""
    more = [f"... and {len(lines) - limit} more {what}."] if len(lines) > limit else []
    return "\n".join(lines[:limit] + more)


def _read_tables(path: Path, problems: list[str], tolerate_normalizable: bool) -> dict[str, list[tuple[int, str, str]]]:
    """The rows of every table present, each checked for sorting and unique keys."""
    tables: dict[str, list[tuple[int, str, str]]] = {}
    for name in (*REQUIRED_FILES, *[f for f in KEYED_BY_UTTERANCE if f not in REQUIRED_FILES]):
        if not (path / name).is_file():
            continue
        rows = _read_lines(path / name, problems, tolerate_normalizable)
        if rows is None:
            continue
        tables[name] = rows
        _check_sorted_unique(path / name, rows, problems)
    return tables


def _check_transcripts(path: Path, rows, problems: list[str]) -> None:
    empty = [utt for _, utt, transcript in rows if not transcript]
    if empty:
        # Kaldi accepts them (silence, noise-only recordings): CTC learns to output nothing for them,
        # and scoring counts any word recognized in them as an insertion.
        log.info(
            "%s: %d utterance(s) with an empty transcript, kept as Kaldi keeps them (e.g. %s)",
            path / "text",
            len(empty),
            ", ".join(empty[:3]),
        )
    for number, utt, transcript in rows:
        bad = [c for c in transcript if unicodedata.category(c)[0] == "C"]
        if bad:
            problems.append(
                f"{path / 'text'} line {number}: non-printable character {bad[0]!r} in the transcript of '{utt}'. "
                "Fix: remove control characters (tabs, carriage returns) from the text."
            )


def _check_coverage(path: Path, tables: dict, problems: list[str]) -> None:
    """Every per-utterance file lists exactly the utterances of text; segments' recordings are wav.scp's."""
    text_lines = _line_of(tables.get("text", []))
    for name in KEYED_BY_UTTERANCE:
        if name != "text" and name in tables:
            _check_same_keys(path, "text", text_lines, name, _line_of(tables[name]), problems)
    if "segments" in tables:
        recordings = _check_segments(path, tables["segments"], problems)
        if "wav.scp" in tables:
            _check_same_keys(
                path, "segments", recordings, "wav.scp", _line_of(tables["wav.scp"]), problems, "recording"
            )
    elif "wav.scp" in tables and "text" in tables:
        _check_same_keys(path, "text", text_lines, "wav.scp", _line_of(tables["wav.scp"]), problems)


def _check_segments(path: Path, rows, problems: list[str]) -> dict[str, int]:
    """Check each segment's times; returns the recordings segments name, with the first line of each."""
    recordings: dict[str, int] = {}
    for number, utt, value in rows:
        fields = value.split()
        if fields:
            recordings.setdefault(fields[0], number)
        try:
            start, end = float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            problems.append(f"{path / 'segments'} line {number}: expected `utt-id recording-id start end`.")
            continue
        if end <= start:
            problems.append(
                f"{path / 'segments'} line {number}: segment '{utt}' ends ({end}) before it starts ({start}). "
                "Fix: the format is `utt-id recording-id start end` with end > start."
            )
    return recordings


def _check_speaker_order(path: Path, rows, problems: list[str]) -> None:
    """The speaker id prefixes the utterance id, and utt2spk in utterance order is in speaker order.

    Kaldi (validate_data_dir.sh) requires utt2spk, in utterance order, to be in speaker order
    (spk2utt_to_utt2spk.pl must give it back): a prefix alone is not enough when the separator
    sorts above the characters of a speaker id, e.g. speakers '84' and '841' with utterances
    '84_x' and '841_x'.
    """
    for number, utt, spk in rows:
        if not spk or len(spk.split()) != 1:
            problems.append(f"{path / 'utt2spk'} line {number}: expected `utt-id speaker-id`, got '{utt} {spk}'.")
        elif not utt.startswith(spk):
            problems.append(
                f"{path / 'utt2spk'} line {number}: speaker '{spk}' is not a prefix of utterance '{utt}'. "
                f"Fix: name utterances '<speaker>-<rest>' (e.g. '{spk}-{utt}') in every file, so that "
                "sorting by utterance also sorts by speaker."
            )
    previous = None
    disorder = 0
    for number, utt, spk in rows:
        if previous is not None and previous[1] != spk and _c_order(spk) < _c_order(previous[1]):
            disorder += 1
            if disorder <= 3:
                problems.append(
                    f"{path / 'utt2spk'} line {number}: utterance '{utt}' of speaker '{spk}' comes after "
                    f"'{previous[0]}' of speaker '{previous[1]}', but '{spk}' sorts before '{previous[1]}': "
                    "sorting by utterance does not sort by speaker. Fix: name utterances '<speaker>-<rest>' "
                    "('-' sorts before letters and digits) or zero-pad numeric speaker ids."
                )
        previous = (utt, spk)
    if disorder > 3:
        problems.append(f"{path / 'utt2spk'}: ... and {disorder - 3} more line(s) out of speaker order.")


def _check_spk2utt(path: Path, utt2spk_rows, spk2utt_rows, problems: list[str]) -> None:
    """utt2spk and spk2utt say the same."""
    utt2spk = {key: (number, value) for number, key, value in utt2spk_rows}
    regenerate = "Fix: regenerate spk2utt from utt2spk: `utils/utt2spk_to_spk2utt.pl utt2spk > spk2utt`."
    pairs = set()
    for number, spk, value in spk2utt_rows:
        for utt in value.split():
            pairs.add((utt, spk))
            if utt2spk.get(utt, (0, None))[1] != spk:
                said = f"utt2spk says '{utt2spk[utt][1]}'" if utt in utt2spk else "utt2spk does not have it"
                problems.append(
                    f"{path / 'spk2utt'} line {number}: lists '{utt}' under speaker '{spk}', but {said}. {regenerate}"
                )
    for utt, (number, spk) in utt2spk.items():
        if (utt, spk) not in pairs:
            problems.append(
                f"{path / 'utt2spk'} line {number}: '{utt}' (speaker '{spk}') is missing from spk2utt. {regenerate}"
            )


def _check_audio(path: Path, rows, problems: list[str]) -> None:
    from .audio import check_audio_entry

    for number, key, value in rows:
        problem = check_audio_entry(value, base=Path.cwd())
        if problem:
            problems.append(f"{path / 'wav.scp'} line {number}: '{key}': {problem}")


def _line_of(rows) -> dict[str, int]:
    """id -> the line it is first on."""
    lines: dict[str, int] = {}
    for number, key, _ in rows:
        lines.setdefault(key, number)
    return lines


def _check_same_keys(
    path: Path,
    name_a: str,
    lines_a: dict[str, int],
    name_b: str,
    lines_b: dict[str, int],
    problems: list[str],
    what: str = "utterance",
) -> None:
    """Report each id that one file has and the other lacks, with the file and line where it is."""
    for name, lines, other, other_lines in ((name_a, lines_a, name_b, lines_b), (name_b, lines_b, name_a, lines_a)):
        missing = sorted((key for key in lines if key not in other_lines), key=lines.__getitem__)
        for key in missing[:3]:
            problems.append(
                f"{path / name} line {lines[key]}: {what} '{key}' has no entry in {path / other}. "
                f"Fix: add it to {other}, or drop it from every file (utils/fix_data_dir.sh keeps the intersection)."
            )
        if len(missing) > 3:
            problems.append(f"{path / name}: ... and {len(missing) - 3} more {what} id(s) missing from {other}.")
