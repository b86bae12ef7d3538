"""The workflow through the real Snakemake CLI."""

import json

import pandas as pd
import pytest
import torch
import yaml

from audioretrieval.data import clotho
from audioretrieval.data.h5audio import AudioH5
from conftest import REPO, run_snakemake
from http_server import FileServer

pytestmark = pytest.mark.snakemake


def write_config(tmp_path, config) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return str(path)


def data_targets(config):
    out = config["out_dir"]
    return [f"{out}/data/clothov2/{s}/{name}" for s in clotho.SPLITS for name in ("audio.h5", "captions.parquet")]


def test_demo_data_targets_are_built_offline_and_then_up_to_date(tmp_path, tiny_demo_config):
    configfile = write_config(tmp_path, tiny_demo_config)
    run_snakemake(*data_targets(tiny_demo_config), "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    for split, count in tiny_demo_config["demo"]["clips"].items():
        folder = tmp_path / "results" / "data" / "clothov2" / split
        audio = AudioH5(folder / "audio.h5")
        assert len(audio) == count and audio.sample_rate == 32000
        captions = pd.read_parquet(folder / "captions.parquet")
        assert len(captions) == 5 * count
        assert set(captions["file_name"]) == set(audio.file_names)
        published = pd.read_csv(tmp_path / "results" / "raw" / clotho.captions_csv(split), dtype=str)
        assert set(captions["caption"]) == set(published[clotho.CAPTION_COLUMNS].to_numpy().ravel())
    again = run_snakemake(*data_targets(tiny_demo_config), "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def planned_rules(result) -> set[str]:
    text = result.stdout + result.stderr
    return {line.split()[-1].rstrip(":") for line in text.splitlines() if line.strip().startswith(("rule ", "localrule "))}


def test_the_whole_chain_runs_then_is_up_to_date_and_a_stage2_change_reruns_only_stage2(tmp_path, tiny_demo_config):
    configfile = write_config(tmp_path, tiny_demo_config)
    out = tmp_path / "results"
    first = run_snakemake("--cores", 2, "--configfile", configfile, cwd=tmp_path)
    assert (first.stdout + first.stderr).count("rule train_stage1:") == 2
    assert (out / "tokenizer" / "tokenizer.json").exists()  # built by its own rule from the training captions
    weights = []
    for seed in (1, 2):
        run = out / "stage1" / f"seed{seed}"
        assert pd.read_csv(run / "log.csv")["epoch"].tolist() == [1, 2]
        checkpoint = torch.load(run / "best.pt", weights_only=True)
        assert checkpoint["seed"] == seed and checkpoint["model_config"]["embed_dim"] == 16
        weights.append(checkpoint["state_dict"]["audio.projection.weight"])
        assert (run / "embeddings" / "development.h5").exists() and (run / "embeddings" / "top_k.parquet").exists()
    assert not torch.equal(*weights)  # the seeds differ
    quality = pd.read_csv(out / "correspondences" / "quality.csv")
    assert quality["model"].tolist() == ["seed1", "seed2", "ensemble all"]
    assert quality["roc_auc"].between(0, 1).all()
    for job in ("distill-seed523528930", "distill-control-seed523528930"):
        assert pd.read_csv(out / "stage2" / job / "log.csv")["epoch"].tolist() == [1]
    for model_dir in ("stage1/seed1", "stage1/seed2", "correspondences/all", "stage2/distill-seed523528930",
                      "stage2/distill-control-seed523528930"):
        metrics = json.loads((out / model_dir / "evaluation" / "metrics.json").read_text())
        assert metrics["captions"] == 5 * 4 and metrics["clips"] == 4  # the evaluation split
        assert metrics["multi_positive_queries"] == 20  # the demo's truth covers every caption
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert summary["model"].tolist() == ["seed1", "seed2", "stage 1, mean of 2 seeds", "ensemble all",
                                         "distill-seed523528930", "distill-control-seed523528930"]
    comparisons = pd.read_csv(out / "report" / "comparisons.csv")
    assert set(comparisons["comparison"]) == {"stage 2 - control", "stage 2 - its initial stage-1 model", "stage 2 - mean of stage 1"}
    assert set(comparisons["metric"]) == {"ap@10", "multi_ap@10"} and (comparisons["queries"] == 20).all()
    for figure in ("training_curves", "metrics", "correspondence_examples", "comparisons"):
        assert (out / "report" / f"{figure}.png").stat().st_size > 0 and (out / "report" / f"{figure}.svg").exists()
    run_snakemake("--configfile", configfile, "--report", tmp_path / "report.html", cwd=tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "correspondence_examples.png" in html and "summary.csv" in html

    again = run_snakemake("--cores", 2, "--configfile", configfile, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr

    # a setting of the stage-2 run that its control does not use reruns the run, not the control
    tiny_demo_config["stage2"]["runs"][0]["target_tau"] = 0.1
    changed = run_snakemake("-n", "--cores", 2, "--configfile", write_config(tmp_path, tiny_demo_config), cwd=tmp_path)
    assert planned_rules(changed) == {"train_stage2", "evaluate_model", "target_mass", "summary", "comparisons", "plots", "all"}
    assert "name=distill-seed523528930" in changed.stdout and "name=distill-control" not in changed.stdout
    # a control asked for afterwards is trained and evaluated alone; its run is not retrained
    tiny_demo_config["stage2"]["runs"][0].update(target_tau=None, seeds=[523528930, 11])
    more = run_snakemake("-n", "--cores", 2, "--configfile", write_config(tmp_path, tiny_demo_config), cwd=tmp_path)
    assert more.stdout.count("rule train_stage2:") == 2
    assert "name=distill-seed11" in more.stdout and "name=distill-control-seed11" in more.stdout
    assert "name=distill-seed523528930" not in more.stdout


def test_the_paper_config_plans_the_clotho_download(tmp_path):
    result = run_snakemake("-n", "--configfile", REPO / "config" / "config.yaml", "--cores", 1, cwd=tmp_path)
    assert result.stdout.count("rule download_clotho:") == 9
    assert result.stdout.count("rule train_stage1:") == 3
    assert result.stdout.count("rule export_embeddings:") == 3
    assert result.stdout.count("rule ensemble_targets:") == 1
    assert result.stdout.count("rule train_stage2:") == 2  # the paper's stage 2 and its control
    assert result.stdout.count("rule evaluate_model:") == 5 and result.stdout.count("rule evaluate_ensemble:") == 1
    assert result.stdout.count("rule download_relevance:") == 1  # the DCASE 2025 annotations
    assert result.stdout.count("rule summary:") == 1 and result.stdout.count("rule plots:") == 1
    assert result.stdout.count("rule comparisons:") == 1
    for demo_only in ("generate_demo_dataset", "build_tokenizer", "correspondence_quality", "target_mass", "oracle_targets"):
        assert demo_only not in result.stdout


def test_a_corrupted_download_fails_the_rule_and_leaves_no_release_file(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["out_dir"] = str(tmp_path / "results")
    config["data"]["raw_dir"] = str(tmp_path / "raw")
    config["download"].update(retries=0, backoff_s=0.0)
    name = clotho.captions_csv("validation")
    with FileServer({name: b"file_name,caption_1\n"}) as server:
        config["download"]["base_url"] = server.url
        result = run_snakemake(
            str(tmp_path / "raw" / name), "--cores", 1, "--configfile", write_config(tmp_path, config),
            cwd=tmp_path, check=False,
        )
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "download_clotho" / f"{name}.log").read_text()
    assert f"{name}: MD5 mismatch: expected {clotho.MD5[name]}" in log
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["data"].update(decode_thread=2), "'decode_thread' was unexpected"),
        (lambda c: c["data"].update(sample_rate="32k"), "'32k' is not of type 'integer'"),
        (lambda c: c["demo"]["clips"].pop("evaluation"), "'evaluation' is a required property"),
        (lambda c: c["demo"].update(min_duration_s=9.0), "demo.min_duration_s (9.0) must not exceed"),
        (lambda c: c.pop("demo"), "'demo' is a required property"),
    ],
)
def test_config_mistakes_fail_at_load_time_naming_the_key(tmp_path, tiny_demo_config, edit, message):
    edit(tiny_demo_config)
    result = run_snakemake("-n", "--configfile", write_config(tmp_path, tiny_demo_config), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_lint_finds_nothing_in_either_configuration(tmp_path):
    for configfile in ("demo.yaml", "config.yaml"):
        result = run_snakemake("--lint", "--configfile", REPO / "config" / configfile, cwd=REPO, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
