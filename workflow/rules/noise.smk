# Stage 3a: noisy copies of data sets, mixed at an SNR (speechrecipe.noise). A noisy set is an
# ordinary Kaldi data directory (own wav/, same utterance ids) plus utt2noise, so features,
# decoding and scoring treat it like any other set. Which copies exist: NOISY_SETS (common.smk).


rule make_noise:
    # Generated noise, for noise entries generated:white|pink|babble (and when noise_dirs is empty).
    input:
        speech=babble_speech,
    output:
        noise=f"{DATA}/noise_generated/{{kind}}.wav",
    log:
        f"{PREPARE_LOGS}/log/make_noise_{{kind}}.log",
    wildcard_constraints:
        kind="white|pink|babble",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        out_dir=output_dir("noise"),
        speech_dir=lambda w: f"{DATA}/{TRAIN_SET}",
        rate=RECIPE.features.sample_rate,
        seconds=RECIPE.noise.generated_seconds,
        seed=RECIPE.seed,
    shell:
        "run_step make_noise {params.out_dir:q} --types {wildcards.kind} --speech-dir {params.speech_dir:q}"
        " --rate {params.rate} --seconds {params.seconds} --seed {params.seed} > {log} 2>&1"


rule mix_noise:
    # One job's share of the utterances (features.nj jobs per set, as make_features).
    input:
        validated=noisy_base,
        noise=lambda w: NOISE_FILES[w.noisy],
    output:
        f"{DATA}/{{noisy}}/split{NJ}/{{job}}/utt2noise",
    log:
        f"{PREPARE_LOGS}/log/mix_noise_{{noisy}}.{{job}}.log",
    benchmark:
        f"{PREPARE_LOGS}/log/mix_noise_{{noisy}}.{{job}}.benchmark.tsv"
    wildcard_constraints:
        noisy=NOISY_SET_PATTERN,
        job=r"\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        base=input_dir("validated"),
        out_dir=output_dir(0, up=3),
        sources=lambda w: quoted(NOISY_SETS[w.noisy].sources),
        snrs=lambda w: " ".join(f"{s:g}" for s in NOISY_SETS[w.noisy].snrs),
        rate=RECIPE.features.sample_rate,
        seed=RECIPE.seed,
        nj=NJ,
    shell:
        "run_step mix_noise {params.base:q} {params.out_dir:q} --noise {params.sources} --snrs {params.snrs}"
        " --rate {params.rate} --seed {params.seed} --job {wildcards.job} --nj {params.nj} > {log} 2>&1"


rule gather_noise:
    input:
        parts=expand(f"{DATA}/{{{{noisy}}}}/split{NJ}/{{job}}/utt2noise", job=range(1, NJ + 1)),
        validated=noisy_base,
    output:
        expand(f"{DATA}/{{{{noisy}}}}/{{file}}", file=[*KALDI_FILES, "utt2noise"]),
    log:
        f"{PREPARE_LOGS}/log/gather_noise_{{noisy}}.log",
    wildcard_constraints:
        noisy=NOISY_SET_PATTERN,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        base=input_dir("validated"),
        out_dir=output_dir(0),
        nj=NJ,
    shell:
        "run_step gather_noise {params.base:q} {params.out_dir:q} --nj {params.nj} > {log} 2>&1"
