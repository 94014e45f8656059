# Stage 5: decode every evaluation set, score it like Kaldi, collect the table.


rule decode:
    input:
        model=rules.train_am.output.model,
        feats=f"{FEATS}/{{set}}/feats.scp",
    output:
        f"{EXP}/decode_{{set}}/hyp.txt",
    params:
        decode=as_json(config["decode"]),
    threads: config["am"]["threads"]
    log:
        f"{EXP}/decode_{{set}}/log/decode.log",
    benchmark:
        f"{EXP}/decode_{{set}}/log/decode.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/decode.py {input.model} {FEATS}/{wildcards.set} {output}"
        " --config {params.decode:q} --threads {threads} > {log} 2>&1"


rule score:
    input:
        hyp=rules.decode.output,
        ref=f"{DATA}/{{set}}/text",
    output:
        wer=f"{EXP}/decode_{{set}}/wer",
        cer=f"{EXP}/decode_{{set}}/cer",
        per_utt=f"{EXP}/decode_{{set}}/per_utt",
    log:
        f"{EXP}/decode_{{set}}/log/score.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/score.py {input.ref} {input.hyp} {EXP}/decode_{wildcards.set} > {log} 2>&1"


rule experiment_config:
    # The effective config of this experiment, so RESULTS.md can say how to reproduce it.
    output:
        f"{EXP}/config.yaml",
    params:
        config=as_json(config),
    log:
        f"{EXP}/log/experiment_config.log",
    run:
        import yaml
        from speechrecipe.fileio import atomic_open

        with atomic_open(output[0]) as f:
            yaml.safe_dump(json.loads(params.config), f, sort_keys=False)


rule results:
    input:
        config=rules.experiment_config.output,
        wer=expand(f"{EXP}/decode_{{set}}/wer", set=EVAL_SETS),
        history=rules.train_am.output.history,
    output:
        tsv=f"{EXP}/results.tsv",
        md=f"{EXP}/RESULTS.md",
    log:
        f"{EXP}/log/results.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/make_results.py {EXP} --sets {EVAL_SETS} --config {input.config} > {log} 2>&1"
