"""Import the authors' released checkpoint: a Lightning checkpoint of the reference code's AudioRetrievalModel
(OptimusPrimus/salsa, experiments/ex_dcase24.py) converted into this project's checkpoint format
(audioretrieval.model.checkpoint), so that `load_model` rebuilds it and the evaluation scores it.

    python -m audioretrieval.model.released_checkpoint join passt_roberta.{1..5}.ckpt passt_roberta.ckpt
    python -m audioretrieval.model.released_checkpoint convert passt_roberta.ckpt best.pt [--text-model DIR]

The release is one file cut into five parts (scripts/download_checkpoint.sh: passt_roberta.1.ckpt ...
.5.ckpt from the JKU cloud, joined with `cat`); no checksums of the parts or of the whole are published.

Reading. The file is read with torch.load(weights_only=True): tensors and plain containers only, no
arbitrary unpickling. A Lightning 2.x checkpoint holds state_dict, hyper_parameters, epoch,
global_step, pytorch-lightning_version, optimizer_states, lr_schedulers, loops, callbacks (the
ModelCheckpoint state: strings and tensors) and the mixed-precision scaler state: all plain. The one
exception is hyper_parameters: the reference code passes its sacred configuration to save_hyperparameters, so
the nested sections are sacred's read-only containers, pickled as calls of
`sacred.config.custom_containers.ReadOnlyDict` / `ReadOnlyList` on a plain dict / list. Exactly
these two names are allowed (torch.serialization.safe_globals), bound to functions of this module
that return the plain dict / list: sacred is neither needed nor imported. Anything else fails,
naming the global.

The model is rebuilt from hyper_parameters (see model_config_from): a setting that changes what the model
computes at inference and that this project cannot rebuild is refused, naming it (UNSUPPORTED); settings that
act only in training are recorded in the result's source.training_only (TRAINING_ONLY); the temperature is
the parameter tau the model used, trained or not (inference_tau). The state_dict
is mapped key by key with key_rules (every key of the reference code's model is either mapped or dropped
for a stated reason; any other key, a key the project's model needs that nothing provides, or a
tensor of another shape fails, naming the keys and shapes).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, RobertaConfig

from audioretrieval.files import file_digest, save_torch_atomically, written_atomically
from audioretrieval.model.audio import audio_encoder
from audioretrieval.model.checkpoint import FORMAT_VERSION, fit_problems, listed, refused_global
from audioretrieval.model.text import projection_head
from audioretrieval.resources import resolve_name


class ReleasedCheckpointError(ValueError):
    """The released checkpoint cannot be read or rebuilt by this project; the message says which key or value."""


# ---------------------------------------------------------------------------------------------------
# Reading the Lightning file


def _sacred_read_only_dict(items) -> dict:
    """Stands in for sacred.config.custom_containers.ReadOnlyDict, pickled as ReadOnlyDict(plain dict)."""
    return dict(items)


def _sacred_read_only_list(items) -> list:
    """Stands in for sacred.config.custom_containers.ReadOnlyList, pickled as ReadOnlyList(plain list)."""
    return list(items)


ALLOWED_GLOBALS = [
    (_sacred_read_only_dict, "sacred.config.custom_containers.ReadOnlyDict"),
    (_sacred_read_only_list, "sacred.config.custom_containers.ReadOnlyList"),
]


def read_released_checkpoint(path: str | os.PathLike) -> dict:
    """The Lightning checkpoint as a dict (tensors memory-mapped from the file), read with
    weights_only=True and only ALLOWED_GLOBALS besides tensors and plain containers."""
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise ReleasedCheckpointError(
            f"{path}: holds {refused_global(exc)}, which is not allowed when unpickling without arbitrary code "
            f"(allowed besides tensors and plain containers: {[name for _, name in ALLOWED_GLOBALS]})"
        ) from None  # torch's message advises weights_only=False, which would run the code
    except (RuntimeError, OSError) as exc:
        raise ReleasedCheckpointError(
            f"{path}: not a readable torch checkpoint ({exc}). A file joined from parts must hold every part, "
            f"complete and in order (passt_roberta.1.ckpt ... .5.ckpt)."
        ) from exc
    missing = [
        key for key in ("state_dict", "hyper_parameters") if not isinstance(checkpoint, dict) or key not in checkpoint
    ]
    if missing:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ReleasedCheckpointError(f"{path}: not a Lightning checkpoint: no {missing} (found {found})")
    return checkpoint


# ---------------------------------------------------------------------------------------------------
# Hyper-parameters -> model_config

PASST_ARCH = "passt_s_p16_s16_128_ap468"
# The sizes of PaSST-S (hear21passt's passt_s_p16_s16_128_ap468): the reference code's get_passt always builds it.
PASST_S = {"embed_dim": 768, "depth": 12, "num_heads": 12}
# models/audio/passt.py: get_passt names other PaSSTs; every other name starting with "passt" is PASST_ARCH.
OTHER_PASSTS = {"passt_s": "passt_s_kd_p16_128_ap486", "passt_20": "passt_20sec", "passt_l": "passt_l_kd_p16_128_ap47"}
# get_passt's defaults for keys absent from audio_features.model_config.
PASST_DEFAULTS = {"s_patchout_t": 0, "s_patchout_f": 0, "freqm": 48, "timem": 192, "return_sequence": False}
# models/text/sentence_embedding_models.py:
# from_pretrained(..., hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
REFERENCE_TEXT_DROPOUT = 0.2
# roberta-large's config.json (the Hugging Face hub), so that no download is needed.
ROBERTA_LARGE = dict(
    vocab_size=50265,
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    max_position_embeddings=514,
    type_vocab_size=1,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    layer_norm_eps=1e-5,
    hidden_act="gelu",
    initializer_range=0.02,
)
# The reference code's ClothoV2 clips are padded or cut to 30 s (ex_dcase24.get_data_set: set_fixed_length(30)).
REFERENCE_SEGMENT_S = 30.0

# Settings this project cannot rebuild, each of which changes what the model computes at inference:
# (hyper-parameter, the only value accepted, why).
UNSUPPORTED = [
    ("audio_features.use_local_model", False, "the reference code itself asserts it is off"),
    ("audio_features.sequence_model.num_layers", 0, "this project has no transformer over the windows"),
    ("audio_features.adopt_n_layers", 0, "this project's audio head is one Linear layer"),
    ("audio_features.aggregate", "mean", "this project averages the windows' embeddings"),
    ("audio_features.model_config.return_sequence", False, "this project uses PaSST's token outputs, not its sequence"),
    (
        "sentence_features.use_first_token",
        True,
        "the imported model is built with the first token's state (pooling: first)",
    ),
    ("sentence_features.remove_punctuation", True, "this project always lower-cases and deletes punctuation"),
    ("normalize", True, "this project always compares L2-normalised embeddings"),
    (
        "projection_dropout",
        0.0,
        "the reference code drops features before the projections at inference too (functional dropout); "
        "this project never",
    ),
]

# Settings that act only in training (the converted model computes the same either way): recorded in
# the converted checkpoint's source.training_only, as the file has them (a key it lacks is left out).
TRAINING_ONLY = [
    "audio_features.model_config.freqm",  # SpecAugment masking: AugmentMelSTFT masks only in training mode
    "audio_features.model_config.timem",
    "audio_features.frozen",  # whether the audio encoder was trained
    "initial_tau",  # the temperature training started from; the model's is the parameter tau
    "freeze_tau",  # whether tau was trained
]


def hyper_parameter(hp: dict, dotted: str):
    """hyper_parameters[a][b]... for "a.b..."; keys of audio_features.model_config absent from the
    checkpoint take get_passt's defaults, as in the reference code."""
    value = hp
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif parts[:i] == ["audio_features", "model_config"] and part in PASST_DEFAULTS:
            return PASST_DEFAULTS[part]
        else:
            raise ReleasedCheckpointError(f"hyper-parameter {dotted} is missing from the checkpoint's hyper_parameters")
    return value


def check_supported(hp: dict) -> None:
    """Fail, naming the hyper-parameter and its value, on a setting this project cannot rebuild."""
    model = hyper_parameter(hp, "audio_features.model")
    if not str(model).startswith("passt") or model in OTHER_PASSTS:
        built = OTHER_PASSTS.get(model, "no PaSST")
        raise ReleasedCheckpointError(
            f"hyper-parameter audio_features.model is {model!r} (the reference code builds {built} for it): "
            f"this project rebuilds only {PASST_ARCH} (the reference code's name 'passt')"
        )
    for dotted, accepted, why in UNSUPPORTED:
        value = hyper_parameter(hp, dotted)
        if value != accepted:
            raise ReleasedCheckpointError(f"hyper-parameter {dotted} is {value!r}, expected {accepted!r}: {why}")
    text = hyper_parameter(hp, "sentence_features.model")
    if "clip" in str(text):
        raise ReleasedCheckpointError(
            f"hyper-parameter sentence_features.model is {text!r}: the reference code's CLIP text models "
            "have another layout and pooling; only encoders without pooler (RoBERTa, BERT) are imported"
        )


def training_only_settings(hp: dict) -> dict:
    """The TRAINING_ONLY settings the checkpoint's hyper_parameters hold (get_passt's defaults for
    masking it does not set)."""
    settings = {}
    for dotted in TRAINING_ONLY:
        try:
            settings[dotted] = hyper_parameter(hp, dotted)
        except ReleasedCheckpointError:  # absent: nothing to record
            pass
    return settings


def inference_tau(state_dict: dict, hp: dict) -> float:
    """The temperature the reference code's model divides its similarities by: |tau| of its state_dict, trained or
    not (exactly initial_tau where it still equals it in float32)."""
    if "tau" not in state_dict:
        raise ReleasedCheckpointError(
            "the reference code's state_dict has no 'tau' (the AudioRetrievalModel always has one)"
        )
    found = abs(float(state_dict["tau"].reshape(-1)[0]))
    if not (math.isfinite(found) and found > 0):
        raise ReleasedCheckpointError(
            f"parameter tau is {found:g}: the model divides its similarities by |tau|, which must be a positive number"
        )
    initial = hp.get("initial_tau")
    return float(initial) if isinstance(initial, float) and math.isclose(found, initial, rel_tol=1e-5) else found


def model_config_from(hp: dict, text_model: str, tau: float, passt_size: dict | None = None) -> dict:
    """This project's `model` section for the reference code's hyper_parameters (checked by check_supported) and
    its temperature (inference_tau). text_model becomes model.text.name: the tokenizer is loaded from it
    (a hub name or a local directory)."""
    check_supported(hp)
    adopt = int(hyper_parameter(hp, "sentence_features.adopt_n_layers"))
    return {
        "embed_dim": int(hyper_parameter(hp, "shared_representation_size")),
        "tau": tau,
        "audio": {
            "arch": PASST_ARCH,
            "pretrained": True,
            "weights": None,
            **(passt_size or PASST_S),
            "window_s": float(hyper_parameter(hp, "audio_features.segment_length")),
            "hop_s": float(hyper_parameter(hp, "audio_features.hop_length")),
            "patchout_t": int(hyper_parameter(hp, "audio_features.model_config.s_patchout_t")),
            "patchout_f": int(hyper_parameter(hp, "audio_features.model_config.s_patchout_f")),
            "fused_attention": True,  # the same attention, computed by the fused kernel
        },
        "text": {
            "name": text_model,
            "tokenizer": None,
            "freeze": bool(hyper_parameter(hp, "sentence_features.frozen")),
            "dropout": REFERENCE_TEXT_DROPOUT,
            "max_tokens": int(hyper_parameter(hp, "sentence_features.max_sentence_tokens")),
            "pooling": "first",
            "head_layers": 1 + adopt,
            "head_hidden": int(hyper_parameter(hp, "sentence_features.adopt_layer_size")) if adopt else None,
        },
    }


def text_hf_config(text_model: str) -> dict:
    """The text encoder's Hugging Face config with the reference code's dropout: roberta-large's sizes written
    out (no download), or read from `text_model` (a local directory, or another hub name)."""
    dropout = {"hidden_dropout_prob": REFERENCE_TEXT_DROPOUT, "attention_probs_dropout_prob": REFERENCE_TEXT_DROPOUT}
    if text_model == "roberta-large":
        return RobertaConfig(**ROBERTA_LARGE, **dropout).to_dict()
    try:
        return AutoConfig.from_pretrained(resolve_name(text_model), **dropout).to_dict()
    except OSError as exc:
        raise ReleasedCheckpointError(
            f"--text-model {text_model!r}: no Hugging Face config found there ({exc})"
        ) from exc


# ---------------------------------------------------------------------------------------------------
# The state_dict


@dataclass(frozen=True)
class KeyRule:
    """Reference keys matching `pattern` (a full match) become `target` (a re.expand template), or are
    dropped when target is None; `why` documents it."""

    pattern: str
    target: str | None
    why: str


_PASST = r"audio_embedding_model\.model\.model\."  # WindowedPrediction.model = Wrapper; Wrapper.model = PaSST


def key_rules(head_layers: int = 1) -> list[KeyRule]:
    """The reference -> project table (first matching rule wins). head_layers: the text head's Linear
    layers (1 + sentence_features.adopt_n_layers); the reference code's Sequential and this project's head share
    their indices when there are several."""
    text_head = (
        KeyRule(r"project_sentence\.0\.(weight|bias)", r"text.projection.\1", "text projection: one Linear")
        if head_layers == 1
        else KeyRule(
            r"project_sentence\.(\d+)\.(weight|bias)", r"text.projection.\1.\2", "text projection: Linear/ReLU stack"
        )
    )
    return [
        KeyRule(
            _PASST + r"((?:cls_token|dist_token|new_pos_embed|freq_new_pos_embed|time_new_pos_embed)"
            r"|(?:patch_embed|blocks|norm)\..+)",
            r"audio.passt.\1",
            "PaSST transformer",
        ),
        KeyRule(
            _PASST + r"head\.[01]\.(weight|bias)",
            None,
            "PaSST's AudioSet classifier (LayerNorm, Linear 527): unused, this project's PaSST head is Identity",
        ),
        KeyRule(_PASST + r"head_dist\.(weight|bias)", None, "PaSST's distillation classifier: unused (head_dist None)"),
        KeyRule(r"project_audio\.0\.(weight|bias)", r"audio.projection.\1", "audio projection: one Linear"),
        KeyRule(
            r"sentence_embedding_model\.embeddings\.position_ids",
            None,
            "a buffer only transformers < 4.31 saved; the model rebuilds it (checked to be 0, 1, 2, ...)",
        ),
        KeyRule(
            r"sentence_embedding_model\.((?:embeddings|encoder)\..+)", r"text.encoder.\1", "text encoder (no pooler)"
        ),
        text_head,
        KeyRule(r"tau", None, "the temperature: model_config.tau = |tau| (inference_tau)"),
        KeyRule(r"timing_tau", None, "temperature of the reference code's timing loss: unused"),
        KeyRule(
            r"audio_token", None, "token of the reference code's sequence model over windows: unused (num_layers 0)"
        ),
        KeyRule(
            r"posencode\.(?:pe|w|project\.weight|project\.bias)",
            None,
            "positional encoding of that sequence model: unused",
        ),
        KeyRule(r"audio_output_projection\.(?:weight|bias)", None, "input projection of that sequence model: unused"),
    ]


def map_keys(state_dict: dict, rules: list[KeyRule]) -> tuple[dict[str, str], dict[str, KeyRule]]:
    """(project key -> reference key, dropped reference key -> its rule); fails naming every unknown reference key."""
    mapped: dict[str, str] = {}
    dropped: dict[str, KeyRule] = {}
    unknown = []
    for key in state_dict:
        rule = next((r for r in rules if re.fullmatch(r.pattern, key)), None)
        if rule is None:
            unknown.append(key)
        elif rule.target is None:
            dropped[key] = rule
        else:
            mapped[re.fullmatch(rule.pattern, key).expand(rule.target)] = key
    if unknown:
        raise ReleasedCheckpointError(
            f"{len(unknown)} key(s) of the reference code's state_dict that the mapping does not know: "
            f"{listed(unknown)}"
        )
    return mapped, dropped


def project_shapes(model_config: dict, segment_s: float, hf_config: dict) -> dict[str, tuple]:
    """Every key and shape of the DualEncoder's state_dict that the configuration builds (the text
    encoder is built on the meta device: no memory, no weights)."""
    audio = audio_encoder({**model_config["audio"], "pretrained": False}, segment_s, model_config["embed_dim"])
    config = AutoConfig.for_model(**hf_config)
    with torch.device("meta"):
        encoder = AutoModel.from_config(config, add_pooling_layer=False)
    text = model_config["text"]
    head = projection_head(
        config.hidden_size, model_config["embed_dim"], text["head_layers"], text["head_hidden"] or config.hidden_size
    )
    parts = {"audio": audio, "text.encoder": encoder, "text.projection": head}
    return {
        f"{prefix}.{key}": tuple(value.shape)
        for prefix, module in parts.items()
        for key, value in module.state_dict().items()
    }


def check_fit(mapped: dict[str, str], state_dict: dict, expected: dict[str, tuple], text_source: str) -> None:
    """Fail naming the keys the project needs that nothing provides, mapped keys it does not have, and
    tensors of another shape (both shapes), each shown as `reference key -> project key`."""
    found = {key: tuple(state_dict[reference].shape) for key, reference in mapped.items()}
    problems = fit_problems(expected, found, {key: f"{reference} -> {key}" for key, reference in mapped.items()})
    if problems:
        raise ReleasedCheckpointError(
            "the reference code's state_dict does not fit the model rebuilt from its hyper_parameters "
            f"(text encoder config from {text_source}): " + "; ".join(problems)
        )


def check_dropped(state_dict: dict, dropped: dict[str, KeyRule]) -> None:
    """The dropped tensors that carry a value this project rebuilds hold what it rebuilds (tau: inference_tau)."""
    for key in (key for key in dropped if key.endswith("embeddings.position_ids")):
        if not torch.equal(state_dict[key].reshape(-1), torch.arange(state_dict[key].numel())):
            raise ReleasedCheckpointError(f"{key} is not 0, 1, 2, ...: the text encoder's positions cannot be rebuilt")


def convert_state_dict(
    state_dict: dict,
    model_config: dict,
    segment_s: float,
    hf_config: dict,
    text_source: str,
    rules: list[KeyRule] | None = None,
) -> dict[str, torch.Tensor]:
    """The project's state_dict from the reference code's (keys mapped by `rules`, default key_rules;
    everything checked)."""
    mapped, dropped = map_keys(state_dict, rules or key_rules(model_config["text"]["head_layers"]))
    check_dropped(state_dict, dropped)
    check_fit(mapped, state_dict, project_shapes(model_config, segment_s, hf_config), text_source)
    return {key: state_dict[reference_key].detach().clone() for key, reference_key in sorted(mapped.items())}


# ---------------------------------------------------------------------------------------------------
# The whole conversion, and joining the parts


def training_seed(hp: dict) -> int:
    """The random seed the released run trained with (sacred puts `seed` into the configuration); -1 when
    absent (the format needs an int)."""
    seed = hp.get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else -1


def convert_released_checkpoint(
    released_path: str | os.PathLike,
    out_path: str | os.PathLike,
    text_model: str | None = None,
    segment_s: float = REFERENCE_SEGMENT_S,
    passt_size: dict | None = None,
) -> dict:
    """Convert the reference code's Lightning checkpoint at `released_path` into this project's checkpoint at
    `out_path` (written atomically) and return it. text_model: model.text.name of the result, where
    the tokenizer (and, unless it is "roberta-large", the text config) comes from; default: the
    reference code's sentence_features.model. segment_s: the audio segment length the model is used with.
    passt_size: PaSST width/depth/heads (default PaSST-S's; smaller ones for tests)."""
    checkpoint = read_released_checkpoint(released_path)
    hp = checkpoint["hyper_parameters"]
    text_model = text_model or str(hyper_parameter(hp, "sentence_features.model"))
    model_config = model_config_from(hp, text_model, inference_tau(checkpoint["state_dict"], hp), passt_size)
    hf_config = text_hf_config(text_model)
    state_dict = convert_state_dict(checkpoint["state_dict"], model_config, segment_s, hf_config, text_model)
    source = {"released_checkpoint": Path(released_path).name, "training_only": training_only_settings(hp)}
    return write_converted(checkpoint, released_path, source, model_config, segment_s, hf_config, state_dict, out_path)


def write_converted(
    checkpoint: dict,
    path: str | os.PathLike,
    source: dict,
    model_config: dict,
    segment_s: float,
    hf_config: dict,
    state_dict: dict,
    out_path: str | os.PathLike,
) -> dict:
    """This project's checkpoint of a converted Lightning `checkpoint` (read from `path`; `source`: what
    to record of it beside its MD5 and Lightning's counters), written atomically to out_path."""
    converted = {
        "format_version": FORMAT_VERSION,
        "model_config": model_config,
        "segment_s": float(segment_s),
        "text_hf_config": hf_config,
        "state_dict": state_dict,
        "epoch": int(checkpoint.get("epoch", -1)),
        "metrics": {},
        "seed": training_seed(checkpoint["hyper_parameters"]),
        "source": {
            **source,
            "md5": file_digest(path, "md5"),
            "global_step": int(checkpoint.get("global_step", -1)),
            "pytorch-lightning_version": str(checkpoint.get("pytorch-lightning_version", "")),
        },
    }
    save_torch_atomically(converted, out_path)
    return converted


def join_parts(parts: list[str | os.PathLike], out_path: str | os.PathLike) -> Path:
    """Concatenate `parts` in the given order into `out_path` (written atomically), as the reference code's
    `cat passt_roberta.*.ckpt > passt_roberta.ckpt`; every part must exist and be non-empty."""
    if not parts:
        raise ValueError("no parts to join")
    missing = [str(p) for p in parts if not os.path.isfile(p)]
    empty = [str(p) for p in parts if os.path.isfile(p) and os.path.getsize(p) == 0]
    if missing or empty:
        raise FileNotFoundError(f"cannot join {out_path}: missing part(s) {missing}, empty part(s) {empty}")
    with written_atomically(out_path) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 24)
    return Path(out_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Import the authors' released checkpoint (the reference code's Lightning .ckpt)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert a released .ckpt into this project's checkpoint")
    convert.add_argument("checkpoint", help="the reference code's Lightning checkpoint (e.g. passt_roberta.ckpt)")
    convert.add_argument("out", help="the checkpoint to write (e.g. best.pt)")
    convert.add_argument(
        "--text-model",
        default=None,
        help="model.text.name of the result: roberta-large (default: the reference code's) or a local directory",
    )
    convert.add_argument(
        "--segment-s", type=float, default=REFERENCE_SEGMENT_S, help="audio segment length in seconds (30)"
    )
    join = commands.add_parser("join", help="concatenate the downloaded parts, in the order given")
    join.add_argument("parts", nargs="+", help="passt_roberta.1.ckpt ... passt_roberta.5.ckpt")
    join.add_argument("out", help="the joined file (e.g. passt_roberta.ckpt)")
    args = parser.parse_args(argv)
    try:
        if args.command == "join":
            print(join_parts(args.parts, args.out))
        else:
            converted = convert_released_checkpoint(args.checkpoint, args.out, args.text_model, args.segment_s)
            print(
                f"{args.out}: {len(converted['state_dict'])} tensors, "
                f"epoch {converted['epoch']}, seed {converted['seed']}"
            )
    except (ReleasedCheckpointError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
