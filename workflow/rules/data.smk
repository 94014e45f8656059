# Stage 1: corpus -> Kaldi data directories, validated before any feature is computed.


rule prepare_data:
    output:
        expand(f"{DATA}/{{set}}/{{file}}", set=CORPUS_SETS, file=KALDI_FILES),
    log:
        f"{PREPARE_LOGS}/log/prepare.log",
    benchmark:
        f"{PREPARE_LOGS}/log/prepare.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        corpus=CORPUS,
        out_dir=output_dir(0, up=2),
        options=prepare_options(),
    shell:
        "run_local {params.corpus} --out-dir {params.out_dir:q} {params.options} > {log} 2>&1"


rule import_test_set:
    # Extra test sets given as existing Kaldi data dirs (config test_sets).
    output:
        expand(f"{DATA}/{{{{test_set}}}}/{{file}}", file=KALDI_FILES),
    log:
        f"{PREPARE_LOGS}/log/import_{{test_set}}.log",
    wildcard_constraints:
        test_set="|".join(map(re.escape, RECIPE.test_sets)) or "(?!)",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        out_dir=output_dir(0, up=2),
        source=lambda w: f"{w.test_set}={RECIPE.test_sets[w.test_set]}",
    shell:
        "run_local kaldi --out-dir {params.out_dir:q} --set {params.source:q} > {log} 2>&1"


rule validate_data:
    # Kaldi's validate_data_dir.sh checks; the summary is what later stages depend on.
    input:
        expand(f"{DATA}/{{{{set}}}}/{{file}}", file=KALDI_FILES),
    output:
        summary=f"{DATA}/{{set}}/validation.txt",
    log:
        f"{PREPARE_LOGS}/log/validate_{{set}}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        data_dir=output_dir("summary"),
    shell:
        "run_step validate_data_dir {params.data_dir:q} --summary {output.summary:q} > {log} 2>&1"
