# Stage 4a: SentencePiece output units trained on the training transcripts.


rule train_tokenizer:
    input:
        text=f"{DATA}/{TRAIN_SET}/text",
        validated=f"{DATA}/{TRAIN_SET}/validation.txt",
    output:
        model=TOKENIZER,
        tokens=f"{EXP}/tokens/tokens.txt",
    log:
        f"{EXP}/tokens/log/train_tokenizer.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        type=RECIPE.tokens.type,
        vocab_size=RECIPE.tokens.vocab_size,
        seed=RECIPE.seed,
    shell:
        "run_step train_tokenizer {input.text:q} {output.model:q} --type {params.type}"
        " --vocab-size {params.vocab_size} --seed {params.seed} > {log} 2>&1"
