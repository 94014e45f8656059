# Stage 3b: the denoising autoencoder, trained on (noisy copy, clean) features of train_set with
# dev_set's pair for early stopping. Its encoder starts the acoustic model with am.init: dae;
# with decode.enhance it cleans features before decoding. Resumes like train_am.
DAE_TRAIN, DAE_DEV = config["train_set"], config["dev_set"]


rule train_dae:
    input:
        noisy=f"{FEATS}/{DAE_TRAIN}_noisy/feats.scp",
        clean=f"{FEATS}/{DAE_TRAIN}/feats.scp",
        dev_noisy=f"{FEATS}/{DAE_DEV}_noisy/feats.scp",
        dev_clean=f"{FEATS}/{DAE_DEV}/feats.scp",
    output:
        model=f"{EXP}/dae/final.pt",
        history=f"{EXP}/dae/history.tsv",
    params:
        model=as_json(config["am"]["model"]),
        layers=config["dae"]["layers"],
        train=as_json({**config["dae"]["train"], "seed": config["seed"]}),
        features=as_json(FEATURE_CONFIG),
        cmvn=config["am"]["cmvn"],
        use_gpu=str(config["dae"]["use_gpu"]).lower(),
    threads: config["dae"]["threads"]
    resources:
        # one process: the DAE trains on one GPU (or the CPU)
        **training_resources({**config["dae"], "num_gpus": 1, "num_nodes": 1}),
    log:
        f"{EXP}/dae/log/train.log",
    benchmark:
        f"{EXP}/dae/log/train.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/train_dae.py {FEATS}/{DAE_TRAIN}_noisy {FEATS}/{DAE_TRAIN}"
        " {FEATS}/{DAE_DEV}_noisy {FEATS}/{DAE_DEV} {EXP}/dae --model {params.model:q} --layers {params.layers}"
        " --train {params.train:q} --features {params.features:q} --cmvn {params.cmvn} --threads {threads}"
        " --use-gpu {params.use_gpu} > {log} 2>&1"
