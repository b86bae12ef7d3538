"""Importing a checkpoint of the DCASE 2025 Task 6 baseline: one its own code wrote (Lightning's
Trainer, its AudioRetrievalModel at a small size, tests/model/reference/record_dcase2025.py),
converted, and its embeddings compared with those the baseline's forward_audio and forward_text
computed."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, planned_rules, run_snakemake
from http_server import FileServer
from transformers import AutoTokenizer, RobertaConfig

from audioretrieval.files import file_digest
from audioretrieval.model.checkpoint import load_model
from audioretrieval.model.dcase2025_checkpoint import convert_dcase2025_checkpoint, main
from audioretrieval.model.released_checkpoint import ReleasedCheckpointError

REFERENCE = Path(__file__).parent / "reference"
CHECKPOINT = REFERENCE / "dcase2025_baseline_small.ckpt"
RECORDED = torch.load(REFERENCE / "dcase2025_baseline_small.pt", weights_only=True)
SMALL_PASST = {"embed_dim": 32, "depth": 1, "num_heads": 2}


def clips() -> torch.Tensor:
    """record_dcase2025.clips(): 30 s of seeded noise, and 14 s of it then zeros."""
    audio = 0.1 * np.random.default_rng(0).standard_normal((2, 30 * 32000)).astype(np.float32)
    audio[1, 14 * 32000 :] = 0
    return torch.from_numpy(audio)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory, tiny_tokenizer):
    """The tiny tokenizer with the small RoBERTa's config the recording built (record_dcase2025.small_roberta)."""
    directory = tmp_path_factory.mktemp("text_model")
    for file in tiny_tokenizer.iterdir():
        shutil.copy(file, directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer(RECORDED["captions"])["input_ids"] == RECORDED["input_ids"]  # the recording's tokenizer
    RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=50,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    ).save_pretrained(directory)
    return directory


def test_a_checkpoint_the_baselines_code_wrote_embeds_as_its_model_does(tmp_path, text_dir):
    converted = convert_dcase2025_checkpoint(CHECKPOINT, tmp_path / "best.pt", str(text_dir), 30.0, SMALL_PASST)
    assert converted["model_config"]["tau"] == 0.05 and converted["seed"] == 21208
    assert converted["source"]["training_only"]["s_patchout_t"] == 15
    model, _ = load_model(tmp_path / "best.pt")
    model.eval()
    durations = torch.tensor(RECORDED["durations"])
    with torch.no_grad():
        audio = model.embed_audio(clips(), durations / 30.0)
        text = model.embed_text(RECORDED["captions"])
    torch.testing.assert_close(audio, RECORDED["audio"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(text, RECORDED["text"], atol=1e-5, rtol=1e-4)


def test_another_checkpoint_is_refused_naming_what_is_missing_and_nothing_is_written(tmp_path, text_dir):
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    checkpoint["state_dict"]["audio_projection.extra"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "extra.ckpt")
    with pytest.raises(ReleasedCheckpointError, match=r"1 key\(s\) .* does not know: audio_projection.extra"):
        convert_dcase2025_checkpoint(tmp_path / "extra.ckpt", tmp_path / "best.pt", str(text_dir), 30.0, SMALL_PASST)
    checkpoint["state_dict"] = {
        k.replace("text_embedding_model.", "sentence_embedding_model."): v for k, v in checkpoint["state_dict"].items()
    }
    torch.save(checkpoint, tmp_path / "salsa.ckpt")
    with pytest.raises(SystemExit, match="no text_embedding_model.* keys: not a checkpoint of the DCASE 2025 baseline"):
        main([str(tmp_path / "salsa.ckpt"), str(tmp_path / "best.pt"), "--text-model", str(text_dir)])
    with pytest.raises(ReleasedCheckpointError, match="does not fit"):  # PaSST-S's shapes, not the small ones
        convert_dcase2025_checkpoint(CHECKPOINT, tmp_path / "best.pt", str(text_dir), 30.0)
    assert not (tmp_path / "best.pt").exists()


def test_a_compiled_models_keys_map_as_the_plain_ones(tmp_path, text_dir):
    """train.py --compile wraps PaSST and RoBERTa in torch.compile, which saves their keys with _orig_mod."""
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    checkpoint["state_dict"] = {
        k.replace("audio_embedding_model.model.model.", "audio_embedding_model.model.model._orig_mod.").replace(
            "text_embedding_model.", "text_embedding_model._orig_mod."
        ): v
        for k, v in checkpoint["state_dict"].items()
    }
    torch.save(checkpoint, tmp_path / "compiled.ckpt")
    compiled = convert_dcase2025_checkpoint(
        tmp_path / "compiled.ckpt", tmp_path / "a.pt", str(text_dir), 30.0, SMALL_PASST
    )
    plain = convert_dcase2025_checkpoint(CHECKPOINT, tmp_path / "b.pt", str(text_dir), 30.0, SMALL_PASST)
    assert compiled["state_dict"].keys() == plain["state_dict"].keys()
    assert all(torch.equal(compiled["state_dict"][k], plain["state_dict"][k]) for k in plain["state_dict"])


def paper_config(tmp_path) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["out_dir"] = str(tmp_path / "results")
    config["data"]["raw_dir"] = str(tmp_path / "raw")
    config["dcase2025_baseline"]["raw_dir"] = str(tmp_path / "baseline")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return config


@pytest.mark.snakemake
def test_the_paper_config_plans_the_baselines_download_conversion_and_evaluation(tmp_path):
    paper_config(tmp_path)
    target = tmp_path / "results" / "released" / "dcase2025_baseline" / "evaluation" / "best" / "metrics.json"
    result = run_snakemake("-n", target, "--cores", 1, "--configfile", tmp_path / "config.yaml", cwd=tmp_path)
    planned = planned_rules(result)
    assert {"download_dcase2025_baseline", "convert_dcase2025_baseline", "evaluate_released"} <= planned
    download = result.stdout.split("rule download_dcase2025_baseline:")[1].split("\n\n")[0]
    assert f"{tmp_path}/baseline/dcase2025_baseline.ckpt" in download
    assert not planned & {"train_stage1", "train_stage2"}  # nothing is trained for it


@pytest.mark.snakemake
def test_the_rules_download_the_checkpoint_and_convert_it_failing_on_what_does_not_fit(tmp_path, text_dir):
    """The rule converts at PaSST-S's size (the release's): the small file here must fail on its
    shapes, which shows the wiring (download, text model, segment length) down to the library's message."""
    config = paper_config(tmp_path)
    config["dcase2025_baseline"].update(text_model=str(text_dir), md5=file_digest(CHECKPOINT, "md5"), retries=0)
    with FileServer({"s/share/download": CHECKPOINT.read_bytes()}) as server:
        config["dcase2025_baseline"]["url"] = f"{server.url}/s/share/download"
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        target = tmp_path / "results" / "released" / "dcase2025_baseline" / "best.pt"
        result = run_snakemake(
            target, "--cores", 1, "--configfile", tmp_path / "config.yaml", cwd=tmp_path, check=False
        )
    assert result.returncode != 0
    assert (tmp_path / "baseline" / "dcase2025_baseline.ckpt").read_bytes() == CHECKPOINT.read_bytes()
    log = (tmp_path / "results" / "logs" / "convert_dcase2025_baseline.log").read_text()
    assert f"does not fit the model rebuilt from its hyper_parameters (text encoder config from {text_dir})" in log
    assert not target.exists()
