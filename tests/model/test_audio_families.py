"""The audio encoder families against what the reference code's own modules compute
(tests/model/reference/record.py recorded it from github.com/OptimusPrimus/salsa)."""

import argparse
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, check_at_load
from torchaudio.functional import resample

from audioretrieval.model.audio import STORED_RATE, WeightsUnavailable, audio_encoder, families, token_mask
from audioretrieval.model.encoders.atst import AtstAudioEncoder, FrameTransformer
from audioretrieval.model.encoders.atst import load_published as load_atst
from audioretrieval.model.encoders.mobilenet import MobileNetAudioEncoder, MobileNetV3
from audioretrieval.model.encoders.mobilenet import load_published as load_mobilenet

REFERENCE = torch.load(Path(__file__).parent / "reference" / "audio_encoders.pt", weights_only=True)
SMALL_MN = {"family": "mn", "pretrained": False, "weights": None, "width_mult": 0.1, "window_s": 1.0, "hop_s": 1.0}
SMALL_ATST = {
    "family": "atst",
    "pretrained": False,
    "weights": None,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 4,
    "window_s": 1.0,
    "hop_s": 1.0,
}


def layout(module):
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def without(state, prefix):
    return {key: value for key, value in state.items() if not key.startswith(prefix)}


def test_families_are_found_by_name_and_an_unknown_one_is_refused_with_the_known_ones():
    assert {"passt", "mn", "atst"} <= set(families())
    with pytest.raises(ValueError, match=r"model.audio.family: unknown family 'beats'; known: atst, mn, passt"):
        audio_encoder({**SMALL_MN, "family": "beats"}, 2.0, 16)


def test_the_mobilenet_has_efficientat_s_layout_key_for_key_but_its_unused_classifier():
    assert layout(MobileNetV3(4.0)) == without(REFERENCE["mn40_layout"], "classifier.")


def test_atst_frame_base_has_the_reference_layout_key_for_key_but_its_pretraining_mask_token():
    assert layout(FrameTransformer(768, 12, 12, 64)) == without(REFERENCE["atst_base_layout"], "mask_embed")


def test_the_mobilenet_computes_the_reference_pooled_features():
    small = REFERENCE["mn01"]
    network = MobileNetV3(0.1).eval()
    load_mobilenet(network, small["state"], 0.1)
    with torch.no_grad():
        features = network(small["input"]).mean((2, 3))
    torch.testing.assert_close(features, small["features"], atol=1e-5, rtol=1e-4)


def test_atst_frame_computes_the_reference_frame_tokens():
    small = REFERENCE["atst_small"]
    network = FrameTransformer(32, 2, 4, 64).eval()
    load_atst(network, small["state"])
    with torch.no_grad():
        tokens = network(small["input"])
    torch.testing.assert_close(tokens, small["tokens"], atol=1e-5, rtol=1e-4)


def test_atst_frame_loads_a_lightning_checkpoint_under_the_reference_names():
    """load_atst's renaming: the teacher encoder's keys without their prefix (ATST-Frame's own last
    norm is `norm_frame`, the clip-level ATST's `norm`), its cls_token dropped."""
    small = REFERENCE["atst_small"]["state"]
    frame = {f"model.teacher.encoder.{k}": v for k, v in small.items()}
    clip = {f"model.teacher.encoder.{k}".replace("encoder.norm_frame", "encoder.norm"): v for k, v in small.items()}
    for state in (frame, clip):
        state["model.teacher.encoder.cls_token"] = torch.zeros(1, 1, 32)
        network = FrameTransformer(32, 2, 4, 64)
        load_atst(network, {"state_dict": state})
        assert torch.equal(network.norm_frame.weight, small["norm_frame.weight"])
        assert torch.equal(network.blocks[1].norm1.weight, small["blocks.1.norm1.weight"])


def test_each_front_end_equals_the_reference_one_from_the_stored_rate():
    waveform = REFERENCE["waveform_32k"]
    mn = MobileNetAudioEncoder(SMALL_MN, 1.0, 16).eval()
    with torch.no_grad():
        torch.testing.assert_close(  # float32 FFTs differ by CPU kind in the last digits
            mn.mel.mel_of_power(mn.fixed_features(waveform)), REFERENCE["mn_mel"], atol=1e-4, rtol=1e-4
        )
    atst = AtstAudioEncoder(SMALL_ATST, 1.0, 16).eval()
    with torch.no_grad():  # what AudioEncoder.spectrograms gives ATST: the window resampled to 16 kHz
        features = atst.fixed_features(resample(waveform, STORED_RATE, 16000))
    torch.testing.assert_close(features, REFERENCE["atst_mel"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cfg", [SMALL_MN, SMALL_ATST], ids=["mn", "atst"])
def test_every_family_embeds_segments_and_ignores_their_padding(cfg):
    torch.manual_seed(0)
    model = audio_encoder({**cfg, "window_s": 0.5, "hop_s": 0.5}, 2.0, 16).eval()
    signal = 0.1 * torch.randn(2, STORED_RATE)
    padded = torch.cat([signal, torch.zeros(2, STORED_RATE)], 1)
    garbage = torch.cat([signal, torch.randn(2, STORED_RATE)], 1)
    half = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        embedding = model(padded, half)
        assert embedding.shape == (2, 16)
        torch.testing.assert_close(embedding, model(garbage, half))
        cached = model.spectrograms(padded)
        torch.testing.assert_close(model(padded, half, cached), embedding)


def test_weights_of_another_network_are_refused_naming_the_key(tmp_path):
    torch.save(REFERENCE["mn01"]["state"], tmp_path / "mn01.pt")
    with pytest.raises(
        WeightsUnavailable, match="model.audio.weights: not the weights of an EfficientAT MobileNetV3 of width_mult 0.2"
    ):
        MobileNetAudioEncoder(
            {**SMALL_MN, "width_mult": 0.2, "pretrained": True, "weights": str(tmp_path / "mn01.pt")}, 1.0, 16
        )
    with pytest.raises(WeightsUnavailable, match="model.audio.weights: not an ATST-Frame checkpoint of this size"):
        AtstAudioEncoder({**SMALL_ATST, "pretrained": True, "weights": str(tmp_path / "mn01.pt")}, 1.0, 16)
    loaded = MobileNetAudioEncoder({**SMALL_MN, "pretrained": True, "weights": str(tmp_path / "mn01.pt")}, 1.0, 16)
    assert torch.equal(loaded.network.features[0][0].weight, REFERENCE["mn01"]["state"]["features.0.0.weight"])


def test_atst_without_a_local_checkpoint_says_which_file_to_get_and_which_key_to_set():
    with pytest.raises(WeightsUnavailable, match=r"atstframe_base_as2M.ckpt.* set model.audio.weights"):
        AtstAudioEncoder({**SMALL_ATST, "pretrained": True}, 1.0, 16)


def test_atst_windows_longer_than_its_positional_embeddings_are_refused():
    with pytest.raises(ValueError, match=r"model.audio.window_s \(12.0\) exceeds ATST-Frame's 10 s"):
        AtstAudioEncoder({**SMALL_ATST, "window_s": 12.0, "hop_s": 12.0}, 12.0, 16)


def test_the_schema_names_every_family_and_holds_each_to_its_own_keys(tiny_demo_config):
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["$defs"]["audio_encoder"]
    assert set(schema["properties"]["family"]["enum"]) == set(families())
    for cfg in (SMALL_MN, SMALL_ATST):
        tiny_demo_config["model"]["audio"] = cfg
        check_at_load(tiny_demo_config)
    mistakes = [
        ({**SMALL_MN, "patchout_t": 2}, "'patchout_t' was unexpected"),
        ({k: v for k, v in SMALL_MN.items() if k != "width_mult"}, "'width_mult' is a required property"),
        ({**SMALL_ATST, "window_s": 12.0}, "12.0 is greater than the maximum of 10"),
        (
            {**SMALL_ATST, "embed_dim": 30},
            r"model.audio.embed_dim \(30\) must be divisible by model.audio.num_heads \(4\)",
        ),
        ({**SMALL_MN, "weights": "mn.pt"}, "model.audio.weights is set but model.audio.pretrained is false"),
        (
            {**SMALL_ATST, "pretrained": True},
            r"None is not of type 'string'(.|\n)*instance\['model'\]\['audio'\]\['weights'\]",
        ),
    ]
    for cfg, message in mistakes:
        tiny_demo_config["model"]["audio"] = cfg
        with pytest.raises(Exception, match=message):
            check_at_load(tiny_demo_config)


def test_the_mobilenets_batchnorm_momentum_is_efficientats_unless_set():
    default = MobileNetAudioEncoder(SMALL_MN, 1.0, 16)
    faster = MobileNetAudioEncoder({**SMALL_MN, "bn_momentum": 0.1}, 1.0, 16)
    norms = [m for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and {m.momentum for m in norms} == {0.01}
    assert {m.momentum for m in faster.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}


def test_tokens_of_overlapping_windows_are_masked_by_where_they_start():
    """1 s windows every 0.5 s over a 2 s segment holding 1.1 s of signal: ATST-Frame's 25 tokens a
    window start every 40 ms from the window's start; those starting before 1.1 s count."""
    model = AtstAudioEncoder({**SMALL_ATST, "window_s": 1.0, "hop_s": 0.5}, 2.0, 16)
    mask = token_mask(torch.tensor([1.1 / 2.0]), model.token_starts(25))
    assert mask.reshape(3, 25).sum(1).tolist() == [25, 15, 3]
    tiled = MobileNetAudioEncoder({**SMALL_MN, "window_s": 1.0, "hop_s": 1.0}, 3.0, 16)
    assert torch.equal(tiled.token_starts(1), torch.arange(3) / 3)  # one token a window, windows tiling the segment


def test_weights_holding_more_than_tensors_are_refused_in_one_sentence(tmp_path):
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(lr=1.0)}, tmp_path / "lightning.ckpt")
    with pytest.raises(WeightsUnavailable, match=r"lightning.ckpt: not readable as the .*weights_only=True"):
        AtstAudioEncoder({**SMALL_ATST, "pretrained": True, "weights": str(tmp_path / "lightning.ckpt")}, 1.0, 16)
