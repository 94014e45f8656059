# Stage 3b: the denoising autoencoder, trained on (noisy, clean) features of train_set with
# dev_set's pair for early stopping. Its encoder starts the acoustic model with am.init: dae;
# with decode.enhance it cleans features before decoding. Resumes like train_am. The noisy side
# is the noise stage's copy, or with dae.onthefly mixed from the audio as batches are made, which
# dae.extra_audio extends to untranscribed recordings (those of the experiment's own sets left out).


rule train_dae:
    input:
        **dae_inputs(),
        clean=f"{FEATS}/{TRAIN_SET}/feats.scp",
        dev_clean=f"{FEATS}/{DEV_SET}/feats.scp",
        size_from=f"{DATA}/{TRAIN_SET}/utt2dur",  # as train_am's, so that the encoder fits the acoustic model
    output:
        model=DAE_FINAL,
        history=DAE_HISTORY,
    log:
        f"{EXP}/dae/log/train.log",
    benchmark:
        f"{EXP}/dae/log/train.benchmark.tsv"
    threads: RECIPE.dae.threads
    resources:
        **training_resources(
            training_mem_mb(RECIPE.dae.mem_mb, RECIPE.dae.in_memory), RECIPE.dae.runtime, RECIPE.dae.use_gpu
        ),
        loader_workers=RECIPE.dae.loader_workers,  # how the data is read: not params, it changes nothing trained
        in_memory=int(RECIPE.dae.in_memory),
        # one process: the DAE trains on one GPU (or the CPU)
    params:
        dirs=lambda w, input: quoted(os.path.dirname(input[n]) for n in ("noisy", "clean", "dev_noisy", "dev_clean")),
        exp_dir=output_dir("model"),
        model=as_json(RECIPE.am.model.settings()),
        layers=RECIPE.dae.layers,
        train=as_json(DAE_TRAIN),
        features=as_json(FEATURE_CONFIG),
        cmvn=RECIPE.am.cmvn,
        use_gpu=str(RECIPE.dae.use_gpu).lower(),
        size_from=input_dir("size_from"),
        onthefly=f"--onthefly {shlex.quote(as_json(DAE_MIXING))}" if RECIPE.dae.onthefly else "",
        extra_audio=dae_extra_audio,
        layerwise="--layerwise" if RECIPE.dae.layerwise else "",
    shell:
        "run_step train_dae {params.dirs} {params.exp_dir:q} --model {params.model:q} --layers {params.layers}"
        " --train {params.train:q} --features {params.features:q} --cmvn {params.cmvn} --threads {threads}"
        " --use-gpu {params.use_gpu} --loader-workers {resources.loader_workers}"
        " --in-memory {resources.in_memory} --size-from {params.size_from:q} {params.onthefly}"
        " {params.extra_audio} {params.layerwise} > {log} 2>&1"


rule dae_loss_by_snr:
    # The trained DAE's dev reconstruction error by noise condition and SNR, beside the noisy input's own.
    input:
        dae=DAE_FINAL,
        dev_clean=f"{FEATS}/{DEV_SET}/feats.scp",
        dev_audio=f"{DATA}/{DEV_SET}/validation.txt",
        noise=noise_inputs([source for sources in DAE_SNR_NOISE.values() for source in sources]),
    output:
        figure=plot_report("dae_loss_by_snr.png", "dae_loss_by_snr", "Training", "DAE error by SNR"),
        table=f"{PLOTS}/dae_loss_by_snr.tsv",
    log:
        f"{EXP}/dae/log/loss_by_snr.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        dirs=lambda w, input: quoted([os.path.dirname(input.dae), os.path.dirname(input.dev_clean)]),
        dev_audio=input_dir("dev_audio"),
        out_dir=output_dir("table"),
        noise=quoted(f"{name}={source}" for name, sources in DAE_SNR_NOISE.items() for source in sources),
        snrs=" ".join(f"{s:g}" for s in DAE_SNR_SNRS),
        seed=RECIPE.seed,
    shell:
        "run_step dae_loss_by_snr {params.dirs} {params.dev_audio:q} {params.out_dir:q} --noise {params.noise}"
        " --snrs {params.snrs} --seed {params.seed} > {log} 2>&1"
