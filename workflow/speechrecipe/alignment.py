"""Word times from CTC forced alignment of a hypothesis, and Kaldi CTM lines.

The decoded tokens are aligned to the log-probabilities they came from
(``torchaudio.functional.forced_align``); a SentencePiece piece that begins with "▁"
begins a word, so merging a word's token spans gives its start and end frame.
"""

from __future__ import annotations

import torch

from .decoding import WORD_BOUNDARY


def word_times(
    log_probs: torch.Tensor, ids: list[int], tokenizer, frame_seconds: float, seconds: float
) -> list[tuple[str, float, float]]:
    """(word, start, end) in seconds of each word of hypothesis ``ids``, aligned to ``log_probs``
    (output frames, vocab) of audio ``seconds`` long."""
    return [
        (word, start, end) for word, start, end, _ in aligned_words(log_probs, ids, tokenizer, frame_seconds, seconds)
    ]


def aligned_words(
    log_probs: torch.Tensor, ids: list[int], tokenizer, frame_seconds: float, seconds: float
) -> list[tuple[str, float, float, float]]:
    """(word, start, end, confidence) of each word of hypothesis ``ids``, as :func:`word_times`; the
    confidence is the mean posterior of the word's tokens over the frames aligned to them (0 to 1)."""
    if not ids:
        return []
    import torchaudio.functional as AF

    alignment, scores = AF.forced_align(
        log_probs[None].float().contiguous(), torch.tensor([ids], dtype=torch.int32), blank=0
    )
    spans = AF.merge_tokens(alignment[0], scores[0].exp())
    pieces = tokenizer.pieces
    words: list[list] = []  # [token ids, first frame, end frame, token posteriors]
    for span in spans:
        if not words or pieces[span.token].startswith(WORD_BOUNDARY):
            words.append([[span.token], span.start, span.end, [span.score]])
        else:
            words[-1][0].append(span.token)
            words[-1][2] = span.end
            words[-1][3].append(span.score)
    timed = []
    for tokens, first, end, posteriors in words:
        text = tokenizer.decode(tokens).strip()
        if text:
            start = min(first * frame_seconds, seconds)
            timed.append(
                (text, start, min(max(end * frame_seconds, start), seconds), sum(posteriors) / len(posteriors))
            )
    return timed


def ctm_lines(utt: str, words: list[tuple[str, float, float]] | None) -> list[str]:
    """Kaldi CTM lines, ``utt channel start duration word``, for one utterance's word times."""
    return [f"{utt} 1 {start:.2f} {end - start:.2f} {word}" for word, start, end in words or []]
