"""Importing the authors' released checkpoint: a Lightning checkpoint of the reference code's AudioRetrievalModel
(experiments/ex_dcase24.py), written here at the demo's small sizes from module trees named as the
reference code names them, converted, and compared with a direct computation on the reference code's
modules."""

import copy
import math
import re
import shutil
import string
import sys
import types

import forked
import hear21passt.models.passt as passt_module
import pytest
import torch
import yaml
from conftest import REPO, run_snakemake
from hear21passt.models.passt import PaSST
from hear21passt.models.preprocess import AugmentMelSTFT
from http_server import FileServer
from torch import nn
from transformers import AutoTokenizer, RobertaConfig, RobertaModel

from audioretrieval.files import file_digest
from audioretrieval.model.checkpoint import load_model, read_checkpoint
from audioretrieval.model.released_checkpoint import (
    PASST_ARCH,
    ROBERTA_LARGE,
    ReleasedCheckpointError,
    convert_released_checkpoint,
    join_parts,
    key_rules,
    main,
    project_shapes,
    read_released_checkpoint,
    text_hf_config,
)
from audioretrieval.report.summary import summary_table

passt_module.first_RUN = False
SR = 32000
SMALL_PASST = {"embed_dim": 32, "depth": 1, "num_heads": 2}
TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
WINDOW_S, SEGMENT_S, MAX_TOKENS = 1.0, 2.0, 16


# --- the reference code's modules, named as there (their attribute names make the state_dict keys) ---


class Wrapper(nn.Module):  # models/audio/passt.py, get_passt's Wrapper
    def __init__(self, model):
        super().__init__()
        self.model = model


class WindowedPrediction(nn.Module):  # models/audio/base.py
    def __init__(self, model, segment_length, hop_size, sr=SR):
        super().__init__()
        self.model, self.segment_length, self.hop_size, self.sr = model, segment_length, hop_size, sr


class PositionalEncoding(nn.Module):  # experiments/ex_dcase24.py, posencode_init='sinosoidal_fixed'
    def __init__(self, d_model, max_len):
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.w = nn.Parameter(torch.ones(1))
        self.pe = nn.Parameter(torch.randn(1, max_len, d_model), requires_grad=False)


def reference_projection(sizes):
    """The reference code's project_audio / project_sentence: Linear, ReLU, ..., the last ReLU popped."""
    layers = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(size_in, size_out), nn.ReLU()]
    layers.pop()
    return nn.Sequential(*layers)


class AudioRetrievalModel(nn.Module):  # experiments/ex_dcase24.py, the modules its __init__ builds
    def __init__(self, hp, text_config):
        super().__init__()
        audio, sentence, sequence = (
            hp["audio_features"],
            hp["sentence_features"],
            hp["audio_features"]["sequence_model"],
        )
        frames = (int(audio["segment_length"] * SR) - 1) // 320 + 1
        passt = PaSST(
            img_size=(128, frames),
            patch_size=16,
            stride=16,
            in_chans=1,
            num_classes=527,
            distilled=True,
            s_patchout_t=audio["model_config"]["s_patchout_t"],
            s_patchout_f=audio["model_config"]["s_patchout_f"],
            **SMALL_PASST,
        )
        passt.mel = AugmentMelSTFT(
            n_mels=128,
            sr=SR,
            win_length=800,
            hopsize=320,
            n_fft=1024,
            freqm=audio["model_config"].get("freqm", 48),  # get_passt's defaults
            timem=audio["model_config"].get("timem", 192),
            htk=False,
            fmin=0.0,
            fmax=None,
            norm=1,
            fmin_aug_range=10,
            fmax_aug_range=2000,
        )
        self.audio_embedding_model = WindowedPrediction(Wrapper(passt), audio["segment_length"], audio["hop_length"])
        self.sentence_embedding_model = RobertaModel(text_config, add_pooling_layer=False)
        width = SMALL_PASST["embed_dim"]
        self.project_audio = reference_projection([width, hp["shared_representation_size"]])
        self.project_sentence = reference_projection(
            [text_config.hidden_size]
            + [sentence["adopt_layer_size"]] * sentence["adopt_n_layers"]
            + [hp["shared_representation_size"]]
        )
        self.tau = nn.Parameter(torch.zeros(1) + hp["initial_tau"], requires_grad=False)
        self.audio_output_projection = nn.Identity() if width == sequence["dim"] else nn.Linear(width, sequence["dim"])
        self.posencode = PositionalEncoding(sequence["dim"], sequence["posencode_length"])
        self.audio_sequence = nn.ModuleList([])
        self.audio_token = nn.Parameter(torch.randn(1, 1, sequence["dim"]) * 0.04)
        self.timing_tau = nn.Parameter(torch.zeros(1) + hp["initial_tau"], requires_grad=False)


def reference_hyper_parameters(adopt_n_layers=0) -> dict:
    """The reference code's default_config with the README's overrides, at the demo's small window."""
    return {
        "audio_features": {
            "model": "passt",
            "model_config": {
                "freq_scale": 1.0,
                "s_patchout_t": 15,
                "s_patchout_f": 2,
                "freqm": 0,
                "timem": 0,
                "return_sequence": False,
            },
            "use_local_model": False,
            "frozen": False,
            "adopt_n_layers": 0,
            "adopt_layer_size": 2048,
            "segment_length": WINDOW_S,
            "hop_length": WINDOW_S,
            "aggregate": "mean",
            "sequence_model": {
                "num_layers": 0,
                "dim": 48,
                "nhead": 12,
                "dim_feedforward": 2048,
                "use_first_token": True,
                "norm_first": True,
                "dropout": 0.1,
                "posencode_init": "sinosoidal_fixed",
                "posencode_project": False,
                "posencode_length": 24,
                "posencode_weight": 1.0,
                "ablate_posencode": False,
                "normalize_input": False,
                "audio_token_dropout": 0.0,
                "reduce_sequence": False,
            },
        },
        "sentence_features": {
            "model": "roberta-large",
            "frozen": False,
            "adopt_n_layers": adopt_n_layers,
            "adopt_layer_size": 24,
            "use_first_token": True,
            "aggregate": "mean",
            "max_sentence_tokens": MAX_TOKENS,
            "remove_punctuation": True,
        },
        "initial_tau": 0.05,
        "freeze_tau": True,
        "shared_representation_size": 16,
        "normalize": True,
        "projection_dropout": 0.0,
        "train_on": "all",
        "distill_from": ["mild-mountain-1"],
        "average_models": [],
        "data_loader": {"batch_size": 64, "batch_size_eval": 32},
        "seed": 523528930,
    }


# --- a Lightning 2.x checkpoint, with the hyper-parameters pickled as sacred's read-only containers --


def fake_sacred(mp: pytest.MonkeyPatch):
    """Classes pickled under sacred's names, as sacred 0.8 pickles them (ReadOnlyContainer.__reduce__)."""
    module = types.ModuleType("sacred.config.custom_containers")

    class ReadOnlyDict(dict):
        def __reduce__(self):
            return self.__class__, ({**self},)

    class ReadOnlyList(list):
        def __reduce__(self):
            return self.__class__, ([*self],)

    for cls in (ReadOnlyDict, ReadOnlyList):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
        setattr(module, cls.__name__, cls)
    for name in ("sacred", "sacred.config"):
        mp.setitem(sys.modules, name, types.ModuleType(name))
    mp.setitem(sys.modules, module.__name__, module)
    return module


def read_only(value, sacred):
    """sacred's make_read_only: every dict and list nested in the configuration."""
    if isinstance(value, dict):
        return sacred.ReadOnlyDict({k: read_only(v, sacred) for k, v in value.items()})
    if isinstance(value, list):
        return sacred.ReadOnlyList([read_only(v, sacred) for v in value])
    return value


def lightning_checkpoint(model: nn.Module, hp: dict, sacred) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    score = torch.tensor(0.4011)
    return {
        "epoch": 13,
        "global_step": 4242,
        "pytorch-lightning_version": "2.2.2",
        "state_dict": model.state_dict(),
        "loops": {
            "fit_loop": {
                "state_dict": {},
                "epoch_loop.state_dict": {"_batches_that_stepped": 4242},
                "epoch_progress": {"total": {"ready": 14, "completed": 13}},
            }
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/mAP@10', 'mode': 'max', 'every_n_train_steps': 0, "
            "'every_n_epochs': 1, 'train_time_interval': None}": {
                "monitor": "val/mAP@10",
                "best_model_score": score,
                "best_model_path": "/m/epoch_13-0.40.ckpt",
                "current_score": score,
                "dirpath": "/m",
                "best_k_models": {"/m/epoch_13-0.40.ckpt": score},
                "kth_best_model_path": "/m/epoch_13-0.40.ckpt",
                "kth_value": score,
                "last_model_path": "/m/last.ckpt",
            }
        },
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "MixedPrecision": {
            "scale": 65536.0,
            "growth_factor": 2.0,
            "backoff_factor": 0.5,
            "growth_interval": 2000,
            "_growth_tracker": 3,
        },
        "hparams_name": None,
        "hyper_parameters": {k: read_only(v, sacred) for k, v in hp.items()},
    }


def write_released_checkpoint(path, model, hp) -> None:
    with pytest.MonkeyPatch.context() as mp:
        torch.save(lightning_checkpoint(model, hp, fake_sacred(mp)), path)
    assert "sacred" not in sys.modules  # reading must not need it


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory, tiny_tokenizer):
    """A local text model directory (the --text-model DIR case): the tiny tokenizer and a small RoBERTa config."""
    directory = tmp_path_factory.mktemp("text_model")
    for file in tiny_tokenizer.iterdir():
        shutil.copy(file, directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_TOKENS + 18,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT,
    ).save_pretrained(directory)
    return directory


def reference_model(hp, text_dir) -> AudioRetrievalModel:
    torch.manual_seed(0)
    model = AudioRetrievalModel(hp, RobertaConfig.from_pretrained(text_dir))
    with torch.no_grad():  # every tensor distinct, so that a swapped mapping shows
        for name, parameter in model.named_parameters():
            if name not in ("tau", "timing_tau"):
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.fixture
def released(tmp_path, text_dir):
    """(the reference code's model, its hyper-parameters, its checkpoint file)."""
    hp = reference_hyper_parameters()
    model = reference_model(hp, text_dir)
    path = tmp_path / "passt_roberta.ckpt"
    write_released_checkpoint(path, model, hp)
    return model, hp, path


def convert(released_path, out_path, text_dir):
    return convert_released_checkpoint(released_path, out_path, str(text_dir), SEGMENT_S, SMALL_PASST)


# --- the reference code's computation, transcribed ------------------------------------------------------------


def reference_audio_embeddings(model, waveform, fraction):
    """forward_audio: windows (split_audio), PaSST's (cls + dist) / 2 per window (Wrapper: forward()[-2]),
    windows masked as the reference code masks them (the first ceil(fraction * windows)), mean, project_audio, L2."""
    window = int(model.audio_embedding_model.segment_length * SR)
    windows = waveform.unfold(1, window, int(model.audio_embedding_model.hop_size * SR)).reshape(-1, window)
    passt = model.audio_embedding_model.model.model
    cls_token, dist_token = passt.forward_features(passt.mel(windows)[:, None])
    features = ((cls_token + dist_token) / 2).reshape(len(waveform), -1, cls_token.shape[-1])
    mask = torch.zeros(features.shape[:2])
    for i, f in enumerate(fraction):
        mask[i, : math.ceil(f.item() * features.shape[1])] = 1
    pooled = (features * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
    return nn.functional.normalize(model.project_audio(pooled), dim=-1)


def reference_text_embeddings(model, tokenizer, captions, max_tokens):
    """forward_sentence: lower-cased, punctuation deleted, padded to max_length; first token; project_sentence; L2."""
    texts = [c.lower().translate(str.maketrans("", "", string.punctuation)) for c in captions]
    tokens = tokenizer(
        texts,
        add_special_tokens=True,
        padding="max_length",
        return_tensors="pt",
        max_length=max_tokens,
        truncation=True,
    )
    states = model.sentence_embedding_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])[0]
    return nn.functional.normalize(model.project_sentence(states[:, 0]), dim=-1)


CAPTIONS = ["A dog's bark, LOUD & clear!", "Rain falls; thunder rumbles in the distance...", "high tone"]


def assert_embeds_as_the_reference(converted_path, model, text_dir) -> dict:
    """The converted checkpoint's model embeds audio and text as the reference code's modules do; its contents."""
    converted, checkpoint = load_model(converted_path)
    converted.eval()
    torch.manual_seed(1)
    waveform, fraction = torch.randn(2, int(SEGMENT_S * SR)) * 0.1, torch.tensor([1.0, 0.4])
    with torch.no_grad():
        torch.testing.assert_close(
            converted.embed_audio(waveform, fraction),
            reference_audio_embeddings(model, waveform, fraction),
            rtol=1e-4,
            atol=1e-5,
        )
        expected = reference_text_embeddings(model, AutoTokenizer.from_pretrained(text_dir), CAPTIONS, MAX_TOKENS)
        torch.testing.assert_close(converted.embed_text(CAPTIONS), expected, rtol=1e-4, atol=1e-5)
    return checkpoint


@pytest.mark.parametrize("adopt_n_layers", [0, 1])
def test_the_converted_checkpoint_embeds_as_the_reference_modules_do(tmp_path, text_dir, adopt_n_layers):
    hp = reference_hyper_parameters(adopt_n_layers)
    model = reference_model(hp, text_dir)
    write_released_checkpoint(tmp_path / "passt_roberta.ckpt", model, hp)
    convert(tmp_path / "passt_roberta.ckpt", tmp_path / "best.pt", text_dir)
    checkpoint = assert_embeds_as_the_reference(tmp_path / "best.pt", model, text_dir)

    config = checkpoint["model_config"]
    assert config["audio"] == {
        "arch": PASST_ARCH,
        "pretrained": True,
        "weights": None,
        **SMALL_PASST,
        "window_s": 1.0,
        "hop_s": 1.0,
        "patchout_t": 15,
        "patchout_f": 2,
        "fused_attention": True,
    }
    assert config["text"] == {
        "name": str(text_dir),
        "tokenizer": None,
        "freeze": False,
        "dropout": 0.2,
        "max_tokens": MAX_TOKENS,
        "pooling": "first",
        "head_layers": 1 + adopt_n_layers,
        "head_hidden": 24 if adopt_n_layers else None,
    }
    assert (config["embed_dim"], config["tau"], checkpoint["segment_s"]) == (16, 0.05, SEGMENT_S)
    assert (checkpoint["epoch"], checkpoint["seed"], checkpoint["metrics"]) == (13, 523528930, {})
    assert checkpoint["source"] == {
        "released_checkpoint": "passt_roberta.ckpt",
        "md5": file_digest(tmp_path / "passt_roberta.ckpt", "md5"),
        "global_step": 4242,
        "pytorch-lightning_version": "2.2.2",
        "training_only": {
            "audio_features.model_config.freqm": 0,
            "audio_features.model_config.timem": 0,
            "audio_features.frozen": False,
            "initial_tau": 0.05,
            "freeze_tau": True,
        },
    }
    assert read_checkpoint(tmp_path / "best.pt")["format_version"] == 1


def test_settings_that_act_only_in_training_convert_exactly_and_are_recorded(tmp_path, text_dir):
    # SpecAugment masking (get_passt's defaults: absent from model_config), a frozen audio encoder, a trained tau
    hp = reference_hyper_parameters()
    del hp["audio_features"]["model_config"]["freqm"], hp["audio_features"]["model_config"]["timem"]
    hp["audio_features"]["frozen"] = True
    hp["freeze_tau"] = False
    model = reference_model(hp, text_dir)
    assert type(model.audio_embedding_model.model.model.mel.freqm).__name__ == "FrequencyMasking"  # masks in training
    with torch.no_grad():
        model.tau.fill_(-0.07)  # trained: the reference code divides its similarities by |tau|
    write_released_checkpoint(tmp_path / "passt_roberta.ckpt", model, hp)
    convert(tmp_path / "passt_roberta.ckpt", tmp_path / "best.pt", text_dir)

    checkpoint = assert_embeds_as_the_reference(tmp_path / "best.pt", model, text_dir)
    assert checkpoint["model_config"]["tau"] == pytest.approx(0.07)
    assert checkpoint["source"]["training_only"] == {
        "audio_features.model_config.freqm": 48,
        "audio_features.model_config.timem": 192,
        "audio_features.frozen": True,
        "initial_tau": 0.05,
        "freeze_tau": False,
    }


def test_every_reference_key_is_mapped_or_dropped_by_a_named_rule(released):
    model, hp, _ = released
    rules = key_rules()
    rule_of = {key: next(r for r in rules if re.fullmatch(r.pattern, key)) for key in model.state_dict()}
    dropped = sorted(key for key, rule in rule_of.items() if rule.target is None)
    assert dropped == sorted(
        [
            "audio_embedding_model.model.model.head.0.weight",
            "audio_embedding_model.model.model.head.0.bias",
            "audio_embedding_model.model.model.head.1.weight",
            "audio_embedding_model.model.model.head.1.bias",
            "audio_embedding_model.model.model.head_dist.weight",
            "audio_embedding_model.model.model.head_dist.bias",
            "tau",
            "timing_tau",
            "audio_token",
            "posencode.w",
            "posencode.pe",
            "audio_output_projection.weight",
            "audio_output_projection.bias",
        ]
    )


def edited_checkpoint(path, edit):
    """A copy of the reference-layout file at `path` with its state_dict edited by `edit`."""
    checkpoint = read_released_checkpoint(path)
    state = {k: v.clone() for k, v in checkpoint["state_dict"].items()}
    edit(state)
    edited = path.with_name("edited.ckpt")
    torch.save({**checkpoint, "state_dict": state}, edited)
    return edited


PASST_KEY = "audio_embedding_model.model.model."


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.update(
                {PASST_KEY + "pre_logits.fc.weight": torch.zeros(2, 2), "metadata_embedding_model.w": torch.zeros(1)}
            ),
            r"2 key\(s\) of the reference code's state_dict that the mapping does not know: "
            r"audio_embedding_model\.model\.model\.pre_logits\.fc\.weight, metadata_embedding_model\.w",
        ),
        (
            lambda s: s.pop("project_audio.0.weight"),
            r"1 tensor\(s\) the model needs are missing: audio\.projection\.weight",
        ),
        (
            lambda s: s.update({"sentence_embedding_model.encoder.layer.0.output.dense.weight": torch.zeros(32, 65)}),
            r"sentence_embedding_model\.encoder\.layer\.0\.output\.dense\.weight -> "
            r"text\.encoder\.encoder\.layer\.0\.output\.dense\.weight: "
            r"\(32, 65\) in the checkpoint, \(32, 64\) in the model",
        ),
        (
            lambda s: s.update(
                {"project_sentence.2.weight": torch.zeros(16, 24)}
            ),  # a second head layer: adopt_n_layers says 0
            r"1 key\(s\) of the reference code's state_dict that the mapping does not know: "
            r"project_sentence\.2\.weight",
        ),
        (
            lambda s: s.update(
                {PASST_KEY + "blocks.1.norm1.weight": torch.zeros(32)}
            ),  # a deeper PaSST than the one rebuilt
            r"1 tensor\(s\) the model does not have: "
            r"audio_embedding_model\.model\.model\.blocks\.1\.norm1\.weight -> audio\.passt\.blocks\.1\.norm1\.weight",
        ),
        (
            lambda s: s.update({"tau": torch.tensor([float("nan")])}),
            r"parameter tau is nan: the model divides its similarities by \|tau\|, which must be a positive number",
        ),
    ],
)
def test_unknown_missing_and_misshaped_keys_fail_naming_them(tmp_path, released, text_dir, edit, message):
    path = edited_checkpoint(released[2], edit)
    with pytest.raises(ReleasedCheckpointError, match=message):
        convert(path, tmp_path / "best.pt", text_dir)
    assert not (tmp_path / "best.pt").exists()


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        (
            "audio_features.sequence_model",
            "num_layers",
            2,
            "hyper-parameter audio_features.sequence_model.num_layers is 2, expected 0: "
            "this project has no transformer over the windows",
        ),
        (
            "audio_features",
            "model",
            "passt_l",
            "hyper-parameter audio_features.model is 'passt_l' "
            "(the reference code builds passt_l_kd_p16_128_ap47 for it)",
        ),
        (
            "audio_features",
            "model",
            "atst",
            "hyper-parameter audio_features.model is 'atst' (the reference code builds no PaSST for it)",
        ),
        ("audio_features", "adopt_n_layers", 1, "hyper-parameter audio_features.adopt_n_layers is 1, expected 0"),
        (
            "sentence_features",
            "use_first_token",
            False,
            "hyper-parameter sentence_features.use_first_token is False, expected True",
        ),
        (
            "audio_features",
            "aggregate",
            "max",
            "hyper-parameter audio_features.aggregate is 'max', expected 'mean': this project averages the windows'",
        ),
        (
            "audio_features.model_config",
            "return_sequence",
            True,
            "hyper-parameter audio_features.model_config.return_sequence is True, expected False",
        ),
        (
            "sentence_features",
            "max_sentence_tokens",
            None,
            "hyper-parameter sentence_features.max_sentence_tokens is missing from the checkpoint's hyper_parameters",
        ),
    ],
)
def test_an_unsupported_hyper_parameter_fails_naming_it(tmp_path, text_dir, section, key, value, message):
    hp = reference_hyper_parameters()
    model = reference_model(hp, text_dir)
    edited = copy.deepcopy(hp)
    target = edited
    for part in section.split("."):
        target = target[part]
    if value is None:  # absent: missing (a model_config key would take get_passt's default)
        del target[key]
    else:
        target[key] = value
    write_released_checkpoint(tmp_path / "released.ckpt", model, edited)
    with pytest.raises(ReleasedCheckpointError, match=re.escape(message)):
        convert(tmp_path / "released.ckpt", tmp_path / "best.pt", text_dir)


def test_only_sacreds_read_only_containers_are_allowed_when_unpickling(tmp_path, released, text_dir):
    _, hp, _ = released
    torch.save(
        {"state_dict": {}, "hyper_parameters": hp, "callbacks": {"x": types.SimpleNamespace(a=1)}},
        tmp_path / "odd.ckpt",
    )
    with pytest.raises(
        ReleasedCheckpointError, match=r"odd\.ckpt: holds types\.SimpleNamespace, which is not allowed when unpickling"
    ):
        convert(tmp_path / "odd.ckpt", tmp_path / "best.pt", text_dir)
    (tmp_path / "cut.ckpt").write_bytes(released[2].read_bytes()[:100_000])
    with pytest.raises(ReleasedCheckpointError, match=r"cut\.ckpt: not a readable torch checkpoint .* every part"):
        convert(tmp_path / "cut.ckpt", tmp_path / "best.pt", text_dir)


def test_roberta_large_is_rebuilt_offline_and_its_shapes_are_checked():
    config = text_hf_config("roberta-large")
    assert {k: config[k] for k in ROBERTA_LARGE} == ROBERTA_LARGE
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.2
    model_config = {
        "embed_dim": 1024,
        "text": {"head_layers": 1, "head_hidden": None},
        "audio": {
            "arch": PASST_ARCH,
            "pretrained": False,
            "weights": None,
            **SMALL_PASST,
            "window_s": 1.0,
            "hop_s": 1.0,
            "patchout_t": 15,
            "patchout_f": 2,
        },
    }
    shapes = project_shapes(model_config, SEGMENT_S, config)
    assert shapes["text.encoder.embeddings.word_embeddings.weight"] == (50265, 1024)
    assert shapes["text.encoder.embeddings.position_embeddings.weight"] == (514, 1024)
    assert shapes["text.encoder.encoder.layer.23.intermediate.dense.weight"] == (4096, 1024)
    assert "text.encoder.encoder.layer.24.output.dense.weight" not in shapes
    assert shapes["text.projection.weight"] == (1024, 1024)


def test_the_parts_join_in_order_and_a_missing_part_fails_naming_it(tmp_path):
    parts = [tmp_path / f"passt_roberta.{n}.ckpt" for n in range(1, 6)]
    for n, part in enumerate(parts, 1):
        part.write_bytes(bytes([n]) * (1000 + n))
    main(["join", *map(str, parts), str(tmp_path / "passt_roberta.ckpt")])
    assert (tmp_path / "passt_roberta.ckpt").read_bytes() == b"".join(p.read_bytes() for p in parts)
    parts[3].unlink()
    with pytest.raises(FileNotFoundError, match=r"missing part\(s\) \['.*passt_roberta\.4\.ckpt'\]"):
        join_parts(parts, tmp_path / "other.ckpt")
    assert not (tmp_path / "other.ckpt").exists()


@pytest.mark.slow
def test_the_command_line_converts(tmp_path, released, text_dir):
    # The CLI has no option for PaSST sizes (the release is PaSST-S): a small PaSST must fail on its shapes.
    result = forked.run(
        [
            "-m",
            "audioretrieval.model.released_checkpoint",
            "convert",
            str(released[2]),
            str(tmp_path / "best.pt"),
            "--text-model",
            str(text_dir),
            "--segment-s",
            str(SEGMENT_S),
        ],
    )
    assert result.returncode != 0
    assert "error: the reference code's state_dict does not fit" in result.stderr
    assert f"text encoder config from {text_dir}" in result.stderr
    assert "132 tensor(s) the model needs are missing: audio.passt.blocks.1." in result.stderr  # depth 1, not 12
    assert (
        "audio_embedding_model.model.model.blocks.0.norm1.weight -> audio.passt.blocks.0.norm1.weight: "
        "(32,) in the checkpoint, (768,) in the model" in result.stderr
    )
    assert not (tmp_path / "best.pt").exists()


# --- the workflow -----------------------------------------------------------------------------------


def paper_config(tmp_path) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["out_dir"] = str(tmp_path / "results")
    config["data"]["raw_dir"] = str(tmp_path / "raw")
    config["released"]["raw_dir"] = str(tmp_path / "released")
    return config


def write_config(tmp_path, config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def planned(result, rule):
    return (result.stdout + result.stderr).count(f"rule {rule}:")


@pytest.mark.snakemake
def test_the_paper_config_plans_download_join_conversion_and_evaluation(tmp_path):
    config = paper_config(tmp_path)
    result = run_snakemake("-n", "--cores", 1, "--configfile", write_config(tmp_path, config), cwd=tmp_path)
    counts = {rule: planned(result, rule) for rule in ("download_released_part", "join_released", "convert_released")}
    assert counts == {"download_released_part": 5, "join_released": 1, "convert_released": 1}
    for part in range(1, 6):
        assert f"released/passt_roberta.{part}.ckpt" in result.stdout
    assert f"{tmp_path}/results/released/passt_roberta/evaluation/best/metrics.json" in result.stdout
    assert "released/passt_roberta/evaluation/last" not in result.stdout
    summary = result.stdout.split("rule summary:")[1].split("\n\n")[0]
    assert "released/passt_roberta/evaluation/best/metrics.json" in summary
    del config["released"], config["dcase2025_baseline"]
    without = run_snakemake("-n", "--cores", 1, "--configfile", write_config(tmp_path, config), cwd=tmp_path)
    assert "released" not in without.stdout + without.stderr


@pytest.mark.snakemake
def test_the_parts_are_downloaded_from_the_configured_urls_and_joined(tmp_path):
    parts = {f"s/share{n}/download/passt_roberta.{n}.ckpt": bytes([n]) * 70_000 for n in range(1, 6)}
    config = paper_config(tmp_path)
    config["released"].update(retries=1, backoff_s=0.0)
    with FileServer(parts) as server:
        server.fail_first["s/share3/download/passt_roberta.3.ckpt"] = 1  # retried
        config["released"]["urls"] = [f"{server.url}/{name}" for name in parts]
        joined = tmp_path / "released" / "passt_roberta.ckpt"
        run_snakemake(joined, "--cores", 2, "--configfile", write_config(tmp_path, config), cwd=tmp_path)
    assert joined.read_bytes() == b"".join(parts.values())
    assert not list(
        (tmp_path / "released").glob("passt_roberta.?.ckpt")
    )  # temporary, as in the reference code's script
    for n, url in enumerate(config["released"]["urls"], 1):
        log = (tmp_path / "results" / "logs" / "download_released_part" / f"{n}.log").read_text()
        assert f"downloaded {url}" in log and "no MD5 to verify against" in log


@pytest.mark.snakemake
def test_the_conversion_rule_reads_a_copy_put_into_raw_dir_and_fails_naming_what_does_not_fit(
    tmp_path, released, text_dir
):
    # The rule converts at PaSST-S's size (the release's); the small file here must fail on its shapes,
    # which shows the rule's wiring (input, text model, segment length) down to the library's message.
    config = paper_config(tmp_path)
    config["released"]["text_model"] = str(text_dir)
    (tmp_path / "released").mkdir()
    shutil.copy(released[2], tmp_path / "released" / "passt_roberta.ckpt")  # a copy you have: nothing is downloaded
    target = tmp_path / "results" / "released" / "passt_roberta" / "best.pt"
    result = run_snakemake(
        target, "--cores", 1, "--configfile", write_config(tmp_path, config), cwd=tmp_path, check=False
    )
    assert result.returncode != 0
    assert planned(result, "download_released_part") == planned(result, "join_released") == 0
    log = (tmp_path / "results" / "logs" / "convert_released.log").read_text()
    assert (
        f"the reference code's state_dict does not fit the model rebuilt from its hyper_parameters "
        f"(text encoder config from {text_dir})" in log
    )
    assert not target.exists()


def test_the_summary_shows_the_released_checkpoint_beside_the_papers_row():
    metrics = {"map@10": 0.4011, "r@1": 0.2769, "r@5": 0.5705, "r@10": 0.7050}
    reference = [
        {
            "model": "paper: released checkpoint",
            "map@10": 40.11,
            "r@1": 27.69,
            "r@5": 57.05,
            "r@10": 70.50,
            "compare_with": "released passt_roberta",
        }
    ]
    table = summary_table(
        {"stage1": {"seed1": metrics}, "released": {"passt_roberta": metrics}},
        {"stage1": {"seed1": metrics}},
        None,
        reference,
    )
    assert table["model"].tolist() == ["seed1", "seed1", "released passt_roberta", "paper: released checkpoint"]
    released = table.iloc[2]
    assert (released["kind"], released["weights"]) == ("released", "best")
    assert released["mAP@10"] == pytest.approx(40.11) and released["R@10"] == pytest.approx(70.50)


@pytest.mark.snakemake
def test_a_resumed_part_whose_reply_lies_fails_its_job_in_one_line_and_leaves_no_part(tmp_path):
    # no checksums are published for the parts: the resumed reply's own Content-Range is all there is to check
    data = bytes(range(256)) * 1200
    parts = {f"s/share{n}/download/passt_roberta.{n}.ckpt": data for n in range(1, 6)}
    config = paper_config(tmp_path)
    config["released"].update(retries=0, backoff_s=0.0)
    (tmp_path / "released").mkdir()
    (tmp_path / "released" / "passt_roberta.1.ckpt.part").write_bytes(data[:131_072])  # left by a killed run
    with FileServer(parts, whole_body_on_ranges=True) as server:
        config["released"]["urls"] = [f"{server.url}/{name}" for name in parts]
        result = run_snakemake(
            tmp_path / "released" / "passt_roberta.1.ckpt",
            "--cores",
            1,
            "--configfile",
            write_config(tmp_path, config),
            cwd=tmp_path,
            check=False,
        )
    assert result.returncode != 0
    sentence = (
        f"TransientDownloadError: {config['released']['urls'][0]}: the server's resumed reply announces bytes "
        f"131072-307199 (Content-Range 'bytes 131072-307199/307200') but a body of 307200 bytes (Content-Length); "
        f"the partial file was removed, so the next try starts afresh"
    )
    assert f"failed: {sentence}" in (tmp_path / "results" / "logs" / "download_released_part" / "1.log").read_text()
    assert f"error: {sentence} (log: " in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "released").exists()  # nor the part a rerun would resume
