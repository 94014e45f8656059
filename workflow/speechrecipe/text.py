"""Transcript normalization, shared by data preparation and scoring.

Reference and hypothesis go through the same :func:`normalize` before WER is
computed, so a score never counts a difference in case or punctuation.
"""

from __future__ import annotations

import re
import unicodedata

DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")

# After the character pass below the text holds only word characters, apostrophes
# and spaces, so "a word character" is simply "neither a space nor an apostrophe".
_LONE_APOSTROPHE = re.compile(r"(?<![^\s'])'|'(?![^\s'])")


def _is_word_char(c: str) -> bool:
    # Letters, numbers and combining marks. Python's \w leaves out the marks
    # (category M), which would split words of Devanagari, Thai, Arabic with
    # vowel signs, ... at every vowel sign or virama.
    return unicodedata.category(c)[0] in "LNM"


def normalize(text: str) -> str:
    """Upper-case, punctuation removed (apostrophes inside words kept), single spaces.

    ``"Printing, in the only sense" -> "PRINTING IN THE ONLY SENSE"``;
    ``"don't" -> "DON'T"``. Accents are kept (NFC), so non-English text survives.
    """
    text = unicodedata.normalize("NFC", text).upper()
    text = text.replace("\u2019", "'")  # typographic apostrophe (right single quotation mark)
    text = "".join(c if c == "'" or _is_word_char(c) else " " for c in text)
    text = _LONE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())
