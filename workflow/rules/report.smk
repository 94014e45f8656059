# The report: figures and tables of the experiment under exp/<tag>/plots/, written by every run (rule all
# asks for them) and embedded, with the rule graph and the captions of workflow/report/, by
#   snakemake --report report.html            # with the same --configfile/--config as the run
# The script imports matplotlib, never this file, so `snakemake -n` stays fast.


rule plots:
    input:
        results=f"{EXP}/results.tsv",
        am_history=AM_HISTORY,
        dae_history=[DAE_HISTORY] if DAE_USED else [],
        per_utt=expand(f"{EXP}/decode_{{set}}/per_utt", set=EVAL_SETS),
    output:
        results=plot_report("results.html", "results", "Results", "WER table"),
        wer_vs_snr=plot_report("wer_vs_snr.png", "wer_vs_snr", "Results", "WER against SNR"),
        confusion=plot_report("confusion_matrix.png", "confusion_matrix", "Results", "word confusions"),
        curves=plot_report("training_curves.png", "training_curves", "Training", "loss curves"),
        runtime=plot_report("runtime_memory.png", "runtime_memory", "Runtime and memory", "per rule (figure)"),
        runtime_html=plot_report("runtime_memory.html", "runtime_memory", "Runtime and memory", "per rule (table)"),
        runtime_tsv=f"{PLOTS}/runtime_memory.tsv",
    log:
        f"{EXP}/log/plots.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp_dir=input_dir("results"),
        out_dir=output_dir("runtime_tsv"),
        dae=lambda w, input: quoted(["--dae-history", input.dae_history[0]] if input.dae_history else []),
        benchmarks=benchmark_patterns,
        keep=plot_keep(),
    shell:
        "run_step make_plots {params.exp_dir:q} --out-dir {params.out_dir:q} {params.dae}"
        " --benchmark {params.benchmarks} --keep {params.keep} > {log} 2>&1"
