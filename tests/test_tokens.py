from speechrecipe import tokens
from speechrecipe.text import DIGIT_WORDS

TEXTS = [" ".join(DIGIT_WORDS[(i * 7 + k) % 10] for k in range(1 + i % 4)) for i in range(200)]


def test_unigram_model_reserves_blank_and_round_trips(tmp_path):
    tok = tokens.train(TEXTS, tmp_path / "sp.model", "unigram", 30)
    assert tok.pieces[0] == "<blank>" and tok.pieces[1] == "<unk>"
    assert (tmp_path / "tokens.txt").read_text().splitlines()[0] == "<blank> 0"
    for text in TEXTS[:20]:
        ids = tok.encode(text)
        assert 0 not in ids and 1 not in ids
        assert tok.decode(ids) == text
    # Blanks in a decoded id sequence are ignored.
    assert tok.decode([0, *tok.encode("ONE TWO"), 0]) == "ONE TWO"


def test_char_model_has_one_unit_per_character(tmp_path):
    tok = tokens.train(TEXTS, tmp_path / "char.model", "char", 100)
    letters = set("".join(TEXTS).replace(" ", ""))
    assert all(len(p.lstrip("\u2581")) <= 1 for p in tok.pieces[2:])
    assert letters <= {p.lstrip("\u2581") for p in tok.pieces}
    assert tok.unknown_characters("ONE TWO") == set()
    assert tok.unknown_characters("ONE QX") == {"Q", "X"} - letters


def test_training_is_deterministic(tmp_path):
    a = tokens.train(TEXTS, tmp_path / "a.model", "bpe", 40)
    b = tokens.train(TEXTS, tmp_path / "b.model", "bpe", 40)
    assert a.model_bytes == b.model_bytes
