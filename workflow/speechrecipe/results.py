"""An experiment's results: the table of scores per evaluation set, RESULTS.md, and comparisons.

``results.tsv`` has one row per set (set, wer, cer, words, ins, del, sub, base, noise, snr):
base, noise and snr say which clean set a noisy test set was mixed from, with which noise, at
which SNR (clean sets have noise 'clean' and no snr).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from .schedule import training_warnings
from .scoring import parse_kaldi_line

COLUMNS = ["set", "wer", "cer", "words", "ins", "del", "sub", "base", "noise", "snr"]


def results_table(exp: str | os.PathLike, sets: list[str], conditions: dict[str, dict] | None = None) -> pd.DataFrame:
    """The scores of ``exp/decode_<set>/{wer,cer}`` for each set; ``conditions`` names each noisy set's
    base set, noise and SNR."""
    exp = Path(exp)
    rows = []
    for name in sets:
        wer = parse_kaldi_line((exp / f"decode_{name}" / "wer").read_text())
        cer = parse_kaldi_line((exp / f"decode_{name}" / "cer").read_text())
        condition = (conditions or {}).get(name, {"base": name, "noise": "clean", "snr": None})
        rows.append(
            {
                "set": name,
                "wer": round(wer.rate, 2),
                "cer": round(cer.rate, 2),
                "words": wer.total,
                "ins": wer.ins,
                "del": wer.dels,
                "sub": wer.subs,
                **condition,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """results.tsv, with or without the noisy-set columns base, noise, snr (added as clean when absent)."""
    table = pd.read_csv(path, sep="\t", dtype={"set": str})
    if "base" not in table:
        table["base"] = table["set"]
    table["base"] = table["base"].fillna(table["set"]).astype(str)
    if "noise" not in table:
        table["noise"] = "clean"
    table["noise"] = table["noise"].fillna("clean").astype(str).replace({"": "clean", "nan": "clean"})
    table["snr"] = pd.to_numeric(table["snr"], errors="coerce") if "snr" in table else math.nan
    return table


def markdown(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats as ``%g``, missing values empty."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def frame_markdown(table: pd.DataFrame) -> str:
    return markdown(list(table.columns), [list(row) for row in table.itertuples(index=False)])


def by_snr(table: pd.DataFrame) -> pd.DataFrame | None:
    """WER by SNR: a row per (clean set, noise), the clean WER beside it; None without noisy sets."""
    noisy = table[table["noise"] != "clean"]
    if noisy.empty:
        return None
    clean = table[table["noise"] == "clean"].set_index("base")["wer"]
    pivot = noisy.pivot_table(index=["base", "noise"], columns="snr", values="wer").sort_index(axis=1)
    pivot.columns = [f"{c:g} dB" for c in pivot.columns]
    pivot = pivot.reset_index()
    pivot.insert(2, "clean", [clean.get(b, float("nan")) for b in pivot["base"]])
    return pivot


def results_markdown(
    exp: str | os.PathLike, table: pd.DataFrame, history: pd.DataFrame, config_path: str | None = None
) -> str:
    """RESULTS.md of an experiment: the table, WER by SNR, the training summary, Kaldi's score lines and
    the command (and config) that reproduces it."""
    exp = Path(exp)
    best = history["dev_loss"].idxmin()
    lines = [
        f"# Results: {exp.name}",
        "",
        (f"WER and CER (%) per evaluation set, from exp/{exp.name}/decode_<set>/{{wer,cer}}:"),
        "",
        frame_markdown(table),
        "",
    ]
    snr_table = by_snr(table)
    if snr_table is not None:
        lines += ["WER (%) by SNR of the noisy test sets:", "", frame_markdown(snr_table), ""]
    steps = f"{int(history['step'].iloc[-1])} steps in " if "step" in history else ""
    lines += [
        (
            f"Acoustic model: {steps}{int(history['epoch'].iloc[-1])} epochs, {history['seconds'].sum():.0f} s of "
            f"training, best dev loss {history['dev_loss'].min():.4f} (epoch {int(history.loc[best, 'epoch'])}), "
            f"last dev token error rate {100 * history['dev_ter'].iloc[-1]:.2f} %."
        ),
        "",
    ]
    # The training job's warnings (all-blank dev output, a loss still falling fast) belong beside the table.
    lines += [f"**{w}**\n" for w in training_warnings(history.to_dict("records"))]
    for name in table["set"]:
        lines.append(f"    {(exp / f'decode_{name}' / 'wer').read_text().splitlines()[0]} {exp}/decode_{name}")
    lines.append("")
    if config_path:
        lines += [
            "Reproduce with:",
            "",
            f"    snakemake --cores 2 --configfile {config_path}",
            "",
            "Config:",
            "",
            "```yaml",
            Path(config_path).read_text().rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines)


def conditions_of(exp: str | os.PathLike, base: str) -> pd.DataFrame:
    """An experiment's rows of one clean set and its noisy copies, indexed by condition ('clean', 'sc 5 dB')."""
    table = read_results(Path(exp) / "results.tsv")
    table = table[table["base"] == base].copy()
    table["condition"] = [n if n == "clean" else f"{n} {s:g} dB" for n, s in zip(table["noise"], table["snr"])]
    return table.set_index("condition")


def compare(exps: list[str], base: str, relative_to: str | None = None) -> str:
    """Markdown tables comparing experiments on ``base`` and its noisy copies: WER / CER per condition,
    and (with ``relative_to``) each WER's relative change against that experiment."""
    tables = {exp: conditions_of(exp, base) for exp in exps}
    columns = list(dict.fromkeys(c for t in tables.values() for c in t.index))
    columns.sort(key=lambda c: (c != "clean", c.split(" ")[0], float(c.split(" ")[1]) if c != "clean" else 0))
    rows = [
        [exp] + [f"{t.loc[c, 'wer']:g} / {t.loc[c, 'cer']:g}" if c in t.index else "" for c in columns]
        for exp, t in tables.items()
    ]
    out = markdown(["system (WER / CER %)", *columns], rows)
    if relative_to:
        reference = tables[relative_to]
        rows = [
            [exp]
            + [f"{100 * (t.loc[c, 'wer'] / reference.loc[c, 'wer'] - 1):+.1f}" if c in t.index else "" for c in columns]
            for exp, t in tables.items()
        ]
        out += "\n\n" + markdown([f"WER change vs {relative_to} (%)", *columns], rows)
    return out
