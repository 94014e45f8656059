"""CTC search over log-probabilities: greedy (best path) and beam search (torchaudio's flashlight
``ctc_decoder``), with an optional word n-gram LM. What produces the log-probabilities is
:class:`speechrecipe.recognizer.Recognizer`."""

from __future__ import annotations

import math

import torch

WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁": the piece begins a new word


def greedy_ids(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path: arg-max per frame, repeats merged, blanks (id 0) removed."""
    best = log_probs.argmax(dim=-1)
    hyps = []
    for row, n in zip(best, lengths):
        ids = torch.unique_consecutive(row[: int(n)])
        hyps.append([int(i) for i in ids if int(i) != 0])
    return hyps


class BeamSearch:
    """Lexicon-free CTC prefix beam search over the tokenizer's units.

    Units are SentencePiece pieces; the text comes from decoding the best
    token sequence with the tokenizer, exactly as for greedy decoding, so the
    two methods differ only in the search. ``lm_path`` adds a word n-gram
    language model (:class:`PieceWordLM`) with ``lm_weight`` and
    ``word_insertion_penalty``; without it the search is the plain one.
    """

    def __init__(
        self,
        pieces: list[str],
        beam_size: int = 10,
        beam_threshold: float = 50.0,
        lm_path=None,
        lm_weight: float = 0.0,
        word_insertion_penalty: float = 0.0,
    ):
        from torchaudio.models.decoder import ctc_decoder

        # With an ARPA word n-gram model (lm_path: a file or a loaded speechrecipe.lm.ArpaModel)
        # the search adds, each time a word is complete,
        # lm_weight * ln p(word | history) + word_insertion_penalty (see PieceWordLM).
        # Without one, flashlight's ZeroLM scores nothing (its lm_weight is then irrelevant).
        self.word_lm = PieceWordLM(lm_path, pieces, lm_weight, word_insertion_penalty) if lm_path else None
        self.decoder = ctc_decoder(
            lexicon=None,
            tokens=pieces,
            lm=_flashlight_lm(self.word_lm) if self.word_lm else None,
            nbest=1,
            beam_size=beam_size,
            beam_size_token=min(len(pieces), beam_size * 4),
            beam_threshold=beam_threshold,
            lm_weight=1.0 if self.word_lm else 2.0,
            blank_token=pieces[0],
            sil_token=pieces[1],
            unk_word=pieces[1],
        )

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        results = self.decoder(log_probs.float().cpu().contiguous(), lengths.cpu().int())
        hyps = []
        for nbest in results:
            # The decoder returns the token path with repeats merged and blanks removed,
            # but framed by silence tokens (<unk> here, never emitted by training): drop those.
            hyps.append([int(t) for t in nbest[0].tokens if int(t) > 1] if nbest else [])
        return hyps


class PieceWordLM:
    """Word n-gram scores for a lexicon-free CTC search over SentencePiece pieces.

    A search state is ``(history, partial)``: the last ``order - 1`` complete words (``<s>``
    first) and the letters of the word being spelled. A piece that begins with "▁" closes the
    partial word, which is then scored ``lm_weight * ln p(word | history) + word_insertion_penalty``
    (Kaldi-style words: :func:`speechrecipe.text.normalize`, as for scoring; unknown words are
    <unk>, so out-of-vocabulary words stay possible). :meth:`finish` scores the last word and
    ``</s>``. The silence token (``<unk>``, id 1, which frames flashlight's hypotheses and is
    dropped from the output) and the blank add nothing to the state.
    """

    def __init__(self, arpa, pieces: list[str], lm_weight: float = 1.0, word_insertion_penalty: float = 0.0):
        from .lm import BOS, ArpaModel

        self.model = arpa if isinstance(arpa, ArpaModel) else ArpaModel(arpa)  # a model or an ARPA file
        self.pieces = pieces
        self.lm_weight = float(lm_weight)
        self.word_insertion_penalty = float(word_insertion_penalty)
        self.start = ((BOS,), "")
        self._word_cache: dict = {}

    def _words(self, history: tuple, text: str) -> tuple[tuple, float]:
        """Score the words of ``text`` after ``history``: the new history and the weighted score."""
        from .text import normalize

        score = 0.0
        for word in normalize(text).split():
            key = (history, word)
            if key not in self._word_cache:
                self._word_cache[key] = self.model.log10_prob(word, history) * math.log(10)
            score += self.lm_weight * self._word_cache[key] + self.word_insertion_penalty
            history = (*history, word)[-max(self.model.order - 1, 1) :]
        return history, score

    def advance(self, state: tuple, token: int) -> tuple[tuple, float]:
        """The state after emitting ``token`` and the score that adds."""
        history, partial = state
        if token <= 1:  # blank or the silence/<unk> token
            return state, 0.0
        *complete, partial = (partial + self.pieces[token]).split(WORD_BOUNDARY)
        if not complete:
            return (history, partial), 0.0
        history, score = self._words(history, " ".join(complete))
        return (history, partial), score

    def finish(self, state: tuple) -> float:
        """The score of the last (partial) word and of the sentence end."""
        from .lm import EOS

        history, score = self._words(*state)
        return score + self.lm_weight * self.model.log10_prob(EOS, history) * math.log(10)

    def sentence_score(self, text: str) -> float:
        """The total score the search adds for a whole transcript (for tests and diagnostics)."""
        return self.finish((self.start[0], text))


def _flashlight_lm(word_lm: PieceWordLM):
    """``word_lm`` as a torchaudio ``CTCDecoderLM``.

    flashlight merges hypotheses whose LM states are the same object (it compares pointers),
    and its ZeroLM, used without an LM, returns ``state.child(token)``: a trie of token
    sequences. This adapter returns the same trie and keeps its own ``(history, partial)``
    beside each node, so with weight 0 and penalty 0 the search is exactly the plain one.
    """
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

    class _Adapter(CTCDecoderLM):
        def __init__(self):
            CTCDecoderLM.__init__(self)
            self.nodes: dict = {}  # trie node -> (word state, score of the token that led to it)
            self.finished: dict = {}  # trie node -> finish score

        def start(self, start_with_nothing: bool):
            # A new utterance: drop the previous trie (flashlight has already cleared its hypotheses).
            self.root = CTCDecoderLMState()
            self.nodes = {self.root: (word_lm.start, 0.0)}
            self.finished = {}
            return self.root

        def score(self, state, token: int):
            child = state.child(token)
            entry = self.nodes.get(child)
            if entry is None:
                entry = self.nodes[child] = word_lm.advance(self.nodes[state][0], token)
            return child, entry[1]

        def finish(self, state):
            if state not in self.finished:
                self.finished[state] = word_lm.finish(self.nodes[state][0])
            return state, self.finished[state]

    return _Adapter()
