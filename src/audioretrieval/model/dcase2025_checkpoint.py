"""Import a checkpoint of the DCASE 2025 Task 6 baseline (CPJKU/dcase2025_task6_baseline, the same
group's successor of the method): a Lightning checkpoint of its `d25_t6.retrieval_module.
AudioRetrievalModel`, converted into this project's checkpoint format, so that `load_model`
rebuilds it and the evaluation scores it.

    python -m audioretrieval.model.dcase2025_checkpoint CHECKPOINT.ckpt best.pt [--text-model DIR]

The baseline's model is the paper's at fixed sizes: PaSST-S (`passt_s_p16_s16_128_ap468`, 10 s
windows every 10 s of a 30 s segment, a window's embedding the mean of its class and distillation
tokens), a window kept when the clip's duration reaches into it, RoBERTa-large (or -base with
`roberta_base`) with dropout 0.2, its first token through one Linear layer each into 1024
dimensions, captions lower-cased without punctuation and cut at 32 tokens, similarities divided by
|tau|. Its hyper_parameters are train.py's command-line arguments (a plain dict); the file is read as
the authors' released checkpoint is (`released_checkpoint.read_released_checkpoint`: tensors and
plain containers only). Every key of its state_dict is mapped or dropped for a stated reason
(baseline_key_rules); anything else, a missing key or another shape fails, naming them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from audioretrieval.model.released_checkpoint import (
    PASST_ARCH,
    PASST_S,
    REFERENCE_SEGMENT_S,
    REFERENCE_TEXT_DROPOUT,
    KeyRule,
    ReleasedCheckpointError,
    convert_state_dict,
    inference_tau,
    read_released_checkpoint,
    text_hf_config,
    write_converted,
)

WINDOW_S = 10.0  # CutInputIntoSegmentsWrapper(segment_length=10 * 32000, hop_size=10 * 32000)
MAX_TOKENS = 32  # forward_text: padding="max_length", max_length=32, truncation
EMBED_DIM = 1024  # audio_projection, text_projection: into 1024 dimensions
# settings of train.py that act only in training (patchout drops patches in training mode only)
TRAINING_ONLY = ("s_patchout_t", "s_patchout_f", "initial_tau", "tau_trainable", "max_lr", "min_lr", "compile")

# torch.compile (train.py --compile on a recent GPU) wraps a module, which adds `_orig_mod.` to its keys
_COMPILED = r"(?:_orig_mod\.)?"
_PASST = r"audio_embedding_model\.model\.model\." + _COMPILED  # CutInputIntoSegmentsWrapper.model.model
_TEXT = r"text_embedding_model\." + _COMPILED


def baseline_key_rules() -> list[KeyRule]:
    """The baseline -> project table (first matching rule wins)."""
    return [
        KeyRule(
            _PASST + r"((?:cls_token|dist_token|new_pos_embed|freq_new_pos_embed|time_new_pos_embed)"
            r"|(?:patch_embed|blocks|norm)\..+)",
            r"audio.passt.\1",
            "PaSST transformer",
        ),
        KeyRule(_PASST + r"head\.[01]\.(weight|bias)", None, "PaSST's AudioSet classifier: unused (its [-1] output)"),
        KeyRule(_PASST + r"head_dist\.(weight|bias)", None, "PaSST's distillation classifier: unused"),
        KeyRule(r"audio_projection\.(weight|bias)", r"audio.projection.\1", "audio projection: one Linear"),
        KeyRule(
            _TEXT + r"embeddings\.position_ids",
            None,
            "a buffer only transformers < 4.31 saved; the model rebuilds it (checked to be 0, 1, 2, ...)",
        ),
        KeyRule(_TEXT + r"((?:embeddings|encoder)\..+)", r"text.encoder.\1", "text encoder (no pooler)"),
        KeyRule(r"text_projection\.(weight|bias)", r"text.projection.\1", "text projection: one Linear"),
        KeyRule(r"tau", None, "the temperature: model_config.tau = |tau| (inference_tau)"),
    ]


def baseline_model_config(hp: dict, text_model: str, tau: float, passt_size: dict | None = None) -> dict:
    """This project's `model` section for the baseline's model (train.py's arguments in `hp`)."""
    return {
        "embed_dim": EMBED_DIM,
        "tau": tau,
        "audio": {
            "arch": PASST_ARCH,
            "pretrained": True,
            "weights": None,
            **(passt_size or PASST_S),
            "window_s": WINDOW_S,
            "hop_s": WINDOW_S,
            "patchout_t": int(hp.get("s_patchout_t", 15)),
            "patchout_f": int(hp.get("s_patchout_f", 2)),
            "fused_attention": True,  # the same attention, computed by the fused kernel
        },
        "text": {
            "name": text_model,
            "tokenizer": None,
            "freeze": False,
            "dropout": REFERENCE_TEXT_DROPOUT,
            "max_tokens": MAX_TOKENS,
            "pooling": "first",
            "head_layers": 1,
            "head_hidden": None,
        },
    }


def baseline_text_model(hp: dict) -> str:
    return "roberta-base" if hp.get("roberta_base") else "roberta-large"


def convert_dcase2025_checkpoint(
    checkpoint_path: str | os.PathLike,
    out_path: str | os.PathLike,
    text_model: str | None = None,
    segment_s: float = REFERENCE_SEGMENT_S,
    passt_size: dict | None = None,
) -> dict:
    """Convert the baseline's Lightning checkpoint into this project's checkpoint at `out_path`
    (written atomically) and return it. text_model: model.text.name of the result (the tokenizer and,
    unless roberta-large, the text config come from it); default the baseline's roberta-large or -base.
    passt_size: PaSST width/depth/heads (default PaSST-S's; smaller ones for tests)."""
    checkpoint = read_released_checkpoint(checkpoint_path)
    hp, state_dict = checkpoint["hyper_parameters"], checkpoint["state_dict"]
    if not any(key.startswith("text_embedding_model.") for key in state_dict):
        raise ReleasedCheckpointError(
            f"{checkpoint_path}: no text_embedding_model.* keys: not a checkpoint of the DCASE 2025 baseline's "
            "AudioRetrievalModel (the authors' DCASE 2024 checkpoint converts with "
            "audioretrieval.model.released_checkpoint)"
        )
    text_model = text_model or baseline_text_model(hp)
    model_config = baseline_model_config(hp, text_model, inference_tau(state_dict, hp), passt_size)
    hf_config = text_hf_config(text_model)
    converted = convert_state_dict(state_dict, model_config, segment_s, hf_config, text_model, baseline_key_rules())
    source = {
        "dcase2025_baseline_checkpoint": Path(checkpoint_path).name,
        "training_only": {key: hp[key] for key in TRAINING_ONLY if key in hp},
    }
    return write_converted(checkpoint, checkpoint_path, source, model_config, segment_s, hf_config, converted, out_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Import a checkpoint of the DCASE 2025 Task 6 baseline.")
    parser.add_argument("checkpoint", help="the baseline's Lightning checkpoint (.ckpt)")
    parser.add_argument("out", help="the checkpoint to write (e.g. best.pt)")
    parser.add_argument(
        "--text-model", default=None, help="model.text.name of the result (default: roberta-large, the baseline's)"
    )
    parser.add_argument("--segment-s", type=float, default=REFERENCE_SEGMENT_S, help="audio segment length (30)")
    args = parser.parse_args(argv)
    try:
        converted = convert_dcase2025_checkpoint(args.checkpoint, args.out, args.text_model, args.segment_s)
    except (ReleasedCheckpointError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
    print(f"{args.out}: {len(converted['state_dict'])} tensors, epoch {converted['epoch']}, seed {converted['seed']}")


if __name__ == "__main__":
    main()
