"""Transcript normalization: the same function feeds data preparation and scoring."""

import pytest

from speechrecipe.text import DIGIT_WORDS, normalize


@pytest.mark.parametrize(
    "raw, expected",
    [
        # LJ Speech, first clip: case and commas
        (
            "Printing, in the only sense with which we are at present concerned,",
            "PRINTING IN THE ONLY SENSE WITH WHICH WE ARE AT PRESENT CONCERNED",
        ),
        ("in being comparatively modern.", "IN BEING COMPARATIVELY MODERN"),
        # apostrophes inside words are kept, also the typographic one
        ("don't", "DON'T"),
        ("O'Brien's cat", "O'BRIEN'S CAT"),
        ("rock\u2019n\u2019roll", "ROCK'N'ROLL"),
        # ... but quotes around words are punctuation
        ("'tis the students' books", "TIS THE STUDENTS BOOKS"),
        ("He said 'hello'.", "HE SAID HELLO"),
        ("\u201cQuoted,\u201d she said\u2026", "QUOTED SHE SAID"),
        ("''", ""),
        # hyphens, underscores, dashes separate words
        ("twenty-one", "TWENTY ONE"),
        ("snake_case", "SNAKE CASE"),
        ("x \u2014 y", "X Y"),
        # whitespace of any kind collapses to single spaces
        ("  Hello,\t\tWorld!\r\n", "HELLO WORLD"),
        ("", ""),
        ("?!.", ""),
        # digits are kept as they are (spelling numbers out is the corpus' business)
        ("In 1984.", "IN 1984"),
        # accents survive, in NFC whichever form came in
        ("na\u00efve caf\u00e9", "NA\u00cfVE CAF\u00c9"),
        ("e\u0301te\u0301", "\u00c9T\u00c9"),
        ("\u0451\u043b\u043a\u0430", "\u0401\u041b\u041a\u0410"),
        ("Stra\u00dfe", "STRASSE"),
        # combining marks are part of a word (Devanagari vowel signs and virama)
        (
            "\u0939\u093f\u0928\u094d\u0926\u0940, \u092d\u093e\u0937\u093e!",
            "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e",
        ),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_is_idempotent():
    for raw in ("Don't stop, O'Brien!", "e\u0301te\u0301 \u2014 twenty-one", "'quoted'"):
        once = normalize(raw)
        assert normalize(once) == once


def test_digit_words_survive_normalization():
    assert [normalize(w.lower()) for w in DIGIT_WORDS] == list(DIGIT_WORDS)
    assert DIGIT_WORDS[0] == "ZERO" and DIGIT_WORDS[9] == "NINE" and len(DIGIT_WORDS) == 10
