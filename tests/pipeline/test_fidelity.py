"""The paper's configuration holds the reference code's value of every setting that reaches a result.

Each value below is read off the authors' code (OptimusPrimus/salsa: experiments/ex_dcase24.py and
its README's training commands; models/audio/passt.py) or the DCASE 2025 Task 6 baseline
(CPJKU/dcase2025_task6_baseline), not off this project. docs/fidelity.md lists the same
settings with where each comes from; the behaviour behind them (front end, caption preprocessing,
losses, schedule, metrics) is held against transcriptions of the reference code in tests/model,
tests/training, tests/correspondences and tests/evaluation.
"""

import pytest
import torch
import yaml
from conftest import REPO

from audioretrieval.device import resolve_precision

PAPER = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

# (config key, the reference code's value, where the reference code sets it)
REFERENCE_VALUES = [
    ("model.audio.arch", "passt_s_p16_s16_128_ap468", "models/audio/passt.py: get_model_passt, no overlap"),
    ("model.audio.pretrained", True, "models/audio/passt.py: AudioSet weights"),
    ("model.audio.embed_dim", 768, "PaSST-S width"),
    ("model.audio.depth", 12, "PaSST-S depth"),
    ("model.audio.num_heads", 12, "PaSST-S heads"),
    ("model.audio.window_s", 10.0, "README: audio_features.segment_length=10"),
    ("model.audio.hop_s", 10.0, "ex_dcase24.py: audio_features.hop_length = 10"),
    ("model.audio.patchout_t", 15, "ex_dcase24.py: s_patchout_t = 15"),
    ("model.audio.patchout_f", 2, "ex_dcase24.py: s_patchout_f = 2"),
    ("stage1.encoders.mn.audio.width_mult", 4.0, "models/audio/efficientat.py: mn40_as_ext, get_model(width_mult=4.0)"),
    ("stage1.encoders.mn.audio.pretrained", True, "models/audio/efficientat.py: pretrained_name=mn40_as_ext"),
    ("stage1.encoders.mn.audio.window_s", 10.0, "models/audio/base.py: every encoder's WindowedPrediction, 10 s"),
    ("stage1.encoders.mn.audio.hop_s", 10.0, "ex_dcase24.py: audio_features.hop_length = 10"),
    ("stage1.encoders.atst.audio.embed_dim", 768, "external/atst/audio_transformer.py: FrameASTModel, embed_dim=768"),
    ("stage1.encoders.atst.audio.depth", 12, "FrameASTModel: depth=12"),
    ("stage1.encoders.atst.audio.num_heads", 12, "FrameASTModel: num_heads=12"),
    ("stage1.encoders.atst.audio.pretrained", True, "models/audio/base.py: get_atst('atstframe_base_as2M.ckpt')"),
    ("stage1.encoders.atst.audio.window_s", 10.0, "models/audio/base.py: every encoder's WindowedPrediction, 10 s"),
    ("stage1.encoders.atst.audio.hop_s", 10.0, "ex_dcase24.py: audio_features.hop_length = 10"),
    ("model.text.name", "roberta-large", "README: sentence_features.model=roberta-large"),
    ("model.text.dropout", 0.2, "models/text/sentence_embedding_models.py: hidden and attention dropout 0.2"),
    ("model.text.max_tokens", 32, "ex_dcase24.py: max_sentence_tokens = 32"),
    ("model.text.freeze", False, "ex_dcase24.py: sentence_features.frozen = False"),
    ("model.text.pooling", "first", "ex_dcase24.py: use_first_token = True"),
    ("model.text.head_layers", 1, "ex_dcase24.py: adopt_n_layers = 0 (one Linear)"),
    ("model.embed_dim", 1024, "ex_dcase24.py: shared_representation_size = 1024"),
    ("model.tau", 0.05, "ex_dcase24.py: initial_tau = 0.05, freeze_tau = True"),
    ("train.segment_s", 30.0, "ex_dcase24.py: ds.set_fixed_length(30)"),
    ("train.batch_size", 64, "README: data_loader.batch_size=64"),
    ("train.eval_batch_size", 32, "README: data_loader.batch_size_eval=32"),
    ("train.epochs", 20, "README: max_epochs=20"),
    (
        "train.lr",
        {"audio_encoder": 2e-5, "text_encoder": 2e-5, "audio_projection": 2e-5, "text_projection": 2e-5},
        "ex_dcase24.py: lr_audio_encoder ... lr_sentence_project = 2e-5",
    ),
    ("train.min_lr", 1e-7, "ex_dcase24.py: min_lr = 1e-7"),
    ("train.betas", [0.9, 0.999], "ex_dcase24.py: beta1, beta2"),
    ("train.eps", 1e-8, "ex_dcase24.py: eps = 1e-8"),
    ("train.weight_decay", 0.0, "ex_dcase24.py: weight_decay = 0.0"),
    ("train.warmup_epochs", 1, "README: warmup_length=1"),
    ("train.rampdown_start", 1, "README: rampdown_start=1"),
    ("train.rampdown_stop", 15, "README: rampdown_stop=15"),
    ("train.precision", "fp16", "ex_dcase24.py: half_precision = True -> Trainer(precision=16)"),
    ("stage1.train_on", "clothov2", "README: train_on=clothov2"),
    ("stage1.seeds.0", 409194, "README: seed=409194"),
    ("stage2.runs.0.init", 409194, "README: load_parameters=$MODEL_NAME (the stage-1 run), load_last=best"),
    ("stage2.runs.0.seeds.0", 523528930, "README: seed=523528930"),
    ("stage2.runs.0.dist_weight", 1.0, "README: distill_weight=1.0"),
    ("stage2.runs.0.sup_weight", 0.0, "README: loss_weight=0.0"),
    ("stage2.runs.0.target_tau", None, "ex_dcase24.py: C_distilled / tau (the model's)"),
    ("stage2.train", {}, "README: the stage-2 command repeats stage 1's optimisation settings"),
    (
        "evaluation.relevance_md5",
        "15de2d0afb9c11950f15c46a70b335ba",
        "dcase2025_task6_baseline resources/metadata_eval.csv",
    ),
]


def value_at(config, key: str):
    for part in key.split("."):
        config = config[int(part)] if isinstance(config, list) else config[part]
    return config


@pytest.mark.parametrize("key, reference_value, where", REFERENCE_VALUES, ids=[row[0] for row in REFERENCE_VALUES])
def test_the_paper_config_holds_the_reference_codes_value(key, reference_value, where):
    assert value_at(PAPER, key) == reference_value, where


def test_the_papers_stage2_row_distils_from_the_one_model_it_starts_from():
    run = PAPER["stage2"]["runs"][0]  # README: distill_from=$MODEL_NAME, the model it was initialised from
    assert PAPER["correspondences"]["ensembles"][run["ensemble"]] == [run["init"]]
    assert run["control"]
    ensemble_run = next(r for r in PAPER["stage2"]["runs"] if r["ensemble"] == "all")
    assert PAPER["correspondences"]["ensembles"]["all"] == PAPER["stage1"]["seeds"] and ensemble_run["control"]


def test_half_precision_on_a_gpu_and_fp32_on_a_cpu():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_precision("fp16", cuda) == "fp16" and resolve_precision("bf16", cuda) == "bf16"
    assert resolve_precision("fp16", cpu) == resolve_precision("auto", cpu) == "fp32"


def test_the_fidelity_table_lists_every_setting():
    page = (REPO / "docs" / "fidelity.md").read_text()
    fidelity = page[page.index("# Fidelity") :]
    fidelity = fidelity[: fidelity.index("\n## ", 1)]
    for key, _, _ in REFERENCE_VALUES:
        assert f"`{key.split('.0')[0]}`" in fidelity, key
