# Stage 4b: the LSTM-CTC acoustic model. Re-running after an interruption
# resumes from the newest exp/<tag>/am/epoch-N.pt of the same training config.
# With am.num_gpus > 1 or am.num_nodes > 1, train_am.py runs itself under torchrun
# (DistributedDataParallel); its resources come from training_resources (common.smk).


rule train_am:
    input:
        train=f"{FEATS}/{TRAIN_FEATS}/feats.scp",
        dev=f"{FEATS}/{DEV_SET}/feats.scp",
        tokens=TOKENIZER,
        init=am_init_inputs,
        extra=[f"{d}/feats.scp" for d in AM_EXTRA_TRAIN],
        onthefly=ONTHEFLY_INPUTS,
        # am.model's "auto" sizes come from the hours of the training set as prepared
        size_from=f"{DATA}/{TRAIN_SET}/utt2dur",
    output:
        model=AM_FINAL,
        history=AM_HISTORY,
    log:
        f"{EXP}/am/log/train.log",
    benchmark:
        f"{EXP}/am/log/train.benchmark.tsv"
    # am.threads for each of the node's processes (one per GPU)
    threads: RECIPE.am.threads * RECIPE.am.num_gpus
    resources:
        **training_resources(
            training_mem_mb(RECIPE.am.mem_mb, RECIPE.am.in_memory, RECIPE.am.num_gpus),
            RECIPE.am.runtime,
            RECIPE.am.use_gpu,
            RECIPE.am.num_gpus,
            RECIPE.am.num_nodes,
        ),
        # how the data is read: resources, not params, since they do not change what is trained
        loader_workers=RECIPE.am.loader_workers,
        in_memory=int(RECIPE.am.in_memory),
    params:
        train_dir=input_dir("train"),
        dev_dir=input_dir("dev"),
        exp_dir=output_dir("model"),
        model=as_json(RECIPE.am.model.settings()),
        train=as_json(AM_TRAIN),
        features=as_json(FEATURE_CONFIG),
        cmvn=RECIPE.am.cmvn,
        max_frames=RECIPE.am.max_frames or 0,
        use_gpu=str(RECIPE.am.use_gpu).lower(),
        init=AM_INIT,
        extra=quoted(AM_EXTRA_TRAIN),
        audio_dir=onthefly_audio_dir,
        size_from=input_dir("size_from"),
        num_gpus=RECIPE.am.num_gpus,
        num_nodes=RECIPE.am.num_nodes,
    shell:
        "run_step train_am {params.train_dir:q} {params.dev_dir:q} {input.tokens:q} {params.exp_dir:q}"
        " --model {params.model:q} --train {params.train:q} --features {params.features:q} --cmvn {params.cmvn}"
        " --init {params.init:q} --extra-train {params.extra} --max-frames {params.max_frames}"
        " --threads {threads} --use-gpu {params.use_gpu} --num-gpus {params.num_gpus}"
        " --num-nodes {params.num_nodes} --loader-workers {resources.loader_workers}"
        " --in-memory {resources.in_memory} --audio-dir={params.audio_dir:q} --size-from {params.size_from:q}"
        " > {log} 2>&1"
