"""Endpointing: when an utterance of a live stream has ended, from the CTC output so far.

Like Kaldi's endpoint rules (``OnlineEndpointConfig``), an utterance ends after a stretch of
silence, here read from the network's best path: output frames whose most likely token is the
CTC blank. A CTC model emits each token on about one frame and blank between tokens, even
inside words, so a blank stretch counts as silence only once it is longer than the gaps within
speech (tenths of a second). The rules, each off when 0:

- ``trailing_silence`` (Kaldi's rule 3, 1 s there): blank for this long after something was decoded;
- ``silence_timeout`` (rule 1, 5 s): nothing decoded for this long (the utterance ends empty, so
  that a silent stream does not grow one endless utterance);
- ``max_utterance`` (rule 5, 20 s): an utterance this long ends whatever it holds. It also bounds
  what serving a bidirectional model costs, since its audio is decoded again at every partial.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointConfig:
    """The endpoint rules, in seconds of audio; 0 turns a rule off."""

    trailing_silence: float = 1.0
    silence_timeout: float = 5.0
    max_utterance: float = 20.0

    def __post_init__(self):
        for name in ("trailing_silence", "silence_timeout", "max_utterance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"endpoint rule {name} must be a number of seconds >= 0 (0 turns it off)")

    def rule_reached(self, seconds: float, trailing_blank_seconds: float, decoded_anything: bool) -> str | None:
        """The name of the first rule an utterance has reached, or None while it goes on.

        ``seconds``: the utterance's audio so far; ``trailing_blank_seconds``: the blank output at
        its end (all of it when nothing was decoded); ``decoded_anything``: whether a token was.
        """
        if decoded_anything and self.trailing_silence and trailing_blank_seconds >= self.trailing_silence:
            return "trailing_silence"
        if not decoded_anything and self.silence_timeout and trailing_blank_seconds >= self.silence_timeout:
            return "silence_timeout"
        if self.max_utterance and seconds >= self.max_utterance:
            return "max_utterance"
        return None
