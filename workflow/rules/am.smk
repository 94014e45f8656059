# Stage 4b: the LSTM-CTC acoustic model. Re-running after an interruption
# resumes from the newest exp/<tag>/am/epoch-N.pt of the same training config.
# With am.num_gpus > 1 or am.num_nodes > 1, train_am.py runs itself under torchrun
# (DistributedDataParallel); its resources come from training_resources (common.smk).


# am.init as train_am.py takes it: 'dae' is this experiment's denoising autoencoder (dae.smk).
AM_INIT = f"{EXP}/dae/final.pt" if config["am"]["init"] == "dae" else config["am"]["init"]
# Multi-condition training adds the noisy copy of train_set (noise.smk) to the training data.
AM_EXTRA_TRAIN = [*config["am"]["extra_train"],
                  *([f"{FEATS}/{config['train_set']}_noisy"] if config["am"]["multi_condition"] else [])]
# Keys at their TrainConfig.HASHED_UNLESS values (freeze_epochs: 0) are left out of the params, so
# that experiments which predate them are not re-run (train_am.py leaves them out of the hash too).
AM_TRAIN = {k: v for k, v in config["am"]["train"].items() if not (k == "freeze_epochs" and v == 0)}


def am_init_inputs(wildcards):
    """What the model starts from besides its config: nothing for 'random', the DAE's final.pt for
    'dae', else the pretrained model (another experiment, trained by its own snakemake run)."""
    init = AM_INIT
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
        extra=[f"{d}/feats.scp" for d in AM_EXTRA_TRAIN],
    output:
        model=f"{EXP}/am/final.pt",
        history=f"{EXP}/am/history.tsv",
    params:
        model=as_json(config["am"]["model"]),
        train=as_json({**AM_TRAIN, "seed": config["seed"]}),
        features=as_json(FEATURE_CONFIG),
        cmvn=config["am"]["cmvn"],
        max_frames=config["am"]["max_frames"] or 0,
        use_gpu=str(config["am"]["use_gpu"]).lower(),
        init=AM_INIT,
        extra=" ".join(shlex.quote(d) for d in AM_EXTRA_TRAIN),
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
