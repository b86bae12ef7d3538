"""A dataset of one's own (data.source: table): a folder of sound files and a manifest, generated here,
through the whole chain of the real Snakemake CLI to the report, with an extra stage-1 set."""

import json

import pandas as pd
import pytest
from conftest import run_snakemake, tiny_config, write_config
from data.test_table_source import make_dataset

from audioretrieval.data.h5audio import AudioH5

pytestmark = pytest.mark.snakemake

SOUNDS = ["dog barks", "rain falls", "a bell rings", "a car passes", "birds chirp", "wind howls", "a door slams"]


def clips(count: int, split: str, offset: int) -> list:
    """`count` clips of one split, each with one to three captions of its sound."""
    formats = (("wav", "WAV"), ("flac", "FLAC"))
    return [
        (
            f"{split}/{split[:3]}{k}.{formats[k % 2][0]}",
            formats[k % 2][1],
            1.0 + 0.25 * (k % 5),
            32000,
            [f"{SOUNDS[(k + offset) % len(SOUNDS)]} {word}" for word in ("loudly", "softly", "nearby")[: 1 + k % 3]],
            split,
        )
        for k in range(count)
    ]


@pytest.fixture(scope="module")
def table_chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("table_chain")
    manifest = make_dataset(
        root / "mine", clips(12, "development", 0) + clips(4, "validation", 1) + clips(4, "evaluation", 2)
    )
    # the evaluation captions' relevant clips: every clip of the same sound
    rows = pd.read_csv(manifest)
    evaluation = rows[rows["split"] == "evaluation"].assign(sound=lambda t: t["caption"].str.rsplit(" ", n=1).str[0])
    relevance = evaluation.merge(evaluation[["file", "sound"]].drop_duplicates(), on="sound", suffixes=("", "_rel"))
    relevance["relevant_file_name"] = relevance["file_rel"].str.rsplit("/", n=1).str[-1]
    relevance[["caption", "relevant_file_name"]].to_csv(root / "mine" / "relevance.csv", index=False)
    pd.DataFrame(
        {"file": ["development/dev0.wav", "evaluation/eva1.flac"], "caption": ["a dog barks", "rain is falling"]}
    ).to_csv(root / "extra.csv", index=False)

    config = tiny_config(root / "results")
    del config["demo"]
    audio_dir = str(root / "mine" / "audio")
    config["data"]["source"] = "table"
    config["evaluation"]["sets"] = ["table"]
    del config["audiocaps"]  # the demo's stand-in, generated only with data.source demo
    config["table"] = {"manifest": str(manifest), "audio_dir": audio_dir, "split": "column",
                       "max_missing_fraction": 0.0, "relevance": str(root / "mine" / "relevance.csv")}  # fmt: skip
    config["extra_tables"] = {"more": {"manifest": str(root / "extra.csv"), "audio_dir": audio_dir,
                                       "max_missing_fraction": 0.0}}  # fmt: skip
    config["stage1"] = {**config["stage1"], "seeds": [1], "train_on": "all"}
    config["correspondences"]["ensembles"] = {"all_captions": [1, "captions"]}
    config["stage2"]["runs"] = [{**config["stage2"]["runs"][0], "ensemble": "all_captions"}]
    configfile = write_config(root, config)
    run_snakemake("--cores", 2, "--configfile", configfile, cwd=root)
    return root / "results", configfile, root


def test_the_whole_chain_runs_on_a_folder_and_a_manifest_to_the_report(table_chain):
    out, _, _ = table_chain
    for split, count in (("development", 12), ("validation", 4), ("evaluation", 4)):
        assert len(AudioH5(out / "data" / "table" / split / "audio.h5")) == count
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert {"seed1", "distill-seed523528930", "control-from-seed1-seed523528930"} <= set(summary["model"])
    distilled = out / "stage2" / "distill-seed523528930"
    metrics = json.loads((distilled / "evaluation" / "best" / "metrics.json").read_text())
    assert 0 <= metrics["map@10"] <= 1 and 0 <= metrics["dcase2025_map@16"] <= 1  # the relevance table scored
    assert (out / "report" / "listen.html").is_file()


def test_the_extra_set_trains_stage1_without_the_main_datasets_evaluation_clip(table_chain):
    out, _, _ = table_chain
    more = out / "data" / "tables" / "more"
    assert list(AudioH5(more / "audio.h5").file_names) == ["dev0.wav"]
    assert pd.read_csv(more / "excluded_clips.csv")["file"].tolist() == ["evaluation/eva1.flac"]
    trained_on = (out / "logs" / "train_stage1" / "seed1.log").read_text()
    assert "from 2 set(s)" in trained_on and "tables/more/audio.h5" in trained_on


def test_an_edited_manifest_reruns_the_data_and_what_depends_on_it(table_chain):
    out, configfile, root = table_chain
    assert "Nothing to be done" in run_snakemake("-n", "--cores", 2, "--configfile", configfile, cwd=root).stdout
    manifest = root / "mine" / "manifest.csv"
    original = manifest.read_text()
    try:
        rows = pd.read_csv(manifest)
        rows.loc[0, "caption"] = "a dog barks very loudly"
        rows.to_csv(manifest, index=False)
        planned = run_snakemake("-n", "--cores", 2, "--configfile", configfile, cwd=root).stdout
    finally:
        manifest.write_text(original)
    assert "prepare_source_split" in planned and "train_stage1" in planned
