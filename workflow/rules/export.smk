# On demand (not part of `rule all`): TorchScript and ONNX exports of the acoustic model and a
# self-contained model bundle, each checked against the PyTorch model on real dev-set audio.
#   snakemake --cores 2 exp/<tag>/export/bundle/manifest.json


rule export_model:
    input:
        model=AM_FINAL,
        audio=f"{DATA}/{DEV_SET}/wav.scp",
    output:
        torchscript=f"{EXP}/export/model.ts",
        onnx=f"{EXP}/export/model.onnx",
        manifest=f"{EXP}/export/bundle/manifest.json",
        bundle=expand(f"{EXP}/export/bundle/{{file}}", file=["model.pt", "tokenizer.model", "tokens.txt", "cmvn.json"]),
        verification=f"{EXP}/export/verification.json",
    log:
        f"{EXP}/export/log/export.log",
    benchmark:
        f"{EXP}/export/log/export.benchmark.tsv"
    threads: RECIPE.am.threads
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        out_dir=output_dir("verification"),
        max_utts=8,
    shell:
        "run_step export_model {input.model:q} {params.out_dir:q} --audio {input.audio:q}"
        " --max-utts {params.max_utts} --threads {threads} > {log} 2>&1"
