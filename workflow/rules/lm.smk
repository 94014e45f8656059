# Stage 5b (optional, decode.use_lm): a word n-gram language model on the training
# transcripts, and its weight chosen on the dev set like Kaldi's best_wer.
# Nothing here runs unless decode.use_lm is true (rule decode then asks for both outputs),
# or unless asked for by name: snakemake --cores 2 exp/<tag>/lm/sweep.tsv


rule train_lm:
    input:
        text=f"{DATA}/{TRAIN_SET}/text",
        validated=f"{DATA}/{TRAIN_SET}/validation.txt",
    output:
        arpa=LM_ARPA,
    log:
        f"{EXP}/lm/log/train_lm.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        order=RECIPE.decode.lm.order,
    shell:
        "run_step train_lm {input.text:q} {output.arpa:q} --order {params.order} > {log} 2>&1"


rule lm_weight_sweep:
    # Decode the dev set once per weight of decode.lm.weights (the network runs once), score each,
    # keep the best: sweep.tsv (weight, wer, ...) and best_weight (ties go to the smaller weight).
    input:
        model=AM_FINAL,
        feats=f"{FEATS}/{DEV_SET}/feats.scp",
        ref=f"{DATA}/{DEV_SET}/text",
        lm=LM_ARPA,
    output:
        tsv=f"{EXP}/lm/sweep.tsv",
        best=LM_WEIGHT,
    log:
        f"{EXP}/lm/log/sweep.log",
    benchmark:
        f"{EXP}/lm/log/sweep.benchmark.tsv"
    threads: RECIPE.am.threads
    resources:
        mem_mb=3000,
        runtime=240,
    params:
        feat_dir=input_dir("feats"),
        out_dir=output_dir("tsv"),
        decode=as_json(DECODE_SEARCH),
        weights=" ".join(str(w) for w in RECIPE.decode.lm.weights),
        wip=RECIPE.decode.lm.word_insertion_penalty,
    shell:
        "run_step sweep_lm_weight {input.model:q} {params.feat_dir:q} {input.ref:q} {input.lm:q} {params.out_dir:q}"
        " --weights {params.weights} --word-insertion-penalty {params.wip} --config {params.decode:q}"
        " --threads {threads} > {log} 2>&1"
