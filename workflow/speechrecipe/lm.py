"""Word n-gram language model: interpolated modified Kneser-Ney, written and read as ARPA.

No maintained pip package builds ARPA Kneser-Ney models from Python (KenLM's ``lmplz``
is a C++ program; its Python module only queries), so training is here, following
Chen & Goodman (1998) and KenLM's ``lmplz``:

* sentences are padded with ``<s>`` and ``</s>``; ``<unk>`` stands for every word
  outside the training text;
* the highest order uses raw counts; lower orders use *continuation* counts (how many
  distinct words precede the n-gram), except n-grams that begin with ``<s>`` (nothing
  can precede them), which keep their raw counts ("adjusted counts");
* per order, three discounts D1, D2, D3+ come from the counts of counts t1..t4:
  ``Y = t1 / (t1 + 2 t2)``, ``Dk = k - (k + 1) Y t(k+1) / tk``; when the counts of
  counts cannot give them (tiny corpora), lmplz's fallback 0.5, 1.0, 1.5 is used;
* ``p(w | h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w | h')`` with
  ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / a(h.)`` and ``h'`` the history
  without its first word; unigrams interpolate with the uniform distribution over the
  vocabulary (``<unk>`` and ``</s>`` included, ``<s>`` excluded);
* the ARPA backoff weight of a context is its ``gamma(h)``: an unseen ``hw`` gets
  ``gamma(h) p(w | h')``, exactly the interpolated probability, so the model is normalized.

:class:`ArpaModel` reads any ARPA file (ours or KenLM's) and scores with the usual backoff.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from .fileio import atomic_open

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback
LOG10_ZERO = -99.0  # ARPA's "probability zero" (the <s> unigram)


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts: ``counts[n - 1][ngram]`` for n = 1..order, each sentence padded with <s> and </s>."""
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        padded = (BOS, *words, EOS)
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                counts[n - 1][padded[i : i + n]] += 1
    return counts


def adjusted_counts(counts: list[Counter]) -> list[Counter]:
    """Kneser-Ney's counts per order: raw at the top order and for n-grams starting with <s>,
    continuation counts (number of distinct left neighbours) otherwise. The <s> unigram is left out:
    it is never predicted."""
    order = len(counts)
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = Counter(counts[-1])
    for n in range(order - 1, 0, -1):  # n-grams of order n from the (n+1)-grams
        for longer in counts[n]:
            adjusted[n - 1][longer[1:]] += 1
        for gram, c in counts[n - 1].items():
            if gram[0] == BOS:
                adjusted[n - 1][gram] = c
    adjusted[0].pop((BOS,), None)
    return adjusted


def discounts(count_values: Iterable[int]) -> tuple[tuple[float, float, float], bool]:
    """Modified Kneser-Ney discounts (D1, D2, D3+) from one order's adjusted counts.

    Returns the discounts and whether they are the estimate (True) or the fallback (False).
    """
    t = Counter(c for c in count_values if 1 <= c <= 4)
    t1, t2, t3, t4 = (t[k] for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) > 0:
        y = t1 / (t1 + 2 * t2)
        d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
        if all(0 < dk < k for k, dk in zip((1, 2, 3), d)):
            return d, True
    return FALLBACK_DISCOUNTS, False


class NgramModel:
    """An interpolated modified Kneser-Ney model: probabilities and backoff weights per n-gram."""

    def __init__(self, order: int, prob: list[dict], bow: list[dict], discounts: list[tuple]):
        self.order = order
        self.prob = prob  # prob[n - 1][ngram] = p(last word | the others), linear
        self.bow = bow  # bow[n - 1][context] = gamma(context), linear, for n-grams that are contexts
        self.discounts = discounts

    def write_arpa(self, path: str | Path) -> None:
        """The ARPA file, n-grams sorted within each order (deterministic), written atomically."""
        with atomic_open(path) as f:
            f.write("\\data\\\n")
            for n in range(1, self.order + 1):
                f.write(f"ngram {n}={len(self.prob[n - 1])}\n")
            for n in range(1, self.order + 1):
                f.write(f"\n\\{n}-grams:\n")
                bows = self.bow[n - 1] if n < self.order else {}
                for gram in sorted(self.prob[n - 1]):
                    p = self.prob[n - 1][gram]
                    line = f"{_log10(p):.7f}\t{' '.join(gram)}"
                    if gram in bows:
                        line += f"\t{_log10(bows[gram]):.7f}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")


def _log10(p: float) -> float:
    return math.log10(p) if p > 0 else LOG10_ZERO


def train(
    sentences: Iterable[str | Sequence[str]], order: int = 3, fixed_discounts: tuple[float, float, float] | None = None
) -> NgramModel:
    """Train an interpolated modified Kneser-Ney model on sentences (strings are split on whitespace).

    ``fixed_discounts`` replaces the estimated D1, D2, D3+ at every order (for checking by hand).
    """
    if order < 1:
        raise ValueError(f"n-gram order must be at least 1, not {order}")
    sentences = [s.split() if isinstance(s, str) else list(s) for s in sentences]
    if not sentences:
        raise ValueError("no sentences to train a language model on")
    for words in sentences:
        if {BOS, EOS, UNK} & set(words):
            raise ValueError(f"sentence contains a reserved word ({BOS}, {EOS}, {UNK}): {' '.join(words)}")
    counts = count_ngrams(sentences, order)
    adjusted = adjusted_counts(counts)

    prob: list[dict] = [{} for _ in range(order)]
    bow: list[dict] = [{} for _ in range(order)]
    used_discounts = []
    for n in range(1, order + 1):
        grams = adjusted[n - 1]
        if fixed_discounts is not None:
            d = tuple(fixed_discounts)
        else:
            d, estimated = discounts(grams.values())
            if not estimated:
                log.warning(
                    "order %d: counts of counts too sparse for Kneser-Ney discounts; "
                    "using the fallback %s (as lmplz --discount_fallback)",
                    n,
                    d,
                )
        used_discounts.append(d)

        def discount(c: int, d=d) -> float:
            return d[min(c, 3) - 1]

        # Totals and discounted mass per context.
        total: dict[tuple, float] = defaultdict(float)
        freed: dict[tuple, float] = defaultdict(float)
        for gram, c in grams.items():
            total[gram[:-1]] += c
            freed[gram[:-1]] += discount(c)
        gamma = {h: freed[h] / total[h] for h in total}
        if n == 1:
            vocab = [g[0] for g in grams] + [UNK]
            uniform = gamma[()] / len(vocab)
            for w in vocab:
                c = grams.get((w,), 0)
                prob[0][(w,)] = (c - discount(c)) / total[()] + uniform if c else uniform
            prob[0][(BOS,)] = 0.0  # never predicted; listed for its backoff weight
        else:
            for gram, c in grams.items():
                lower = prob[n - 2][gram[1:]]  # present: every n-gram's suffix is an (n-1)-gram
                prob[n - 1][gram] = (c - discount(c)) / total[gram[:-1]] + gamma[gram[:-1]] * lower
            bow[n - 2] = gamma
    log.info(
        "trained a %d-gram Kneser-Ney model on %d sentences: %s n-grams; discounts %s",
        order,
        len(sentences),
        "/".join(str(len(p)) for p in prob),
        "; ".join(" ".join(f"{x:.3f}" for x in d) for d in used_discounts),
    )
    return NgramModel(order, prob, bow, used_discounts)


class ArpaModel:
    """An ARPA back-off n-gram model in memory, scoring ``log10 p(word | history)``."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.prob: list[dict] = []  # log10 probabilities per order
        self.bow: list[dict] = []  # log10 backoff weights per order
        declared: dict[int, int] = {}
        section = None
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = "data"
                elif line == "\\end\\":
                    break
                elif line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1 : -len("-grams:")])
                    if section != len(self.prob) + 1:
                        raise ValueError(f"{path}:{lineno}: section {line} out of order")
                    self.prob.append({})
                    self.bow.append({})
                elif section == "data":
                    if not line.startswith("ngram "):
                        raise ValueError(f"{path}:{lineno}: expected 'ngram N=COUNT', got {line!r}")
                    n, count = line[len("ngram ") :].split("=")
                    declared[int(n)] = int(count)
                elif isinstance(section, int):
                    fields = line.split()
                    if len(fields) not in (section + 1, section + 2):
                        raise ValueError(
                            f"{path}:{lineno}: a {section}-gram line needs {section + 1} or "
                            f"{section + 2} fields: {line!r}"
                        )
                    gram = tuple(fields[1 : section + 1])
                    self.prob[-1][gram] = float(fields[0])
                    if len(fields) == section + 2:
                        self.bow[-1][gram] = float(fields[-1])
                else:
                    raise ValueError(f"{path}:{lineno}: unexpected line before \\data\\: {line!r}")
        found = {n: len(p) for n, p in enumerate(self.prob, start=1)}
        if not declared or declared != found:
            raise ValueError(f"{path}: the header declares {declared} n-grams, the sections hold {found}")
        if (UNK,) not in self.prob[0]:
            raise ValueError(f"{path}: the model has no {UNK} unigram")
        self.order = len(self.prob)
        self.vocab = {g[0] for g in self.prob[0]}  # the words, <s>, </s> and <unk>

    def log10_prob(self, word: str, history: Sequence[str] = ()) -> float:
        """``log10 p(word | history)`` with back-off; unknown words (history included) are <unk>."""
        if word not in self.vocab:
            word = UNK
        history = (
            tuple(w if w in self.vocab else UNK for w in history[max(0, len(history) - self.order + 1) :])
            if self.order > 1
            else ()
        )
        backoff = 0.0
        for start in range(len(history)):  # the longest context first
            context = history[start:]
            p = self.prob[len(context)].get(context + (word,))
            if p is not None:
                return backoff + p
            backoff += self.bow[len(context) - 1].get(context, 0.0)
        return backoff + self.prob[0][(word,)]

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 probability of a whole sentence, ``</s>`` included (``<s>`` is the first history)."""
        history = [BOS]
        total = 0.0
        for w in [*words, EOS]:
            total += self.log10_prob(w, history)
            history.append(w)
        return total

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        total, n = 0.0, 0
        for words in sentences:
            total += self.sentence_log10_prob(words)
            n += len(words) + 1
        return 10 ** (-total / max(n, 1))


def train_arpa(texts: Iterable[str], path: str | Path, order: int = 3) -> ArpaModel:
    """Normalize transcripts (as for scoring), train, write ``path`` and read it back."""
    from .text import normalize

    sentences = [normalize(t).split() for t in texts]
    train(sentences, order).write_arpa(path)
    model = ArpaModel(path)
    log.info(
        "wrote %s: %d words (besides <s>, </s>, <unk>), training-text perplexity %.2f",
        path,
        len(model.vocab - {BOS, EOS, UNK}),
        model.perplexity(sentences),
    )
    return model


def best_weight(errors: dict[float, int]) -> float:
    """Kaldi's best_wer: the weight with the fewest dev-set word errors, ties to the smaller weight."""
    if not errors:
        raise ValueError("no weights were scored")
    return min(errors, key=lambda w: (errors[w], w))
