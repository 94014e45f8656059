# Stage 2: Kaldi-compatible features in nj jobs per set (scatter), then one
# feature directory with feats.scp, utt2num_frames and CMVN statistics (gather).
FEATURE_CONFIG = {k: v for k, v in config["features"].items() if k not in ("nj", "speed_perturb")}
NJ = config["features"]["nj"]


def source_set(wildcards):
    """The data set a feature set is computed from: 'train_sp' comes from 'train'."""
    perturbed = SPEED_PERTURB and wildcards.set == TRAIN_FEATS
    return config["train_set"] if perturbed else wildcards.set


def speed_factors(wildcards):
    factors = SPEED_PERTURB if wildcards.set == TRAIN_FEATS and SPEED_PERTURB else [1.0]
    return " ".join(str(f) for f in factors)


rule make_features:
    input:
        validated=lambda w: f"{DATA}/{source_set(w)}/validation.txt",
    output:
        ark=f"{FEATS}/{{set}}/data/feats.{{job}}.ark",
        scp=f"{FEATS}/{{set}}/data/feats.{{job}}.scp",
    params:
        features=as_json(FEATURE_CONFIG),
        factors=speed_factors,
        data_dir=lambda w: f"{DATA}/{source_set(w)}",
    resources:
        mem_mb=1500,
        runtime=60,
    log:
        f"exp/make_{config['features']['type']}/{DATA_NAME}/{{set}}/log/make_features.{{job}}.log",
    benchmark:
        f"exp/make_{config['features']['type']}/{DATA_NAME}/{{set}}/log/make_features.{{job}}.benchmark.tsv"
    threads: 1
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/make_features.py {params.data_dir} {FEATS}/{wildcards.set}"
        " --job {wildcards.job} --nj {NJ} --config {params.features:q} --speed-perturb {params.factors}"
        " > {log} 2>&1"


rule gather_features:
    input:
        scp=expand(f"{FEATS}/{{{{set}}}}/data/feats.{{job}}.scp", job=range(1, NJ + 1)),
        validated=lambda w: f"{DATA}/{source_set(w)}/validation.txt",
    output:
        feats=f"{FEATS}/{{set}}/feats.scp",
        frames=f"{FEATS}/{{set}}/utt2num_frames",
        text=f"{FEATS}/{{set}}/text",
        utt2spk=f"{FEATS}/{{set}}/utt2spk",
        cmvn=f"{FEATS}/{{set}}/cmvn.scp",
    params:
        factors=speed_factors,
        data_dir=lambda w: f"{DATA}/{source_set(w)}",
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    log:
        f"exp/make_{config['features']['type']}/{DATA_NAME}/{{set}}/log/gather.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/gather_features.py {params.data_dir} {FEATS}/{wildcards.set}"
        " --nj {NJ} --speed-perturb {params.factors} > {log} 2>&1"
