# Stage 5: decode every evaluation set, score it like Kaldi, collect the table.
# With decode.use_lm, decoding adds the word n-gram LM of lm.smk at the weight chosen on the
# dev set; with decode.enhance, the DAE cleans the features first. Without them, the rule's
# inputs, params and command are those of a recipe without them (so turning them off never
# re-runs anything): decode_extra_inputs and decode_extra_options in common.smk.


rule decode:
    input:
        unpack(decode_extra_inputs),
        model=AM_FINAL,
        feats=f"{FEATS}/{{set}}/feats.scp",
    output:
        hyp=f"{EXP}/decode_{{set}}/hyp.txt",
    log:
        f"{EXP}/decode_{{set}}/log/decode.log",
    benchmark:
        f"{EXP}/decode_{{set}}/log/decode.benchmark.tsv"
    threads: RECIPE.am.threads
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        feat_dir=input_dir("feats"),
        decode=as_json(DECODE_SEARCH),
        extra=decode_extra_options,
    shell:
        "run_step decode {input.model:q} {params.feat_dir:q} {output.hyp:q} --config {params.decode:q}"
        " --threads {threads} {params.extra} > {log} 2>&1"


rule score:
    input:
        hyp=f"{EXP}/decode_{{set}}/hyp.txt",
        ref=f"{DATA}/{{set}}/text",
    output:
        wer=f"{EXP}/decode_{{set}}/wer",
        cer=f"{EXP}/decode_{{set}}/cer",
        per_utt=f"{EXP}/decode_{{set}}/per_utt",
    log:
        f"{EXP}/decode_{{set}}/log/score.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        out_dir=output_dir("wer"),
    shell:
        "run_step score {input.ref:q} {input.hyp:q} {params.out_dir:q} > {log} 2>&1"


rule experiment_config:
    # The effective config of this experiment, so RESULTS.md can say how to reproduce it.
    output:
        config=f"{EXP}/config.yaml",
    log:
        f"{EXP}/log/experiment_config.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=as_json(config),
    shell:
        "run_step write_config {params.config:q} {output.config:q} > {log} 2>&1"


rule results:
    input:
        config=f"{EXP}/config.yaml",
        wer=expand(f"{EXP}/decode_{{set}}/wer", set=EVAL_SETS),
        history=AM_HISTORY,
    output:
        tsv=f"{EXP}/results.tsv",
        md=f"{EXP}/RESULTS.md",
    log:
        f"{EXP}/log/results.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp_dir=output_dir("tsv"),
        sets=EVAL_SETS,
        # base set, noise and SNR of each noisy test set: results.tsv shows them beside the clean ones
        conditions=as_json(
            {n: {"base": s.base, "noise": s.noise, "snr": s.snr} for n, s in NOISY_SETS.items() if s.is_test}
        ),
    shell:
        "run_step make_results {params.exp_dir:q} --sets {params.sets} --config {input.config:q}"
        " --conditions {params.conditions:q} > {log} 2>&1"
