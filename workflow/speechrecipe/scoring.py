"""WER and CER with jiwer, written the way Kaldi writes them.

Reference and hypothesis both pass through :func:`speechrecipe.text.normalize`
first. Per set the recipe writes ``wer`` and ``cer``
(``%WER 4.12 [ 40 / 971, 5 ins, 10 del, 25 sub ]``) and ``per_utt`` (Kaldi's
``ref``/``hyp``/``op``/``#csid`` lines).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass

import jiwer

from .text import normalize

log = logging.getLogger(__name__)


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (used for the dev token error rate)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass
class ErrorCounts:
    ins: int = 0
    dels: int = 0
    subs: int = 0
    total: int = 0  # reference words (or characters)

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def rate(self) -> float:
        return 100.0 * self.errors / self.total if self.total else 0.0

    def kaldi_line(self, name: str = "WER") -> str:
        return (
            f"%{name} {self.rate:.2f} [ {self.errors} / {self.total}, "
            f"{self.ins} ins, {self.dels} del, {self.subs} sub ]"
        )


@dataclass
class SetScore:
    wer: ErrorCounts
    cer: ErrorCounts
    per_utt: list[str]
    missing: list[str]


def _counts(output) -> ErrorCounts:
    return ErrorCounts(
        output.insertions, output.deletions, output.substitutions, output.hits + output.substitutions + output.deletions
    )


def score(refs: dict[str, str], hyps: dict[str, str]) -> SetScore:
    """Score hypotheses against references, utterance by utterance, in reference order.

    An utterance with no hypothesis counts as all deletions (and is listed in
    ``missing``): a decoder that silently drops utterances must not look better.
    An empty reference (Kaldi's data directories allow them) counts the words
    recognized in it as insertions, as Kaldi's ``compute-wer`` does.
    """
    utts = sorted(refs)
    missing = [u for u in utts if u not in hyps]
    if missing:
        log.warning("%d utterance(s) have no hypothesis and count as deleted (e.g. %s)", len(missing), missing[:3])
    ref_texts = [normalize(refs[u]) for u in utts]
    hyp_texts = [normalize(hyps.get(u, "")) for u in utts]
    empty_refs = [u for u, r in zip(utts, ref_texts) if not r]
    if empty_refs:
        log.info(
            "%d reference(s) are empty: any word recognized in them counts as an insertion (e.g. %s)",
            len(empty_refs),
            empty_refs[:3],
        )
    words = jiwer.process_words(ref_texts, hyp_texts)
    chars = jiwer.process_characters([r.replace(" ", "") for r in ref_texts], [h.replace(" ", "") for h in hyp_texts])
    return SetScore(_counts(words), _counts(chars), _per_utt_lines(utts, words), missing)


KALDI_EPS = "***"  # the word on the other side of an insertion or deletion, as Kaldi's scoring scripts write it
_OPS = {"equal": "C", "substitute": "S", "insert": "I", "delete": "D"}


def _per_utt_lines(utts, words) -> list[str]:
    """Kaldi's ``per_utt``: ref, hyp, op and #csid lines for each utterance.

    The layout is that of Kaldi's ``utils/scoring/wer_per_utt_details.pl`` (run by its scoring
    scripts with ``--special-symbol '***'``), so that a person can read the file column by column.
    """
    lines = []
    for utt, ref, hyp, chunks in zip(utts, words.references, words.hypotheses, words.alignments):
        columns = []  # (ref word, hyp word, op)
        for chunk in chunks:
            ref_words = ref[chunk.ref_start_idx : chunk.ref_end_idx]  # empty for an insertion
            hyp_words = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]  # empty for a deletion
            for k in range(max(len(ref_words), len(hyp_words))):
                r = ref_words[k] if ref_words else KALDI_EPS
                h = hyp_words[k] if hyp_words else KALDI_EPS
                columns.append((r, h, _OPS[chunk.type]))
        lines += _per_utt_entry(utt, columns)
    return lines


def _per_utt_entry(utt: str, columns: list[tuple[str, str, str]]) -> list[str]:
    """The four lines of one utterance: each column centred on the widest of its three entries, two spaces apart."""
    widths = [max(map(len, column)) for column in columns]
    ref, hyp, ops = ("  ".join(_centred(c[row], w) for c, w in zip(columns, widths)) for row in range(3))
    counts = Counter(op for _, _, op in columns)
    return [
        f"{utt} ref  {ref}",
        f"{utt} hyp  {hyp}",
        f"{utt} op   {ops}",
        f"{utt} #csid {counts['C']} {counts['S']} {counts['I']} {counts['D']}",
    ]


def _centred(word: str, width: int) -> str:
    """Kaldi's ``cjustify``: centred in ``width``, the odd space on the left."""
    right = (width - len(word)) // 2
    return " " * (width - len(word) - right) + word + " " * right


_KALDI_LINE = re.compile(r"%(\w+) ([\d.]+) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]")


def parse_kaldi_line(line: str) -> ErrorCounts:
    """Read back a ``%WER 4.12 [ 40 / 971, 5 ins, 10 del, 25 sub ]`` line."""
    m = _KALDI_LINE.search(line)
    if not m:
        raise ValueError(f"not a Kaldi score line: {line!r}")
    _, _, _, total, ins, dels, subs = m.groups()
    return ErrorCounts(int(ins), int(dels), int(subs), int(total))
