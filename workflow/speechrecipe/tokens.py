"""Output units: a SentencePiece model (unigram, BPE or characters) over the training text.

Id 0 is reserved for the CTC blank (SentencePiece's pad slot, renamed
``<blank>``), id 1 is ``<unk>``; the model's output layer has
``vocab_size`` units, blank included.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import sentencepiece as spm

from .fileio import atomic_open, atomic_path

log = logging.getLogger(__name__)

BLANK = "<blank>"


def train(
    texts: list[str], model_path: str | Path, model_type: str = "unigram", vocab_size: int = 64, seed: int = 1
) -> Tokenizer:
    """Train SentencePiece on transcripts and write ``model_path`` (and ``tokens.txt`` beside it)."""
    model_path = Path(model_path)
    if model_type not in ("unigram", "bpe", "char"):
        raise ValueError(f"token type '{model_type}': use unigram, bpe or char")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type=model_type,
        vocab_size=vocab_size,
        # A small corpus may not support the requested size: take what it has instead of failing.
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        pad_piece=BLANK,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        # Deterministic: one thread, no sampling of the input sentences.
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    with atomic_path(model_path) as tmp:
        tmp.write_bytes(model.getvalue())
    tokenizer = Tokenizer(model_path)
    with atomic_open(model_path.with_name("tokens.txt")) as f:
        for i, piece in enumerate(tokenizer.pieces):
            f.write(f"{piece} {i}\n")
    log.info("trained %s tokenizer with %d units on %d sentences", model_type, tokenizer.vocab_size, len(texts))
    return tokenizer


class Tokenizer:
    """Encode transcripts to ids and decode ids back, blank excluded."""

    def __init__(self, model: str | Path | bytes):
        self.sp = spm.SentencePieceProcessor()
        if isinstance(model, bytes):
            self.sp.LoadFromSerializedProto(model)
            self.model_bytes = model
        else:
            self.model_bytes = Path(model).read_bytes()
            self.sp.LoadFromSerializedProto(self.model_bytes)
        self.pieces = [self.sp.IdToPiece(i) for i in range(self.sp.GetPieceSize())]
        assert self.pieces[0] == BLANK, "id 0 must be the CTC blank"

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        return self.sp.EncodeAsIds(text)

    def decode(self, ids) -> str:
        return self.sp.DecodeIds([int(i) for i in ids if int(i) != 0])

    def unknown_characters(self, text: str) -> set[str]:
        """Characters of ``text`` that the tokenizer can only map to <unk>."""
        return {c for c in set(text) - {" "} if self.sp.unk_id() in self.sp.EncodeAsIds(c)}
