"""The word n-gram language model: Kneser-Ney training, ARPA, and its use in the beam search."""

import json
import math
import random
import re

import pytest

from conftest import ROOT, run_script
from speechrecipe import lm
from speechrecipe.text import DIGIT_WORDS

_rng = random.Random(7)
DIGIT_TEXT = [" ".join(_rng.choice(DIGIT_WORDS) for _ in range(_rng.randint(1, 6))) for _ in range(300)]


@pytest.fixture(scope="module")
def digit_lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    lm.train(DIGIT_TEXT, order=3).write_arpa(path)
    return lm.ArpaModel(path)


def predicted_words(model):
    return sorted(model.vocab - {lm.BOS})  # every word, <unk> and </s>


@pytest.mark.parametrize(
    "history",
    [(), ("<s>",), ("<s>", "ONE"), ("ONE", "TWO"), ("NINE",), ("NOT", "SEEN"), ("<s>", "QUUX"), ("SEVEN", "SEVEN")],
)
def test_probabilities_over_the_vocabulary_sum_to_one(digit_lm, history):
    total = sum(10 ** digit_lm.log10_prob(w, history) for w in predicted_words(digit_lm))
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("order", [1, 2, 4])
def test_every_order_is_normalized(tmp_path, order):
    lm.train(DIGIT_TEXT[:50], order=order).write_arpa(tmp_path / "lm.arpa")
    model = lm.ArpaModel(tmp_path / "lm.arpa")
    assert model.order == order
    for history in [(), ("<s>",), ("<s>", "ONE", "TWO"), ("THREE", "FOUR", "FIVE")]:
        assert sum(10 ** model.log10_prob(w, history) for w in predicted_words(model)) == pytest.approx(1, abs=1e-4)


def test_estimated_discounts_give_a_normalized_model_too(tmp_path):
    # Zipf-distributed words: every order has counts of counts 1..4 to estimate its D1, D2, D3+ from.
    rng = random.Random(3)
    words = [f"W{i}" for i in range(60)]
    text = [" ".join(rng.choices(words, [1 / (r + 1) for r in range(60)], k=rng.randint(2, 8))) for _ in range(150)]
    model = lm.train(text, order=2)
    assert all(d != lm.FALLBACK_DISCOUNTS for d in model.discounts)
    model.write_arpa(tmp_path / "lm.arpa")
    arpa = lm.ArpaModel(tmp_path / "lm.arpa")
    for history in [("<s>",), ("W0",), ("W7",), ("W59",), ("NEVER",)]:
        assert sum(10 ** arpa.log10_prob(w, history) for w in predicted_words(arpa)) == pytest.approx(1, abs=1e-4)


def test_a_seen_trigram_scores_higher_than_an_unseen_one(tmp_path):
    texts = ["ONE TWO THREE"] * 5 + ["FOUR TWO FIVE"] * 5 + ["ONE TWO FIVE SIX", "SIX THREE"]
    lm.train(texts, order=3).write_arpa(tmp_path / "lm.arpa")
    model = lm.ArpaModel(tmp_path / "lm.arpa")
    assert ("ONE", "TWO", "THREE") in model.prob[2] and ("FOUR", "TWO", "THREE") not in model.prob[2]
    assert model.log10_prob("THREE", ["ONE", "TWO"]) > model.log10_prob("THREE", ["FOUR", "TWO"])
    assert model.log10_prob("FIVE", ["FOUR", "TWO"]) > model.log10_prob("FIVE", ["ONE", "TWO"])
    # An unknown word is <unk>, and a sentence the LM saw beats a shuffled one.
    assert model.log10_prob("ELEVEN", ["ONE", "TWO"]) == model.log10_prob("<unk>", ["ONE", "TWO"])
    assert model.sentence_log10_prob(["ONE", "TWO", "THREE"]) > model.sentence_log10_prob(["THREE", "TWO", "ONE"])


def test_arpa_header_counts_match_the_sections(tmp_path):
    lm.train(DIGIT_TEXT, order=3).write_arpa(tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    declared = {int(n): int(c) for n, c in re.findall(r"^ngram (\d+)=(\d+)$", text, flags=re.MULTILINE)}
    assert sorted(declared) == [1, 2, 3]
    sections = re.split(r"^\\(\d)-grams:$", text, flags=re.MULTILINE)
    for n, body in zip(sections[1::2], sections[2::2]):
        lines = [line for line in body.splitlines() if line.strip() and line != "\\end\\"]
        assert len(lines) == declared[int(n)]
        assert all(len(line.split("\t")[1].split()) == int(n) for line in lines)
    assert text.rstrip().endswith("\\end\\")
    # The standard vocabulary entries are there: <s> as a context only, <unk> with probability.
    assert "-99.0000000\t<s>\t" in text and "\t<unk>\n" in text
    # A wrong header is refused.
    (tmp_path / "bad.arpa").write_text(text.replace(f"ngram 2={declared[2]}", f"ngram 2={declared[2] + 1}"))
    with pytest.raises(ValueError, match="header"):
        lm.ArpaModel(tmp_path / "bad.arpa")


def test_a_bigram_model_agrees_with_a_hand_computation(tmp_path):
    """Sentences 'A B', 'A B', 'B' with the discounts D1, D2, D3+ = 0.5, 1, 1.5 (this corpus is too
    small to estimate them, so they are also the fallback the training picks by itself).

    Continuation counts of the unigrams: A 1 (after <s>), B 2 (after A and <s>), </s> 1 (after B):
    total 4, freed mass (0.5 + 1 + 0.5) / 4 = 0.5, spread over 4 words (A, B, </s>, <unk>).
      p(A) = 0.5/4 + 0.125 = 0.25    p(B) = 1/4 + 0.125 = 0.375    p(<unk>) = 0.125
    Bigrams after <s>: A twice, B once: total 3, gamma = (1 + 0.5) / 3 = 0.5.
      p(A | <s>) = (2 - 1)/3 + 0.5 * 0.25 = 11/24
    After A: B twice: gamma = 1/2; p(B | A) = (2 - 1)/2 + 0.5 * 0.375 = 0.6875
    After B: </s> three times: gamma = 1.5/3; unseen p(A | B) = 0.5 * p(A) = 0.125
    """
    model = lm.train(["A B", "A B", "B"], order=2)
    assert model.discounts == [lm.FALLBACK_DISCOUNTS] * 2
    assert lm.adjusted_counts(lm.count_ngrams([["A", "B"], ["A", "B"], ["B"]], 2))[0] == {
        ("A",): 1,
        ("B",): 2,
        ("</s>",): 1,
    }
    model.write_arpa(tmp_path / "lm.arpa")
    arpa = lm.ArpaModel(tmp_path / "lm.arpa")
    expected = {
        ("A", ("<s>",)): 11 / 24,
        ("B", ("A",)): 0.6875,
        ("A", ("B",)): 0.125,
        ("B", ()): 0.375,
        ("<unk>", ()): 0.125,
        ("</s>", ("B",)): 0.5 + 0.5 * 0.25,
    }
    for (word, history), p in expected.items():
        assert 10 ** arpa.log10_prob(word, history) == pytest.approx(p, rel=1e-6), (word, history)
    assert 10 ** arpa.bow[0][("B",)] == pytest.approx(0.5, rel=1e-6)


def test_discounts_follow_chen_and_goodman():
    # t1..t4 = 10, 5, 3, 2: Y = 10 / 20 = 0.5; D1 = 1 - 2*0.5*5/10, D2 = 2 - 3*0.5*3/5, D3+ = 3 - 4*0.5*2/3.
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [9] * 4
    (d1, d2, d3), estimated = lm.discounts(counts)
    assert estimated and (d1, d2, d3) == pytest.approx((0.5, 1.1, 3 - 4 / 3))
    assert lm.discounts([1, 1, 2]) == (lm.FALLBACK_DISCOUNTS, False)


def test_kneser_ney_uses_continuation_counts():
    # FRANCISCO is frequent but only ever follows SAN: as a unigram it is rarer than the once-seen words.
    text = ["SAN FRANCISCO"] * 6 + ["ONE TWO", "TWO THREE", "THREE ONE"]
    adjusted = lm.adjusted_counts(lm.count_ngrams([t.split() for t in text], 2))
    assert adjusted[0][("FRANCISCO",)] == 1 and adjusted[0][("TWO",)] == 2
    assert adjusted[1][("SAN", "FRANCISCO")] == 6 and adjusted[1][("<s>", "SAN")] == 6


def test_training_is_deterministic(tmp_path):
    lm.train(DIGIT_TEXT, order=3).write_arpa(tmp_path / "a.arpa")
    lm.train(list(reversed(DIGIT_TEXT)), order=3).write_arpa(tmp_path / "b.arpa")
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()


def test_train_lm_script_normalizes_the_kaldi_text(tmp_path):
    (tmp_path / "text").write_text("u1 one, two\nu2 One Three\nu3 TWO\n")
    run_script(ROOT / "workflow/scripts/train_lm.py", tmp_path / "text", tmp_path / "lm/lm.arpa", "--order", 2)
    model = lm.ArpaModel(tmp_path / "lm/lm.arpa")
    assert model.order == 2 and model.vocab == {"<s>", "</s>", "<unk>", "ONE", "TWO", "THREE"}


def test_best_weight_is_kaldi_best_wer_with_ties_to_the_smaller_weight():
    assert lm.best_weight({0.0: 10, 0.5: 7, 1.0: 7, 1.5: 9}) == 0.5
    assert lm.best_weight({1.0: 3, 0.25: 3}) == 0.25


# --- the LM in the beam search ------------------------------------------------------------------

PIECES = ["<blank>", "<unk>", "\u2581ONE", "\u2581T", "WO", "\u2581", "F", "IVE", "\u2581TWO"]


def test_word_boundaries_come_from_the_pieces(tmp_path):
    from speechrecipe.decoding import PieceWordLM

    lm.train(["ONE TWO", "TWO FIVE", "ONE FIVE"], order=2).write_arpa(tmp_path / "lm.arpa")
    word_lm = PieceWordLM(tmp_path / "lm.arpa", PIECES, lm_weight=0.7, word_insertion_penalty=-0.25)
    # "▁T" "WO" spell TWO; "▁" alone then "F" "IVE" spell FIVE; silence/<unk> (1) changes nothing.
    state, total = word_lm.start, 0.0
    for token in [2, 3, 1, 4, 5, 6, 7]:
        state, score = word_lm.advance(state, token)
        total += score
    assert state == (("TWO",), "FIVE")  # ONE and TWO scored, FIVE still being spelled
    total += word_lm.finish(state)
    model = word_lm.model
    ln10 = math.log(10)
    expected = sum(
        0.7 * ln10 * model.log10_prob(w, [h]) - 0.25 for h, w in [("<s>", "ONE"), ("ONE", "TWO"), ("TWO", "FIVE")]
    )
    expected += 0.7 * ln10 * model.log10_prob("</s>", ["FIVE"])
    assert total == pytest.approx(expected)
    assert word_lm.sentence_score("ONE TWO FIVE") == pytest.approx(expected)
    # A word nobody trained on is <unk>: possible, not forbidden.
    assert word_lm.advance(((lm.BOS,), "QUUX"), 2)[1] == pytest.approx(
        0.7 * ln10 * model.log10_prob(lm.UNK, [lm.BOS]) - 0.25
    )


@pytest.fixture(scope="module")
def trained(fsdd_features, tmp_path_factory):
    """A tiny model trained in seconds on real FSDD digits, and the dev set's log-probabilities.

    Without SpecAugment and selected by dev token error rate so that, after a few seconds, it
    outputs (mostly wrong) letters rather than nothing: the searches below have words to work on.
    """
    from speechrecipe.dataset import FeatureSet, collate
    from speechrecipe.recognizer import Recognizer

    exp = tmp_path_factory.mktemp("am")
    model = {"hidden": 32, "layers": 2, "subsampling": "stack", "subsampling_factor": 2, "dropout": 0.1}
    train = {
        "max_epochs": 60,
        "batch_frames": 1500,
        "lr": 0.005,
        "warmup_steps": 10,
        "average_best": 2,
        "seed": 3,
        "select_by": "ter",
        "specaug": {"freq_masks": 0, "time_masks": 0},
    }
    run_script(
        ROOT / "workflow/scripts/train_am.py",
        fsdd_features / "fbank/train",
        fsdd_features / "fbank/dev",
        fsdd_features / "tokens/sp.model",
        exp,
        "--model",
        json.dumps(model),
        "--train",
        json.dumps(train),
        "--cmvn",
        "speaker",
        "--threads",
        "1",
        "--no-progress",
    )
    recognizer = Recognizer.load(exp / "final.pt")
    data = FeatureSet(fsdd_features / "fbank/dev", recognizer.cmvn_mode, None, recognizer.global_mean_std)
    feats, lengths, _, _ = collate(data.utterances)
    return exp, recognizer, [u.utt for u in data.utterances], *recognizer.log_probs(feats, lengths)


def test_lm_search_with_weight_zero_is_the_plain_beam_search(trained, tmp_path):
    from speechrecipe.decoding import BeamSearch

    _, recognizer, _, log_probs, lengths = trained
    pieces = recognizer.tokenizer.pieces
    lm.train(DIGIT_TEXT, order=3).write_arpa(tmp_path / "lm.arpa")
    for beam in (1, 4, 8):
        plain = BeamSearch(pieces, beam_size=beam)(log_probs, lengths)
        with_lm = BeamSearch(
            pieces, beam_size=beam, lm_path=tmp_path / "lm.arpa", lm_weight=0.0, word_insertion_penalty=0.0
        )(log_probs, lengths)
        assert with_lm == plain, f"beam {beam}"


def test_a_heavy_lm_pulls_the_output_towards_its_text(trained, tmp_path):
    from speechrecipe.decoding import BeamSearch

    _, recognizer, _, log_probs, lengths = trained
    tok = recognizer.tokenizer
    plain = [tok.decode(ids) for ids in BeamSearch(tok.pieces, beam_size=8)(log_probs, lengths)]
    assert any(plain), "the tiny model outputs nothing: train it longer"
    # The LM forbids (gives only <unk> mass to) the word the plain search outputs most often.
    banned = max({w for h in plain for w in h.split()}, key=lambda w: sum(h.split().count(w) for h in plain))
    lm.train([w for w in DIGIT_WORDS if w != banned] * 5, order=2).write_arpa(tmp_path / "lm.arpa")
    search = BeamSearch(tok.pieces, beam_size=8, lm_path=tmp_path / "lm.arpa", lm_weight=3.0)
    with_lm = [tok.decode(ids) for ids in search(log_probs, lengths)]
    count = lambda hyps: sum(h.split().count(banned) for h in hyps)
    assert count(with_lm) < count(plain), (banned, plain, with_lm)
    # The search traded acoustic score for LM score: its output scores higher under the LM.
    assert sum(map(search.word_lm.sentence_score, with_lm)) > sum(map(search.word_lm.sentence_score, plain))


def test_decode_and_sweep_scripts_with_the_lm(trained, fsdd_features, tmp_path):
    exp = trained[0]
    run_script(ROOT / "workflow/scripts/train_lm.py", fsdd_features / "data/train/text", tmp_path / "lm.arpa")
    run_script(
        ROOT / "workflow/scripts/sweep_lm_weight.py",
        exp / "final.pt",
        fsdd_features / "fbank/dev",
        fsdd_features / "data/dev/text",
        tmp_path / "lm.arpa",
        tmp_path,
        "--weights",
        1,
        0,
        0.5,
        "--config",
        '{"beam_size": 4}',
    )
    rows = [line.split("\t") for line in (tmp_path / "sweep.tsv").read_text().splitlines()]
    assert rows[0] == ["weight", "wer", "errors", "words"] and [r[0] for r in rows[1:]] == ["0", "0.5", "1"]
    errors = {float(r[0]): int(r[2]) for r in rows[1:]}
    assert float((tmp_path / "best_weight").read_text()) == lm.best_weight(errors)

    hyp = tmp_path / "hyp.txt"
    result = run_script(
        ROOT / "workflow/scripts/decode.py",
        exp / "final.pt",
        fsdd_features / "fbank/dev",
        hyp,
        "--config",
        '{"beam_size": 4}',
        "--lm",
        tmp_path / "lm.arpa",
        "--lm-weight-file",
        tmp_path / "best_weight",
    )
    assert "decoding with the language model" in result.stderr and "beam+lm decoding of 20" in result.stderr
    assert len(hyp.read_text().splitlines()) == 20
    refused = run_script(
        ROOT / "workflow/scripts/decode.py",
        exp / "final.pt",
        fsdd_features / "fbank/dev",
        hyp,
        "--config",
        '{"method": "greedy"}',
        "--lm",
        tmp_path / "lm.arpa",
        "--lm-weight",
        1,
        check=False,
    )
    assert refused.returncode != 0 and "--lm needs the beam search" in refused.stderr


# --- the LM stages of the recipe ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """The tiny synthetic recipe of test_recipe.py, decoded with the LM."""
    from test_recipe import TINY, snakemake

    workdir = tmp_path_factory.mktemp("recipe_lm")
    config = {
        **{k: v for k, v in TINY.items() if k != "test_sets"},
        "tag": "tiny_lm",
        "decode": {**TINY["decode"], "use_lm": True, "lm": {"weights": [0.0, 0.5]}},
    }
    snakemake(workdir, config)
    return workdir, config


@pytest.mark.slow
def test_the_recipe_trains_the_lm_sweeps_its_weight_and_decodes_with_it(lm_run):
    from test_recipe import planned_rules, snakemake

    workdir, config = lm_run
    exp = workdir / "exp/tiny_lm"
    assert lm.ArpaModel(exp / "lm/lm.arpa").order == 3
    rows = [line.split("\t") for line in (exp / "lm/sweep.tsv").read_text().splitlines()]
    assert rows[0][:2] == ["weight", "wer"] and [r[0] for r in rows[1:]] == ["0", "0.5"]
    best = float((exp / "lm/best_weight").read_text())
    assert best == lm.best_weight({float(r[0]): int(r[2]) for r in rows[1:]})
    for name in ("dev", "test"):
        log = (exp / f"decode_{name}/log/decode.log").read_text()
        assert "decoding with the language model exp/tiny_lm/lm/lm.arpa (3-gram" in log
        assert f"weight {best:g}, word insertion penalty 0" in log
        assert (exp / f"decode_{name}/wer").read_text().startswith("%WER")
    assert (exp / "results.tsv").exists()
    assert not list(workdir.rglob(".*.tmp*")), "temporary files left behind"

    assert planned_rules(snakemake(workdir, config, args=["-n"])) == set()
    # Another weight list: the sweep and what depends on it, not the LM itself.
    more = {"decode": {"lm": {"weights": [0.0, 0.5, 1.0]}}}
    assert planned_rules(snakemake(workdir, config, more, args=["-n"])) == {
        "lm_weight_sweep",
        "decode",
        "score",
        "results",
        "experiment_config",
        "plots",
    }
    # LM off: decoding no longer asks for the LM stages.
    off = snakemake(workdir, config, {"decode": {"use_lm": False}}, args=["-n"])
    assert planned_rules(off) == {"decode", "score", "results", "experiment_config", "plots"}


def test_without_use_lm_the_dag_has_no_lm_stages(tmp_path):
    from test_recipe import planned_rules, snakemake

    plain = planned_rules(snakemake(tmp_path, {}, args=["-n"]))
    assert "decode" in plain and not plain & {"train_lm", "lm_weight_sweep"}
    with_lm = planned_rules(snakemake(tmp_path, {"decode": {"use_lm": True}}, args=["-n"]))
    assert with_lm == plain | {"train_lm", "lm_weight_sweep"}
    refused = snakemake(tmp_path, {"decode": {"use_lm": True, "method": "greedy"}}, args=["-n"], check=False)
    assert refused.returncode != 0 and "decode.use_lm needs decode.method: beam" in refused.stdout + refused.stderr
