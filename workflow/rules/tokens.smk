# Stage 4a: SentencePiece output units trained on the training transcripts.


rule train_tokenizer:
    input:
        text=f"{DATA}/{config['train_set']}/text",
        validated=f"{DATA}/{config['train_set']}/validation.txt",
    output:
        model=f"{EXP}/tokens/sp.model",
        tokens=f"{EXP}/tokens/tokens.txt",
    params:
        type=config["tokens"]["type"],
        vocab_size=config["tokens"]["vocab_size"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"{EXP}/tokens/log/train_tokenizer.log",
    shell:
        "{PYTHON} {ROOT}/workflow/scripts/train_tokenizer.py {input.text} {output.model}"
        " --type {params.type} --vocab-size {params.vocab_size} --seed {params.seed} > {log} 2>&1"
