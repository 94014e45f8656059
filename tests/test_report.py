"""The report: figures and tables under exp/<tag>/plots/ (speechrecipe.plots, rule plots) and
`snakemake --report report.html`, opened in a real headless browser (Debian's chromium).

The unit tests draw from small handmade inputs. The end-to-end tests run the tiny recipe with two noisy
copies of its test set, make the report, check that it is one self-contained file, then let chromium read
it as a person would (tests/report/check_report.js: every category, every result's view button) and
check that every plot is shown and decodes, that nothing refers outside the file, and that no script
fails. Chromium is installed with apt-get when it is missing (as root, like tests/slurm/start_cluster.sh
installs SLURM); the browser tests are skipped, saying why, only where it can neither be found nor installed.
"""

import base64
import copy
import html
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_recipe import TINY, snakemake

from conftest import ROOT
from speechrecipe import plots
from speechrecipe.results import read_results
from speechrecipe.scoring import score

CHECK_HEAD = ROOT / "tests/report/check_head.js"
CHECK_REPORT = ROOT / "tests/report/check_report.js"
PLOT_FILES = [
    "results.html",
    "wer_vs_snr.png",
    "confusion_matrix.png",
    "training_curves.png",
    "runtime_memory.png",
    "runtime_memory.html",
    "runtime_memory.tsv",
]
# The tiny recipe with its test set copied under generated white noise at 0 and 20 dB.
REPORT_TINY = {
    **copy.deepcopy({k: v for k, v in TINY.items() if k != "test_sets"}),
    "tag": "tiny_report",
    "noise": {"test_snrs": [0, 20], "test_noise_dirs": {"white": ["generated:white"]}, "sets": ["test"]},
}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --- speechrecipe.plots on handmade input ----------------------------------------------------------------------------

PER_UTT = """\
u1 ref ONE TWO THREE ***
u1 hyp ONE FOUR *** FIVE
u1 op C S D I
u1 #csid 1 1 1 1
u2 ref NINE NINE ZERO
u2 hyp NINE HELLO ZERO
u2 op C S C
u2 #csid 2 1 0 0
"""


def test_confusions_of_words_from_per_utt(tmp_path):
    (tmp_path / "per_utt").write_text(PER_UTT)
    pairs = plots.read_per_utt(tmp_path / "per_utt")
    assert pairs == [
        ("ONE", "ONE"),
        ("TWO", "FOUR"),
        ("THREE", plots.EPS),
        (plots.EPS, "FIVE"),
        ("NINE", "NINE"),
        ("NINE", "HELLO"),
        ("ZERO", "ZERO"),
    ]
    assert plots.is_digit_corpus(pairs)  # HELLO is a hypothesis word: the references decide
    assert not plots.is_digit_corpus([("ONE", "ONE"), ("PRINTING", "PRINTING")])
    assert not plots.is_digit_corpus([])

    table = plots.confusion_counts(pairs)
    assert list(table.index) == [*plots.DIGIT_WORDS, plots.EPS]
    assert list(table.columns) == [*plots.DIGIT_WORDS, plots.OTHER, plots.EPS]
    expected = {
        ("ONE", "ONE"): 1,
        ("TWO", "FOUR"): 1,
        ("THREE", plots.EPS): 1,
        (plots.EPS, "FIVE"): 1,
        ("NINE", "NINE"): 1,
        ("NINE", plots.OTHER): 1,
        ("ZERO", "ZERO"): 1,
    }
    nonzero = {(r, h): int(table.loc[r, h]) for r in table.index for h in table.columns if table.loc[r, h]}
    assert nonzero == expected
    # The errors of the matrix are Kaldi's: 2 substitutions (one to a non-digit), 1 deletion, 1 insertion.
    assert int(table.to_numpy().sum() - np.trace(table.to_numpy()[:10, :10])) == 4

    plots.confusion_matrix({"test": table, "dev": table}, tmp_path / "cm.png")
    width, height = png_size(tmp_path / "cm.png")
    assert width > height > 300  # two panels side by side

    (tmp_path / "bad").write_text("u1 ref ONE TWO\nu1 hyp ONE\n")
    with pytest.raises(ValueError, match="not aligned"):
        plots.read_per_utt(tmp_path / "bad")


def test_per_utt_as_score_writes_it_reads_back(tmp_path):
    """score() centres each column as Kaldi does (several spaces between words): the reader is not thrown by it."""
    result = score({"u1": "ONE TWO THREE", "u2": "NINE"}, {"u1": "ONE FOURTEEN", "u2": "NINE SEVEN"})
    (tmp_path / "per_utt").write_text("\n".join(result.per_utt) + "\n")
    assert "u1 ref  ONE     TWO    THREE" in result.per_utt
    assert plots.read_per_utt(tmp_path / "per_utt") == [
        ("ONE", "ONE"),
        ("TWO", "FOURTEEN"),
        ("THREE", plots.EPS),
        ("NINE", "NINE"),
        (plots.EPS, "SEVEN"),
    ]


def write_tsv(path: Path, text: str) -> Path:
    path.write_text(text.replace(" ", "\t"))
    return path


def test_wer_against_snr_one_line_per_base_set_and_noise(tmp_path):
    # results.tsv as make_results.py writes it: clean sets with noise 'clean' and an empty snr.
    results = write_tsv(
        tmp_path / "results.tsv",
        """\
set wer cer words ins del sub base noise snr
dev 5.0 3.0 100 1 2 2 dev clean _
test 10.0 6.0 100 2 3 5 test clean _
test_white_10dB 20.0 9.0 100 4 6 10 test white 10.0
test_white_0dB 40.0 21.0 100 8 12 20 test white 0.0
test_babble_0dB 50.0 30.0 100 10 20 20 test babble 0.0
test_babble_10dB 30.0 16.0 100 6 9 15 test babble 10.0
dev_white_0dB 35.0 16.0 100 6 9 20 dev white 0
""".replace("_\n", "\n"),
    )
    table = read_results(results)
    series = plots.wer_vs_snr({"sysA": table}, tmp_path / "snr.png")
    assert series == {
        ("sysA", "dev", "white"): {"snr": [0.0], "wer": [35.0], "clean": 5.0},
        ("sysA", "test", "babble"): {"snr": [0.0, 10.0], "wer": [50.0, 30.0], "clean": 10.0},
        ("sysA", "test", "white"): {"snr": [0.0, 10.0], "wer": [40.0, 20.0], "clean": 10.0},
    }
    assert png_size(tmp_path / "snr.png")[0] > 500
    # Two systems in one figure: each keeps its own lines.
    both = plots.wer_snr_series({"sysA": table, "sysB": table})
    assert len(both) == 6 and both[("sysB", "test", "white")]["wer"] == [40.0, 20.0]

    # The results.tsv of before the noisy sets (no base/noise/snr columns), and one with only clean sets:
    # no line, and the figure is a note saying so.
    old = write_tsv(tmp_path / "old.tsv", "set wer cer words ins del sub\ndev 5.0 3.0 100 1 2 2\n")
    clean_only = write_tsv(
        tmp_path / "clean.tsv", "set wer cer words ins del sub base noise snr\ndev 5.0 3.0 100 1 2 2 dev clean \n"
    )
    for path in (old, clean_only):
        table = read_results(path)
        assert list(table["noise"]) == ["clean"] and list(table["base"]) == ["dev"]
        assert plots.wer_vs_snr({"x": table}, tmp_path / "note.png") == {}
        assert png_size(tmp_path / "note.png")[0] > 100


def test_runtime_and_memory_per_rule_from_benchmark_files(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"

    def bench(path, *rows):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(
            header + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n" for s, rss, cpu in rows)
        )

    bench("exp/prepare/d/log/prepare.benchmark.tsv", (2.0, 40.0, 1.0))
    bench("exp/make_fbank/d/train/log/make_features.1.benchmark.tsv", (3.0, 500.0, 2.5))
    bench("exp/make_fbank/d/train/log/make_features.2.benchmark.tsv", (5.0, 520.5, 4.5))
    bench("exp/make_fbank/d/test/log/make_features.1.benchmark.tsv", (1.0, 300.0, 0.5))
    bench("exp/make_fbank/d/test/log/make_features.3.benchmark.tsv", (99.0, 9999.0, 99.0))  # nj was 3 once
    bench("exp/make_fbank/d/other/log/make_features.1.benchmark.tsv", (99.0, 9999.0, 99.0))  # another experiment's
    bench("exp/x/decode_test/log/decode.benchmark.tsv", (4.0, "NA", "NA"), (6.0, "NA", "NA"))  # repeats, unmeasured
    patterns = {
        "prepare_data": ["exp/prepare/d/log/prepare.benchmark.tsv"],
        "make_features": ["exp/make_fbank/d/{set}/log/make_features.{job,\\d{1,3}}.benchmark.tsv"],
        "decode": ["exp/x/decode_{set}/log/decode.benchmark.tsv"],
        "train_am": ["exp/x/am/log/train.benchmark.tsv"],
    }  # not run: no file
    found = plots.find_benchmarks(patterns, keep={"set": {"train", "test"}, "job": {"1", "2"}}, root=tmp_path)
    assert [(rule, path.relative_to(tmp_path).as_posix()) for rule, path in found] == [
        ("prepare_data", "exp/prepare/d/log/prepare.benchmark.tsv"),
        ("make_features", "exp/make_fbank/d/test/log/make_features.1.benchmark.tsv"),
        ("make_features", "exp/make_fbank/d/train/log/make_features.1.benchmark.tsv"),
        ("make_features", "exp/make_fbank/d/train/log/make_features.2.benchmark.tsv"),
        ("decode", "exp/x/decode_test/log/decode.benchmark.tsv"),
    ]
    table = plots.runtime_memory_table(plots.read_benchmarks(found)).set_index("rule")
    assert list(table.index) == ["prepare_data", "make_features", "decode"]
    assert table.loc["make_features", "jobs"] == 3 and table.loc["make_features", "total_s"] == 9.0
    assert table.loc["make_features", "max_s"] == 5.0 and table.loc["make_features", "max_rss_mb"] == 520.5
    assert table.loc["make_features", "cpu_time_s"] == 7.5
    assert table.loc["decode", "total_s"] == 5.0  # the mean of its two repeats
    assert pd.isna(table.loc["decode", "max_rss_mb"])
    plots.runtime_memory(table.reset_index(), tmp_path / "rm.png")
    assert png_size(tmp_path / "rm.png")[0] > 500
    assert plots.pattern_glob("a/{x}/b.{job,\\d{1,3}}.tsv") == "a/*/b.*.tsv"


def test_training_curves_with_and_without_the_dae(tmp_path):
    am = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [100.0, 10.0, 1.0],
            "dev_loss": [90.0, 12.0, 2.0],
            "dev_ter": [1.0, 0.5, 0.2],
            "lr": [1e-3] * 3,
            "seconds": [1.0] * 3,
        }
    )
    dae = pd.DataFrame(
        {"epoch": [1, 2], "loss": [3.0, 2.0], "dev_loss": [3.5, 2.5], "lr": [1e-3] * 2, "seconds": [1.0] * 2}
    )
    plots.training_curves(am, tmp_path / "am.png")
    plots.training_curves(am, tmp_path / "both.png", dae)
    assert png_size(tmp_path / "both.png")[0] > 1.3 * png_size(tmp_path / "am.png")[0]  # a third panel


# --- the recipe's plots and `snakemake --report` ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """The tiny recipe with noisy test sets, run to the end, and its report."""
    workdir = tmp_path_factory.mktemp("report")
    snakemake(workdir, REPORT_TINY)
    result = snakemake(workdir, REPORT_TINY, args=["--report", str(workdir / "report.html")])
    assert "Report created" in result.stdout + result.stderr, result.stderr[-2000:]
    return workdir


@pytest.mark.slow
def test_every_run_writes_the_plots(report_run):
    plots_dir = report_run / "exp/tiny_report/plots"
    for name in PLOT_FILES:
        assert (plots_dir / name).stat().st_size > 0, name
    for name in PLOT_FILES:
        if name.endswith(".png"):
            assert png_size(plots_dir / name)[0] > 300, name
    page = (plots_dir / "results.html").read_text()
    assert "<table" in page and "test_white_0dB" in page and "test_white_20dB" in page
    runtime = pd.read_csv(plots_dir / "runtime_memory.tsv", sep="\t").set_index("rule")
    assert {"prepare_data", "make_features", "mix_noise", "train_am", "decode"} <= set(runtime.index)
    # Features of train, dev, test and the two noisy copies, 2 jobs each; 4 sets decoded.
    assert runtime.loc["make_features", "jobs"] == 10 and runtime.loc["decode", "jobs"] == 4
    assert (runtime["total_s"] > 0).all() and runtime.loc["train_am", "max_rss_mb"] > 10
    log = (report_run / "exp/tiny_report/log/plots.log").read_text()
    assert "confusion matrix of digit words: sets ['dev', 'test']" in log
    assert "WER against SNR: 1 line(s)" in log


class _References(HTMLParser):
    """Every tag's src/href-like attribute of an HTML file."""

    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [
            (tag, name, value or "")
            for name, value in attrs
            if name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href")
        ]


def allowed_reference(value: str) -> bool:
    """Inside the file: data: URIs, anchors, the report's own javascript: navigation; nothing else."""
    value = value.strip()
    return value == "" or value.startswith(("data:", "#", "javascript:"))


def report_results(page: str) -> dict:
    found = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', page, flags=re.DOTALL)
    assert found, "no results in the report"
    return json.loads(found.group(1))


def data_uri_bytes(uri: str) -> bytes:
    head, _, data = uri.partition(",")
    return base64.b64decode(data) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(data)


@pytest.mark.slow
def test_the_report_is_one_self_contained_file(report_run):
    page = (report_run / "report.html").read_text(encoding="utf-8")
    parser = _References()
    parser.feed(page)
    outside = [r for r in parser.refs if not allowed_reference(r[2])]
    assert not outside, f"the report refers outside itself: {outside[:5]}"
    results = report_results(page)
    by_name = {Path(path).name: entry for path, entry in results.items()}
    assert set(by_name) == {n for n in PLOT_FILES if not n.endswith(".tsv")}
    for name, entry in by_name.items():
        mime = "image/png" if name.endswith(".png") else "text/html"
        assert entry["mime_type"] == mime and entry["data_uri"].startswith(f"data:{mime}"), name
        assert entry["caption"].strip(), f"{name} has no caption"
    # The embedded figures are the recipe's files, byte for byte; the tables are HTML without references.
    plots_dir = report_run / "exp/tiny_report/plots"
    assert (
        data_uri_bytes(by_name["training_curves.png"]["data_uri"]) == (plots_dir / "training_curves.png").read_bytes()
    )
    table = data_uri_bytes(by_name["results.html"]["data_uri"]).decode()
    assert "<table" in table and "test_white_20dB" in table
    inner = _References()
    inner.feed(table + data_uri_bytes(by_name["runtime_memory.html"]["data_uri"]).decode())
    assert inner.refs == []
    # The rule graph and the workflow description (workflow/report/workflow.rst, rendered with the config).
    assert '"rule": "plots"' in page or '"rule":"plots"' in page
    assert "tiny_report" in page and "Runtime and memory" in page


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> str:
    """Debian's chromium: found, or installed with apt-get (as root, as CI runs)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "chromium is not installed and cannot be installed here (needs root and apt-get; "
            "CI runs as root): apt-get install chromium"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", "chromium"]
    log = tmp_path_factory.mktemp("apt") / "apt.log"
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:  # stale package lists: refresh them once
        subprocess.run(
            ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=600"],
            env=env,
            capture_output=True,
            timeout=900,
            check=False,
        )
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800, check=False)
    log.write_text(result.stdout + result.stderr)
    found = shutil.which("chromium")
    if result.returncode != 0 or not found:
        pytest.skip(f"chromium could not be installed with apt-get: {(result.stdout + result.stderr)[-500:]}")
    return found


def headless_flags(profile: Path) -> list[str]:
    """What every headless chromium of the tests runs with (as root in CI, in a container, profile in ``profile``)."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]


def headless(chromium: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """chromium --headless on a local file, with no network (every host name fails to resolve)."""
    cmd = [
        chromium,
        *headless_flags(profile),
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=60000",
        "--window-size=1600,1000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=profile, check=False)


def instrumented_copy(report: Path, out: Path) -> Path:
    """The report with tests/report/check_head.js first in <head> and check_report.js before </body>."""
    page = report.read_text(encoding="utf-8")
    page = page.replace("<head>", f"<head>\n<script>{CHECK_HEAD.read_text()}</script>", 1)
    end = page.rindex("</body>")
    out.write_text(page[:end] + f"<script>{CHECK_REPORT.read_text()}</script>\n" + page[end:], encoding="utf-8")
    return out


@pytest.mark.slow
def test_chromium_opens_the_report_and_shows_every_plot(report_run, chromium, tmp_path):
    page = instrumented_copy(report_run / "report.html", tmp_path / "report_check.html")
    result = headless(chromium, page, tmp_path, "--dump-dom")
    found = re.findall(r'<pre id="report-check"[^>]*>(.*?)</pre>', result.stdout, flags=re.DOTALL)
    assert result.returncode == 0 and found, f"chromium did not render the report:\n{result.stderr[-3000:]}"
    check = json.loads(html.unescape(found[-1]))

    assert check["app"], "the report's application did not start"
    assert check["errors"] == [] and check["console"] == [], (check["errors"], check["console"])
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    assert not [line for line in console if re.search(r"error|uncaught|failed", line, flags=re.IGNORECASE)], console
    # The start page: the rule graph, drawn, with the recipe's rules.
    assert check["start_view"] == "rulegraph" and check["rulegraph_drawn"] >= 1
    assert {"prepare_data", "make_features", "train_am", "decode", "score", "results", "plots"} <= set(
        check["rulegraph_rules"]
    )
    # Every result of every category was shown through its view button: images decoded, tables in frames.
    assert {c["name"]: c["results"] for c in check["categories"]} == {
        "Results": 3,
        "Training": 1,
        "Runtime and memory": 2,
    }
    shown = {Path(v["result"]).name: v for v in check["views"]}
    assert set(shown) == {n for n in PLOT_FILES if not n.endswith(".tsv")}
    for name, view in shown.items():
        if name.endswith(".png"):
            assert view["content"] == "img" and view.get("shown") == "img", view
            assert view["complete"] and view["width"] > 300 and view["height"] > 100, view
            assert (view["width"], view["height"]) == png_size(report_run / "exp/tiny_report/plots" / name), view
        else:
            assert view["content"] == "html" and view.get("shown") == "iframe", view
    # No broken or outside links in any view, and nothing fetched from outside the file.
    outside = [r for r in check["refs"] if not allowed_reference(r["value"])]
    assert not outside, outside[:5]
    assert [r for r in check["resources"] if not r.startswith("data:")] == []

    # What a reader sees at the end (the training curves): the plot's own line colours are on the screen.
    assert check["final_view"].endswith("training_curves.png")
    shot = tmp_path / "screenshot.png"
    result = headless(chromium, page, tmp_path, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-3000:]
    from matplotlib.image import imread

    pixels = (imread(shot)[..., :3] * 255).round().astype(int)
    blue = np.all(np.abs(pixels - [31, 119, 180]) <= 8, axis=-1).sum()  # matplotlib's C0: training loss
    orange = np.all(np.abs(pixels - [255, 127, 14]) <= 8, axis=-1).sum()  # C1: dev loss
    assert blue > 200 and orange > 200, f"the training curves are not on the screen ({blue}, {orange} pixels)"
