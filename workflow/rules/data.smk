# Stage 1: corpus -> Kaldi data directories, validated before any feature is computed.
import re

KALDI_FILES = ["wav.scp", "text", "utt2spk", "spk2utt", "utt2dur"]


rule prepare_data:
    output:
        expand(f"{DATA}/{{set}}/{{file}}", set=CORPUS_SETS, file=KALDI_FILES),
    params:
        options=prepare_options(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    log:
        f"exp/prepare/{DATA_NAME}/log/prepare.log",
    benchmark:
        f"exp/prepare/{DATA_NAME}/log/prepare.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/local/{CORPUS}.py --out-dir {DATA} {params.options} > {log} 2>&1"


rule import_test_set:
    # Extra test sets given as existing Kaldi data dirs (config test_sets).
    output:
        expand(f"{DATA}/{{{{test_set}}}}/{{file}}", file=KALDI_FILES),
    wildcard_constraints:
        test_set="|".join(map(re.escape, config["test_sets"])) or "(?!)",
    params:
        source=lambda w: f"{w.test_set}={config['test_sets'][w.test_set]}",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    log:
        f"exp/prepare/{DATA_NAME}/log/import_{{test_set}}.log",
    shell:
        "{PYTHON} {ROOT}/local/kaldi.py --out-dir {DATA} --set {params.source:q} > {log} 2>&1"


rule validate_data:
    # Kaldi's validate_data_dir.sh checks; the summary is what later stages depend on.
    input:
        expand(f"{DATA}/{{{{set}}}}/{{file}}", file=KALDI_FILES),
    output:
        f"{DATA}/{{set}}/validation.txt",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    log:
        f"exp/prepare/{DATA_NAME}/log/validate_{{set}}.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/validate_data_dir.py {DATA}/{wildcards.set} --summary {output} > {log} 2>&1"
