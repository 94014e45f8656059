# On demand (not part of `rule all`): TorchScript and ONNX exports of the acoustic model and a
# self-contained model bundle, each checked against the PyTorch model on real dev-set audio.
#   snakemake --cores 2 exp/<tag>/export/bundle/manifest.json


rule export_model:
    input:
        model=rules.train_am.output.model,
        audio=f"{DATA}/{config['dev_set']}/wav.scp",
    output:
        torchscript=f"{EXP}/export/model.ts",
        onnx=f"{EXP}/export/model.onnx",
        manifest=f"{EXP}/export/bundle/manifest.json",
        bundle=expand(f"{EXP}/export/bundle/{{file}}", file=["model.pt", "tokenizer.model", "tokens.txt", "cmvn.json"]),
        verification=f"{EXP}/export/verification.json",
    params:
        max_utts=8,
    threads: config["am"]["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
    log:
        f"{EXP}/export/log/export.log",
    benchmark:
        f"{EXP}/export/log/export.benchmark.tsv"
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/export_model.py {input.model} {EXP}/export --audio {input.audio}"
        " --max-utts {params.max_utts} --threads {threads} > {log} 2>&1"
