import shutil
import subprocess

import pytest

from conftest import KALDI
from speechrecipe.scoring import edit_distance, parse_kaldi_line, score


def test_kaldi_wer_line_and_counts():
    result = score({"u1": "ONE TWO THREE", "u2": "FOUR FIVE"}, {"u1": "one two tree four", "u2": "FOUR"})
    assert (result.wer.ins, result.wer.dels, result.wer.subs, result.wer.total) == (1, 1, 1, 5)
    assert result.wer.kaldi_line() == "%WER 60.00 [ 3 / 5, 1 ins, 1 del, 1 sub ]"
    assert parse_kaldi_line(result.wer.kaldi_line()) == result.wer


def test_normalization_applies_to_both_sides():
    result = score({"u": "Hello, world!"}, {"u": "HELLO WORLD"})
    assert result.wer.errors == 0 and result.cer.errors == 0


def test_cer_counts_characters_without_spaces():
    result = score({"u": "AB CD"}, {"u": "AB CE"})
    assert result.cer.total == 4 and result.cer.subs == 1


def test_missing_hypothesis_counts_as_deletions():
    result = score({"a": "ONE TWO", "b": "THREE"}, {"a": "ONE TWO"})
    assert result.missing == ["b"] and result.wer.dels == 1 and result.wer.total == 3


def test_per_utt_has_kaldi_alignment_lines():
    result = score({"a": "ONE TWO THREE", "b": "FIVE"}, {"a": "ONE THREE", "b": "FIVE NINE"})
    assert result.per_utt == [
        "a ref  ONE  TWO  THREE",
        "a hyp  ONE  ***  THREE",
        "a op    C    D     C  ",
        "a #csid 2 0 0 1",
        "b ref  FIVE   ***",
        "b hyp  FIVE  NINE",
        "b op     C     I ",
        "b #csid 1 0 1 0",
    ]


def test_an_empty_reference_counts_the_hypothesis_words_as_insertions():
    # Kaldi's data directories allow empty transcripts; Kaldi's compute-wer counts what was recognized as insertions.
    result = score({"a": "ONE TWO", "b": "", "c": ""}, {"a": "ONE TWO", "b": "SEVEN EIGHT", "c": ""})
    assert (result.wer.ins, result.wer.dels, result.wer.subs, result.wer.total) == (2, 0, 0, 2)
    assert result.wer.kaldi_line() == "%WER 100.00 [ 2 / 2, 2 ins, 0 del, 0 sub ]"
    assert (result.cer.ins, result.cer.total) == (10, 6)
    assert result.per_utt[4:] == [
        "b ref   ***    *** ",
        "b hyp  SEVEN  EIGHT",
        "b op     I      I  ",
        "b #csid 0 0 2 0",
        "c ref  ",
        "c hyp  ",
        "c op   ",
        "c #csid 0 0 0 0",
    ]


def test_per_utt_is_laid_out_exactly_as_kaldis_wer_per_utt_details():
    """The same alignments through Kaldi's own utils/scoring/wer_per_utt_details.pl, as its scoring scripts run it."""
    script = KALDI / "utils" / "scoring" / "wer_per_utt_details.pl"
    if not script.is_file() or shutil.which("perl") is None:
        pytest.skip(f"needs perl and Kaldi's {script} (the shared tools folder beside the project)")
    refs = {"u1": "ONE TWO THREE", "u2": "I SEE", "u3": "", "u4": "SEVENTEEN A", "u5": "ÉTÉ ÇA", "u6": ""}
    hyps = {"u1": "ONE TOO THREE FOUR", "u2": "EYE", "u3": "OH NO", "u4": "SEVEN TEEN A", "u5": "ÉTÉ ÇA VA", "u6": ""}
    result = score(refs, hyps)
    # align-text's output for the same alignments: `utt ref hyp ; ref hyp ; ...`, '***' for no word.
    columns = {}
    for line in result.per_utt:
        utt, kind, *words = line.split()
        columns.setdefault(utt, {})[kind] = words
    align_text = "".join(
        f"{utt} {' ; '.join(f'{r} {h}' for r, h in zip(c['ref'], c['hyp']))}\n" for utt, c in columns.items()
    )
    kaldi = subprocess.run(
        ["perl", str(script), "--special-symbol", "***"],
        input=align_text.encode(),
        capture_output=True,
        check=True,
    )
    assert kaldi.stdout.decode() == "\n".join(result.per_utt) + "\n"


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 5]) == 2
    assert edit_distance("kitten", "sitting") == 3
