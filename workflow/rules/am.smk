# Stage 4b: the LSTM-CTC acoustic model. Re-running after an interruption
# resumes from the newest exp/<tag>/am/epoch-N.pt of the same training config.
# With am.num_gpus > 1 or am.num_nodes > 1, train_am.py runs itself under torchrun
# (DistributedDataParallel); its resources come from training_resources (common.smk).


def am_init_inputs(wildcards):
    """What the model starts from besides its config: nothing for 'random', else the pretrained model
    (another experiment, trained by its own snakemake run). The denoising autoencoder plugs in here too."""
    init = config["am"]["init"]
    if init == "random":
        return []
    if init.endswith(".pt") or os.path.exists(os.path.join(init, "manifest.json")):
        return [init]
    return [os.path.join(init, "am", "final.pt")]


rule train_am:
    input:
        train=f"{FEATS}/{TRAIN_FEATS}/feats.scp",
        dev=f"{FEATS}/{config['dev_set']}/feats.scp",
        tokens=rules.train_tokenizer.output.model,
        init=am_init_inputs,
        extra=[f"{d}/feats.scp" for d in config["am"]["extra_train"]],
    output:
        model=f"{EXP}/am/final.pt",
        history=f"{EXP}/am/history.tsv",
    params:
        model=as_json(config["am"]["model"]),
        train=as_json({**config["am"]["train"], "seed": config["seed"]}),
        features=as_json(FEATURE_CONFIG),
        cmvn=config["am"]["cmvn"],
        max_frames=config["am"]["max_frames"] or 0,
        use_gpu=str(config["am"]["use_gpu"]).lower(),
        init=config["am"]["init"],
        extra=" ".join(shlex.quote(d) for d in config["am"]["extra_train"]),
        num_gpus=config["am"]["num_gpus"],
        num_nodes=config["am"]["num_nodes"],
    # am.threads for each of the node's processes (one per GPU)
    threads: config["am"]["threads"] * config["am"]["num_gpus"]
    resources:
        **training_resources(config["am"]),
    log:
        f"{EXP}/am/log/train.log",
    benchmark:
        f"{EXP}/am/log/train.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/train_am.py {FEATS}/{TRAIN_FEATS} {FEATS}/{config[dev_set]}"
        " {input.tokens} {EXP}/am --model {params.model:q} --train {params.train:q}"
        " --features {params.features:q} --cmvn {params.cmvn} --init {params.init:q} --extra-train {params.extra} --max-frames {params.max_frames}"
        " --threads {threads} --use-gpu {params.use_gpu} --num-gpus {params.num_gpus} --num-nodes {params.num_nodes}"
        " > {log} 2>&1"
