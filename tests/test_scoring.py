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
    lines = {tuple(line.split(" ", 2)[:2]): line.split(" ", 2)[2] for line in result.per_utt}
    assert lines["a", "ref"] == "ONE TWO THREE" and lines["a", "hyp"] == "ONE *** THREE"
    assert lines["a", "op"] == "C D C" and lines["a", "#csid"] == "2 0 0 1"
    assert lines["b", "ref"] == "FIVE ***" and lines["b", "hyp"] == "FIVE NINE"
    assert lines["b", "op"] == "C I" and lines["b", "#csid"] == "1 0 1 0"


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 5]) == 2
    assert edit_distance("kitten", "sitting") == 3
