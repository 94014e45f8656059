# Stage 2: Kaldi-compatible features in nj jobs per set (scatter), then one
# feature directory with feats.scp, utt2num_frames and CMVN statistics (gather).


rule make_features:
    input:
        validated=validated_source,
    output:
        ark=f"{FEATS}/{{set}}/data/feats.{{job}}.ark",
        scp=f"{FEATS}/{{set}}/data/feats.{{job}}.scp",
    log:
        f"{FEATURE_LOGS}/{{set}}/log/make_features.{{job}}.log",
    benchmark:
        f"{FEATURE_LOGS}/{{set}}/log/make_features.{{job}}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=60,
    params:
        data_dir=input_dir("validated"),
        out_dir=output_dir("scp", up=2),
        nj=NJ,
        features=as_json(FEATURE_CONFIG),
        factors=speed_factors,
    shell:
        "run_step make_features {params.data_dir:q} {params.out_dir:q} --job {wildcards.job} --nj {params.nj}"
        " --config {params.features:q} --speed-perturb {params.factors} > {log} 2>&1"


rule gather_features:
    input:
        scp=expand(f"{FEATS}/{{{{set}}}}/data/feats.{{job}}.scp", job=range(1, NJ + 1)),
        validated=validated_source,
    output:
        feats=f"{FEATS}/{{set}}/feats.scp",
        frames=f"{FEATS}/{{set}}/utt2num_frames",
        text=f"{FEATS}/{{set}}/text",
        utt2spk=f"{FEATS}/{{set}}/utt2spk",
        cmvn=f"{FEATS}/{{set}}/cmvn.scp",
    log:
        f"{FEATURE_LOGS}/{{set}}/log/gather.log",
    threads: 1
    resources:
        mem_mb=gather_mem_mb,
        runtime=30,
    params:
        data_dir=input_dir("validated"),
        out_dir=output_dir("feats"),
        nj=NJ,
        factors=speed_factors,
    shell:
        "run_step gather_features {params.data_dir:q} {params.out_dir:q} --nj {params.nj}"
        " --speed-perturb {params.factors} > {log} 2>&1"
