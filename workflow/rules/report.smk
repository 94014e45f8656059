# The report: figures and tables of the experiment under exp/<tag>/plots/, written by every run (rule all
# asks for them) and embedded, with the rule graph and the captions of workflow/report/, by
#   snakemake --report report.html            # with the same --configfile/--config as the run
# The script imports matplotlib, never this file, so `snakemake -n` stays fast.

PLOTS = f"{EXP}/plots"
# The sets this experiment reads (features, decoding): benchmark files of other sets of the same data
# (another experiment's, an earlier config's) are not counted; make_plots.py adds the sets of results.tsv.
PLOT_SETS = list(dict.fromkeys([config["train_set"], TRAIN_FEATS, config["dev_set"], *EVAL_SETS, *NOISY_SETS]))
PLOT_JOBS = [str(j) for j in range(1, config["features"]["nj"] + 1)]
PLOT_DAE_OPTION = f" --dae-history {EXP}/dae/history.tsv" if DAE_USED else ""
# Rules with benchmark files that are not part of this run: on demand, or switched off in this config
# (a file an earlier config left behind would otherwise count).
PLOT_SKIP_RULES = {"export_model"} | ({"train_dae"} if not DAE_USED else set()) | (
    {"lm_weight_sweep"} if not USE_LM else set())


def benchmark_patterns(wildcards):
    """RULE=PATTERN of every rule with a benchmark file, shell-quoted: make_plots.py finds this run's files
    through them. Asked for when the DAG is built, so rules included after this file count too."""
    items = [f"{rule.name}={rule.benchmark}" for rule in workflow.rules
             if rule.benchmark is not None and not callable(rule.benchmark) and rule.name not in PLOT_SKIP_RULES]
    return " ".join(shlex.quote(item) for item in items)


def plot_report(name, caption, category, figure):
    return report(f"{PLOTS}/{name}", caption=f"../report/{caption}.rst", category=category,
                  labels={"figure": figure})


rule plots:
    input:
        results=rules.results.output.tsv,
        am_history=rules.train_am.output.history,
        dae_history=[f"{EXP}/dae/history.tsv"] if DAE_USED else [],
        per_utt=expand(f"{EXP}/decode_{{set}}/per_utt", set=EVAL_SETS),
    output:
        results=plot_report("results.html", "results", "Results", "WER table"),
        wer_vs_snr=plot_report("wer_vs_snr.png", "wer_vs_snr", "Results", "WER against SNR"),
        confusion=plot_report("confusion_matrix.png", "confusion_matrix", "Results", "word confusions"),
        curves=plot_report("training_curves.png", "training_curves", "Training", "loss curves"),
        runtime=plot_report("runtime_memory.png", "runtime_memory", "Runtime and memory", "per rule (figure)"),
        runtime_html=plot_report("runtime_memory.html", "runtime_memory", "Runtime and memory", "per rule (table)"),
        runtime_tsv=f"{PLOTS}/runtime_memory.tsv",
    params:
        benchmarks=benchmark_patterns,
        keep=" ".join(shlex.quote(f"{name}={','.join(values)}")
                      for name, values in {"set": PLOT_SETS, "noisy": NOISY_SETS, "job": PLOT_JOBS}.items()),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{EXP}/log/plots.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/make_plots.py {EXP} --out-dir {PLOTS}" + PLOT_DAE_OPTION +
        " --benchmark {params.benchmarks} --keep {params.keep} > {log} 2>&1"
