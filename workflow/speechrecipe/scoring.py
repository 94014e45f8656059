"""WER and CER with jiwer, written the way Kaldi writes them.

Reference and hypothesis both pass through :func:`speechrecipe.text.normalize`
first. Per set the recipe writes ``wer`` and ``cer``
(``%WER 4.12 [ 40 / 971, 5 ins, 10 del, 25 sub ]``) and ``per_utt`` (Kaldi's
``ref``/``hyp``/``op``/``#csid`` lines).
"""

from __future__ import annotations

import logging
import re
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
    """
    utts = sorted(refs)
    missing = [u for u in utts if u not in hyps]
    if missing:
        log.warning("%d utterance(s) have no hypothesis and count as deleted (e.g. %s)", len(missing), missing[:3])
    ref_texts = [normalize(refs[u]) for u in utts]
    hyp_texts = [normalize(hyps.get(u, "")) for u in utts]
    empty_refs = [u for u, r in zip(utts, ref_texts) if not r]
    if empty_refs:
        raise ValueError(
            f"references are empty after normalization for {empty_refs[:3]}: "
            "fix the transcripts (data validation rejects empty ones)"
        )
    words = jiwer.process_words(ref_texts, hyp_texts)
    chars = jiwer.process_characters([r.replace(" ", "") for r in ref_texts], [h.replace(" ", "") for h in hyp_texts])
    return SetScore(_counts(words), _counts(chars), _per_utt_lines(utts, words), missing)


def _per_utt_lines(utts, words) -> list[str]:
    """Kaldi's ``per_utt`` format: aligned ref, hyp, op and #csid lines for each utterance."""
    lines = []
    for utt, ref, hyp, chunks in zip(utts, words.references, words.hypotheses, words.alignments):
        r_row, h_row, ops = [], [], []
        c = s = i = d = 0
        for chunk in chunks:
            if chunk.type == "equal":
                for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                    r_row.append(ref[chunk.ref_start_idx + k])
                    h_row.append(hyp[chunk.hyp_start_idx + k])
                    ops.append("C")
                c += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "substitute":
                for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                    r_row.append(ref[chunk.ref_start_idx + k])
                    h_row.append(hyp[chunk.hyp_start_idx + k])
                    ops.append("S")
                s += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "delete":
                for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                    r_row.append(ref[k])
                    h_row.append("***")
                    ops.append("D")
                d += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "insert":
                for k in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                    r_row.append("***")
                    h_row.append(hyp[k])
                    ops.append("I")
                i += chunk.hyp_end_idx - chunk.hyp_start_idx
        lines += [
            f"{utt} ref {' '.join(r_row)}",
            f"{utt} hyp {' '.join(h_row)}",
            f"{utt} op {' '.join(ops)}",
            f"{utt} #csid {c} {s} {i} {d}",
        ]
    return lines


_KALDI_LINE = re.compile(r"%(\w+) ([\d.]+) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]")


def parse_kaldi_line(line: str) -> ErrorCounts:
    """Read back a ``%WER 4.12 [ 40 / 971, 5 ins, 10 del, 25 sub ]`` line."""
    m = _KALDI_LINE.search(line)
    if not m:
        raise ValueError(f"not a Kaldi score line: {line!r}")
    _, _, _, total, ins, dels, subs = m.groups()
    return ErrorCounts(int(ins), int(dels), int(subs), int(total))
