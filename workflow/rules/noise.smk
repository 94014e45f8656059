# Stage 3a: noisy copies of data sets, mixed at an SNR (speechrecipe.noise). A noisy set is an
# ordinary Kaldi data directory (own wav/, same utterance ids) plus utt2noise, so features,
# decoding and scoring treat it like any other set. Which copies exist: NOISY_SETS (common.smk).
from snakemake.exceptions import WorkflowError

from speechrecipe.noise import NoiseError, noise_files


def noise_inputs(sources: list) -> list:
    """The noise files of a set's sources (generated ones are made by make_noise). Checked here, while
    the DAG is built, so that a missing, empty or unreadable noise folder stops the run before any job."""
    real = [s for s in sources if not s.startswith(f"{DATA}/noise_generated/")]
    try:
        files = [str(f) for f in noise_files(real)] if real else []
    except NoiseError as e:
        raise WorkflowError(f"config noise: {e}")
    return files + [s for s in sources if s not in real]


if NOISY_SETS:
    NOISE_FILES = {name: noise_inputs(s["sources"]) for name, s in NOISY_SETS.items()}


rule make_noise:
    # Generated noise, for noise entries generated:white|pink|babble (and when noise_dirs is empty).
    input:
        lambda w: [f"{DATA}/{config['train_set']}/validation.txt"] if w.kind == "babble" else [],
    output:
        f"{DATA}/noise_generated/{{kind}}.wav",
    wildcard_constraints:
        kind="white|pink|babble",
    params:
        rate=config["features"]["sample_rate"],
        seconds=NOISE["generated_seconds"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"exp/prepare/{DATA_NAME}/log/make_noise_{{kind}}.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/make_noise.py {DATA}/noise_generated --types {wildcards.kind}"
        " --speech-dir {DATA}/{config[train_set]} --rate {params.rate} --seconds {params.seconds}"
        " --seed {config[seed]} > {log} 2>&1"


rule mix_noise:
    input:
        validated=lambda w: f"{DATA}/{NOISY_SETS[w.noisy]['base']}/validation.txt",
        noise=lambda w: NOISE_FILES[w.noisy],
    output:
        expand(f"{DATA}/{{{{noisy}}}}/{{file}}", file=[*KALDI_FILES, "utt2noise"]),
    wildcard_constraints:
        noisy="|".join(map(re.escape, NOISY_SETS)) or "(?!)",
    params:
        base=lambda w: f"{DATA}/{NOISY_SETS[w.noisy]['base']}",
        sources=lambda w: " ".join(shlex.quote(s) for s in NOISY_SETS[w.noisy]["sources"]),
        snrs=lambda w: " ".join(f"{s:g}" for s in NOISY_SETS[w.noisy]["snrs"]),
        rate=config["features"]["sample_rate"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        f"exp/prepare/{DATA_NAME}/log/mix_noise_{{noisy}}.log",
    benchmark:
        f"exp/prepare/{DATA_NAME}/log/mix_noise_{{noisy}}.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/mix_noise.py {params.base:q} {DATA}/{wildcards.noisy} --noise {params.sources}"
        " --snrs {params.snrs} --rate {params.rate} --seed {config[seed]} > {log} 2>&1"
