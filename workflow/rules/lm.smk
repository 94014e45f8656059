# Stage 5b (optional, decode.use_lm): a word n-gram language model on the training
# transcripts, and its weight chosen on the dev set like Kaldi's best_wer.
# Nothing here runs unless decode.use_lm is true (rule decode then asks for both outputs),
# or unless asked for by name: snakemake --cores 2 exp/<tag>/lm/sweep.tsv


rule train_lm:
    input:
        text=f"{DATA}/{config['train_set']}/text",
        validated=f"{DATA}/{config['train_set']}/validation.txt",
    output:
        f"{EXP}/lm/lm.arpa",
    params:
        order=config["decode"]["lm"]["order"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        f"{EXP}/lm/log/train_lm.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/train_lm.py {input.text} {output} --order {params.order} > {log} 2>&1"


rule lm_weight_sweep:
    # Decode the dev set once per weight of decode.lm.weights (the network runs once), score each,
    # keep the best: sweep.tsv (weight, wer, ...) and best_weight (ties go to the smaller weight).
    input:
        model=rules.train_am.output.model,
        feats=f"{FEATS}/{config['dev_set']}/feats.scp",
        ref=f"{DATA}/{config['dev_set']}/text",
        lm=rules.train_lm.output,
    output:
        tsv=f"{EXP}/lm/sweep.tsv",
        best=f"{EXP}/lm/best_weight",
    params:
        decode=as_json(DECODE_SEARCH),
        weights=" ".join(str(w) for w in config["decode"]["lm"]["weights"]),
        wip=config["decode"]["lm"]["word_insertion_penalty"],
    threads: config["am"]["threads"]
    resources:
        mem_mb=3000,
        runtime=240,
    log:
        f"{EXP}/lm/log/sweep.log",
    benchmark:
        f"{EXP}/lm/log/sweep.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/sweep_lm_weight.py {input.model} {FEATS}/{config[dev_set]} {input.ref}"
        " {input.lm} {EXP}/lm --weights {params.weights} --word-insertion-penalty {params.wip}"
        " --config {params.decode:q} --threads {threads} > {log} 2>&1"
