"""Figures and tables of an experiment: training curves, WER against SNR, word confusions, runtime and memory.

Everything here reads what the recipe wrote under ``exp/<tag>/`` (``am/history.tsv``,
``dae/history.tsv``, ``results.tsv``, ``decode_<set>/per_utt``, the rules' ``*.benchmark.tsv``)
and writes PNG figures (matplotlib, Agg backend: no display needed) and small self-contained
HTML tables (pandas). ``workflow/scripts/make_plots.py`` is its command line; the recipe runs it
as rule ``plots`` (``workflow/rules/report.smk``), whose outputs ``snakemake --report`` embeds.

matplotlib is imported inside the functions that draw, so reading and counting stay cheap.
"""

from __future__ import annotations

import glob
import html
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from .fileio import atomic_path
from .scoring import KALDI_EPS  # what per_utt writes for no word
from .text import DIGIT_WORDS

EPS = "<eps>"  # no word: the hypothesis side of a deletion, the reference side of an insertion
OTHER = "<other>"  # a hypothesis word that is not a digit word


# --- figures: shared -------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | os.PathLike) -> None:
    """Write a figure atomically (PNG), then free it."""
    plt = _pyplot()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def note_figure(out: str | os.PathLike, title: str, text: str) -> None:
    """A figure that only says something (e.g. why there is no plot), so every output of the rule exists."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, transform=ax.transAxes)
    _save(fig, out)


# --- training curves -------------------------------------------------------------------------------------------------


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """A training history.tsv (epoch, loss, dev_loss, ...), one row per epoch."""
    return pd.read_csv(path, sep="\t")


def _epoch_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _loss_axes(ax, history: pd.DataFrame, title: str) -> None:
    for column, label in (("loss", "training loss"), ("dev_loss", "dev loss")):
        if column in history:
            ax.plot(history["epoch"], history[column], marker="o", markersize=3, label=label)
    values = pd.concat([history[c] for c in ("loss", "dev_loss") if c in history]).dropna()
    if len(values) and values.min() > 0 and values.max() / values.min() > 20:
        ax.set_yscale("log")
    _epoch_axis(ax)
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def training_curves(
    am_history: pd.DataFrame, out: str | os.PathLike, dae_history: pd.DataFrame | None = None, title: str = ""
) -> None:
    """Loss curves of the acoustic model (training and dev loss), its dev token error rate and, when given,
    the denoising autoencoder's training and dev loss, side by side."""
    plt = _pyplot()
    panels = 2 + (dae_history is not None)
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 3.8), squeeze=False)
    axes = axes[0]
    _loss_axes(axes[0], am_history, "acoustic model (CTC)")
    ax = axes[1]
    if "dev_ter" in am_history:
        ax.plot(am_history["epoch"], 100 * am_history["dev_ter"], marker="o", markersize=3, color="C2")
        best = am_history["dev_ter"].idxmin()
        ax.annotate(
            f"{100 * am_history['dev_ter'][best]:.2f} %",
            (am_history["epoch"][best], 100 * am_history["dev_ter"][best]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
        )
    _epoch_axis(ax)
    ax.set_ylabel("dev token error rate (%)")
    ax.set_title("acoustic model: dev token error rate")
    ax.grid(alpha=0.3)
    if dae_history is not None:
        _loss_axes(axes[2], dae_history, "denoising autoencoder")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out)


# --- WER against SNR -------------------------------------------------------------------------------------------------


def noisy_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of sets made by adding noise at some SNR (noise not 'clean', snr a number)."""
    return table[(table["noise"] != "clean") & table["snr"].notna()]


def wer_snr_series(tables: Mapping[str, pd.DataFrame]) -> dict[tuple[str, str, str], dict]:
    """One series per (system, base set, noise): SNRs ascending, their WERs, and the base set's clean WER
    (None when the clean set was not scored)."""
    series = {}
    for system, table in tables.items():
        noisy = noisy_rows(table)
        clean = table[table["noise"] == "clean"]
        for (base, noise), rows in noisy.groupby(["base", "noise"], sort=True):
            rows = rows.sort_values("snr")
            clean_wer = clean.loc[clean["set"] == base, "wer"]
            series[(system, base, noise)] = {
                "snr": rows["snr"].astype(float).tolist(),
                "wer": rows["wer"].astype(float).tolist(),
                "clean": float(clean_wer.iloc[0]) if len(clean_wer) else None,
            }
    return series


def wer_vs_snr(tables: Mapping[str, pd.DataFrame], out: str | os.PathLike) -> dict[tuple[str, str, str], dict]:
    """WER (%) against SNR (dB), one line per (system, base set, noise), the clean WER at the right as 'clean'.

    Without noisy sets the figure says so. Returns the series drawn (see :func:`wer_snr_series`).
    """
    series = wer_snr_series(tables)
    if not series:
        note_figure(
            out,
            "WER against SNR",
            "No noisy sets in this experiment:\nresults.tsv has only clean sets, so there is no WER-against-SNR curve.",
        )
        return series
    plt = _pyplot()
    snrs = sorted({s for line in series.values() for s in line["snr"]})
    step = min((b - a for a, b in itertools.pairwise(snrs)), default=5.0)
    x_clean = snrs[-1] + max(step, 5.0)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    systems = {system for system, _, _ in series}
    for i, ((system, base, noise), line) in enumerate(series.items()):
        label = f"{base} + {noise}" if len(systems) == 1 else f"{system}: {base} + {noise}"
        color = f"C{i % 10}"
        ax.plot(line["snr"], line["wer"], marker="o", color=color, label=label)
        if line["clean"] is not None:
            ax.plot([line["snr"][-1], x_clean], [line["wer"][-1], line["clean"]], linestyle=":", color=color)
            ax.plot([x_clean], [line["clean"]], marker="s", color=color)
    ax.set_xticks([*snrs, x_clean])
    ax.set_xticklabels([f"{s:g}" for s in snrs] + ["clean"])
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("WER (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("WER against SNR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out)
    return series


# --- word confusions -------------------------------------------------------------------------------------------------


def read_per_utt(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The aligned (reference word, hypothesis word) pairs of a Kaldi per_utt file; a missing word is EPS.

    ``utt ref A B ***`` / ``utt hyp A C D`` gives (A, A), (B, C), (EPS, D).
    """
    refs: dict[str, list[str]] = {}
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        utt, kind, words = fields[0], fields[1], fields[2:]
        if kind == "ref":
            refs[utt] = words
        elif kind == "hyp":
            ref = refs.pop(utt, None)
            if ref is None or len(ref) != len(words):
                raise ValueError(f"{path}: the ref and hyp lines of {utt} are not aligned")
            pairs += [(EPS if r == KALDI_EPS else r, EPS if h == KALDI_EPS else h) for r, h in zip(ref, words)]
    return pairs


def is_digit_corpus(pairs: Iterable[tuple[str, str]]) -> bool:
    """Whether every reference word is a digit word (ZERO..NINE); at least one word is needed."""
    words = {r for r, _ in pairs if r != EPS}
    return bool(words) and words <= set(DIGIT_WORDS)


def confusion_counts(pairs: Iterable[tuple[str, str]], words: Iterable[str] = DIGIT_WORDS) -> pd.DataFrame:
    """Counts of (reference word, hypothesis word): rows the words then EPS (insertions), columns the words,
    OTHER (any hypothesis word outside ``words``) and EPS (deletions)."""
    words = list(words)
    known = set(words)
    counts = Counter((r, h if h in known or h == EPS else OTHER) for r, h in pairs)
    table = pd.DataFrame(
        0,
        index=pd.Index([*words, EPS], name="reference"),
        columns=pd.Index([*words, OTHER, EPS], name="hypothesis"),
        dtype=int,
    )
    for (r, h), n in counts.items():
        if r not in table.index:
            raise ValueError(f"reference word {r!r} is not one of {words}")
        table.loc[r, h] += n
    return table


def confusion_matrix(matrices: Mapping[str, pd.DataFrame], out: str | os.PathLike) -> None:
    """One heat map of confusion counts per set (rows reference, columns hypothesis), counts written in."""
    plt = _pyplot()
    n = len(matrices)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.8 * cols, 6.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, table) in zip(axes.flat, matrices.items()):
        values = table.to_numpy()
        # square-root colours, so that the few confusions show beside the many correct words
        ax.imshow(values.astype(float) ** 0.5, cmap="Blues", aspect="auto")
        peak = values.max() or 1
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if values[i, j]:
                    ax.text(
                        j,
                        i,
                        str(values[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if values[i, j] > peak / 4 else "black",
                    )
        ax.set_xticks(range(values.shape[1]))
        ax.set_xticklabels(table.columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(values.shape[0]))
        ax.set_yticklabels(table.index, fontsize=8)
        ax.set_xlabel("hypothesis")
        ax.set_ylabel("reference")
        errors = int(values.sum() - values.trace())
        ax.set_title(f"{name}: {int(values.sum())} aligned words, {errors} error(s)")
    fig.tight_layout()
    _save(fig, out)


# --- runtime and memory from Snakemake benchmark files ---------------------------------------------------------------


def _split_pattern(pattern: str) -> list[tuple[str, str | None, str | None]]:
    """A Snakemake file pattern as (literal, wildcard name, wildcard regex or None) pieces; braces may nest
    inside a constraint, e.g. ``{job,\\d{1,3}}``."""
    pieces, literal, i = [], "", 0
    while i < len(pattern):
        if pattern[i] != "{":
            literal += pattern[i]
            i += 1
            continue
        depth, j = 1, i + 1
        while j < len(pattern) and depth:
            depth += {"{": 1, "}": -1}.get(pattern[j], 0)
            j += 1
        body = pattern[i + 1 : j - 1]
        name, _, constraint = body.partition(",")
        pieces.append((literal, name.strip(), constraint.strip() or None))
        literal, i = "", j
    pieces.append((literal, None, None))
    return pieces


def pattern_glob(pattern: str) -> str:
    """``exp/x/decode_{set}/log/decode.benchmark.tsv`` -> ``exp/x/decode_*/log/decode.benchmark.tsv``."""
    return "".join(glob.escape(lit) + ("*" if name else "") for lit, name, _ in _split_pattern(pattern))


def pattern_regex(pattern: str) -> re.Pattern:
    """The regex of a Snakemake file pattern, one named group per wildcard (no '/' unless constrained)."""
    out, seen = "", set()
    for lit, name, constraint in _split_pattern(pattern):
        out += re.escape(lit)
        if name:
            if name in seen:
                out += f"(?P={name})"
            else:
                out += f"(?P<{name}>{constraint or '[^/]+'})"
                seen.add(name)
    return re.compile(out + r"\Z")


def find_benchmarks(
    patterns: Mapping[str, Iterable[str]], keep: Mapping[str, set[str]] | None = None, root: str | os.PathLike = "."
) -> list[tuple[str, Path]]:
    """(rule, file) of every existing benchmark file matching a rule's benchmark pattern (relative to ``root``).

    ``keep`` restricts wildcards to the values of this experiment (e.g. ``set`` to its sets, ``job`` to 1..nj),
    so that files left by other experiments on the same data, or by an earlier config, are not counted.
    """
    keep = keep or {}
    found = []
    for rule, rule_patterns in patterns.items():
        for pattern in rule_patterns:
            regex = pattern_regex(pattern)
            for path in sorted(glob.glob(os.path.join(glob.escape(str(root)), pattern_glob(pattern)))):
                match = regex.match(os.path.relpath(path, root))
                if match and all(match.group(k) in v for k, v in keep.items() if k in match.groupdict()):
                    found.append((rule, Path(path)))
    return found


def read_benchmarks(files: Iterable[tuple[str, str | os.PathLike]]) -> pd.DataFrame:
    """One row per job: rule, file, s (wall seconds), max_rss (MB), cpu_time (s); a benchmark with repeats
    counts as its mean time and its peak memory. NA (a job too short to be measured) stays missing."""
    rows = []
    for rule, path in files:
        table = pd.read_csv(path, sep="\t", na_values=["NA", "-", "n/a"])
        if table.empty:
            continue
        values = {
            c: pd.to_numeric(table[c], errors="coerce") if c in table else pd.Series(dtype=float)
            for c in ("s", "max_rss", "cpu_time")
        }
        rows.append(
            {
                "rule": rule,
                "file": str(path),
                "s": values["s"].mean(),
                "max_rss": values["max_rss"].max(),
                "cpu_time": values["cpu_time"].mean(),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "file", "s", "max_rss", "cpu_time"])


def runtime_memory_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, total / mean / longest wall time (s), total CPU time (s), peak max_rss (MB)."""
    columns = ["rule", "jobs", "total_s", "mean_s", "max_s", "cpu_time_s", "max_rss_mb"]
    if jobs.empty:
        return pd.DataFrame(columns=columns)
    grouped = jobs.groupby("rule", sort=False)
    table = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "total_s": grouped["s"].sum(min_count=1),
            "mean_s": grouped["s"].mean(),
            "max_s": grouped["s"].max(),
            "cpu_time_s": grouped["cpu_time"].sum(min_count=1),
            "max_rss_mb": grouped["max_rss"].max(),
        }
    ).reset_index()
    return table[columns].round(2)


def runtime_memory(table: pd.DataFrame, out: str | os.PathLike) -> None:
    """Horizontal bars per rule: total wall time (s) and peak resident memory (MB)."""
    if table.empty:
        note_figure(out, "Runtime and memory per rule", "No benchmark files were found for this experiment.")
        return
    plt = _pyplot()
    table = table.iloc[::-1]  # first rule at the top
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(table) + 1.6), sharey=True)
    left.barh(table["rule"], table["total_s"].fillna(0), color="C0")
    for y, (total, jobs) in enumerate(zip(table["total_s"], table["jobs"])):
        if pd.notna(total):
            left.text(total, y, f" {total:.1f} s" + (f" ({jobs} jobs)" if jobs > 1 else ""), va="center", fontsize=8)
    left.set_xlabel("wall time, all jobs (s)")
    left.set_title("runtime per rule")
    right.barh(table["rule"], table["max_rss_mb"].fillna(0), color="C1")
    for y, rss in enumerate(table["max_rss_mb"]):
        right.text(
            rss if pd.notna(rss) else 0,
            y,
            f" {rss:.0f} MB" if pd.notna(rss) else " not measured",
            va="center",
            fontsize=8,
        )
    right.set_xlabel("peak resident memory, max_rss (MB)")
    right.set_title("memory per rule")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.25)
    fig.tight_layout()
    _save(fig, out)


# --- tables as HTML --------------------------------------------------------------------------------------------------

_STYLE = """body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
p { max-width: 50em; }"""


def html_table(table: pd.DataFrame, out: str | os.PathLike, title: str, note: str = "") -> None:
    """A self-contained HTML page (inline style, no links) with one table."""
    body = table.to_html(index=False, na_rep="", border=0, float_format=lambda v: f"{v:g}")
    page = (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>\n{_STYLE}\n</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        + (f"<p>{html.escape(note)}</p>\n" if note else "")
        + f"{body}\n</body>\n</html>\n"
    )
    with atomic_path(out, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")


# --- the denoising autoencoder by SNR --------------------------------------------------------------------------------


def dae_loss_by_snr(table: pd.DataFrame, out: str | os.PathLike) -> None:
    """The DAE's dev reconstruction error against SNR, one line per noise condition, beside the noisy input's own
    error (dashed): the gap is what the DAE removes (``dae_loss_by_snr.tsv``: noise, snr, dev_loss, input_loss)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (noise, rows) in enumerate(table.groupby("noise", sort=False)):
        rows = rows.sort_values("snr")
        ax.plot(rows["snr"], rows["dev_loss"], marker="o", color=f"C{i}", label=f"{noise}: DAE output")
        ax.plot(rows["snr"], rows["input_loss"], ls="--", marker=".", color=f"C{i}", label=f"{noise}: noisy input")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("mean squared error per value (normalized features)")
    ax.set_title("DAE reconstruction error on dev, by SNR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out)
