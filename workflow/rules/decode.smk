# Stage 5: decode every evaluation set, score it like Kaldi, collect the table.
# With decode.use_lm, decoding adds the word n-gram LM of workflow/rules/lm.smk at the
# weight chosen on the dev set; without it, the rule's inputs, params and command are
# those of a recipe without LM (so turning the LM off never re-runs anything).

# The search settings (method, beam_size): what decoding without LM depends on.
DECODE_SEARCH = {k: v for k, v in config["decode"].items() if k not in ("use_lm", "lm", "enhance")}
USE_LM = config["decode"]["use_lm"]
if USE_LM and DECODE_SEARCH["method"] != "beam":
    raise ValueError("decode.use_lm needs decode.method: beam (the LM scores the beam search's hypotheses)")
# Only with the LM: its word insertion penalty, and the options that hand the LM to decode.py.
DECODE_LM_PARAMS = {"wip": config["decode"]["lm"]["word_insertion_penalty"]} if USE_LM else {}
DECODE_LM_OPTIONS = (" --lm {input.lm} --lm-weight-file {input.lm_weight}"
                     " --word-insertion-penalty {params.wip}") if USE_LM else ""
# decode.enhance: the DAE cleans the features first (like the LM, absent from the rule when off).
DECODE_ENHANCE_OPTIONS = " --enhance {input.dae}" if config["decode"]["enhance"] else ""


def decode_lm_inputs(wildcards):
    """With decode.use_lm, the LM and its weight tuned on the dev set (lm.smk); with decode.enhance,
    the DAE; otherwise nothing."""
    inputs = {"lm": f"{EXP}/lm/lm.arpa", "lm_weight": f"{EXP}/lm/best_weight"} if USE_LM else {}
    if config["decode"]["enhance"]:
        inputs["dae"] = f"{EXP}/dae/final.pt"
    return inputs


rule decode:
    input:
        unpack(decode_lm_inputs),
        model=rules.train_am.output.model,
        feats=f"{FEATS}/{{set}}/feats.scp",
    output:
        f"{EXP}/decode_{{set}}/hyp.txt",
    params:
        decode=as_json(DECODE_SEARCH),
        **DECODE_LM_PARAMS,
    threads: config["am"]["threads"]
    resources:
        mem_mb=3000,
        runtime=120,
    log:
        f"{EXP}/decode_{{set}}/log/decode.log",
    benchmark:
        f"{EXP}/decode_{{set}}/log/decode.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/decode.py {input.model} {FEATS}/{wildcards.set} {output}"
        " --config {params.decode:q} --threads {threads}" + DECODE_LM_OPTIONS + DECODE_ENHANCE_OPTIONS + " > {log} 2>&1"


rule score:
    input:
        hyp=rules.decode.output,
        ref=f"{DATA}/{{set}}/text",
    output:
        wer=f"{EXP}/decode_{{set}}/wer",
        cer=f"{EXP}/decode_{{set}}/cer",
        per_utt=f"{EXP}/decode_{{set}}/per_utt",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
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
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
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
    params:
        # base set, noise and SNR of each noisy test set: results.tsv shows them beside the clean ones
        conditions=as_json({n: {k: NOISY_SETS[n][k] for k in ("base", "noise", "snr")} for n in NOISY_TEST_SETS}),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{EXP}/log/results.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/make_results.py {EXP} --sets {EVAL_SETS} --config {input.config}"
        " --conditions {params.conditions:q} > {log} 2>&1"
