"""The map a configuration describes (audioretrieval.pipeline.sweep, rules/map.smk): its points and
worlds, what the worlds share, the plans Snakemake makes of it, and the map a tiny one writes."""

import re

import pandas as pd
import pytest
import yaml
from conftest import REPO, check_at_load, rule_blocks, run_snakemake, tiny_config

from audioretrieval.pipeline import sweep
from audioretrieval.pipeline.config import ConfigError, check_config, overlaid


def configuration(*names, base="demo.yaml"):
    config = yaml.safe_load((REPO / "config" / base).read_text())
    for name in names:
        config = overlaid(config, yaml.safe_load((REPO / "config" / name).read_text()))
    return config


TARGETS = [
    "paper",
    "heldout",
    "captions",
    "xie",
    "split25",
    "split75",
    "captionssplit25",
    "captionssplit75",
    "top1",
    "top3",
    "top8",
    "agree8",
    "oracle",
]


def test_the_demo_map_crosses_every_target_with_both_stage1_worlds():
    expanded = sweep.expand(configuration("map.yaml"))
    points = [(p["world"], p["variant"]) for p in expanded["points"]]
    assert len(points) == len(set(points)) == 26
    assert [v for w, v in points if w == "e14"] == [v for w, v in points if w == "e24"] == TARGETS


def test_each_world_trains_five_starts_and_shares_the_release_files():
    config = configuration("map.yaml")
    worlds = sweep.expand(config)["worlds"]
    assert list(worlds) == ["e14", "e24"]
    for name, world in worlds.items():
        check_at_load(world["config"])
        assert world["config"]["out_dir"] == f"results/map/{name}" and "map" not in world["config"]
        assert world["config"]["stage1"]["seeds"] == [1, 2, 3, 4, 5]
        assert world["config"]["stage2"]["train"]["select_by"] == "dcase2025_map@16"  # both arms alike
        assert world["config"]["train"]["select_by"] == "map@10"  # stage 1 is the quick demo's
    assert "generate_demo_dataset" in worlds["e24"]["excluded_rules"]  # e14 generates them
    assert worlds["e24"]["config"]["train"]["epochs"] == 24
    ensembles = worlds["e14"]["config"]["correspondences"]["ensembles"]
    assert {f"without{s}": ensembles[f"without{s}"] for s in (1, 5)} == {
        "without1": [2, 3, 4, 5],
        "without5": [1, 2, 3, 4],
    }
    assert ensembles["xie"] == ["captions:paired"] and ensembles["all5"] == [1, 2, 3, 4, 5]


def test_a_point_runs_its_variant_from_every_start_beside_the_shared_controls_with_its_rule():
    expanded = sweep.expand(configuration("map.yaml"))
    at = {(p["world"], p["variant"]): p for p in expanded["points"]}
    heldout, paper = at["e14", "heldout"], at["e14", "paper"]
    assert heldout["ensembles"] == [f"without{s}" for s in range(1, 6)]  # each start's targets without it
    assert heldout["quality_rows"][0] == "ensemble without1"
    assert heldout["runs"][1] == ["heldout_from2-seed523528930"]
    assert heldout["controls"] == paper["controls"] == [[f"control-from-seed{s}-seed523528930"] for s in range(1, 6)]
    assert at["e14", "split75"]["rule"] == "split(own_share=0.75)" and paper["rule"] == "softmax"
    assert (
        at["e14", "xie"]["rule"] == "logistic(alpha=25, beta=20)"
        and at["e14", "xie"]["quality_rows"][0] == "ensemble xie"
    )
    assert at["e14", "agree8"]["ensembles"] == ["all5"] * 5
    assert at["e14", "oracle"]["targets"] == "oracle" and paper["targets"] == "estimated"
    assert paper["select_by"] == "dcase2025_map@16"
    own = sweep.expand(overlaid(configuration("map.yaml"), {"map": {"run": {"ensemble": "own"}}}))["points"][0]
    assert own["ensembles"] == [f"seed{s}" for s in range(1, 6)]  # the paper's self-distillation


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: m["run_axes"]["targets"].update(centre="best"),
            "axis targets: centre 'best' is not one of its values",
        ),
        (lambda m: m["interactions"].append({"stage1": ["e14"], "width": ["x"]}), "'width' is not an axis"),
        (lambda m: m["every_world"].append({"targets": "best"}), r"\['best'\] are not values of axis 'targets'"),
        (lambda m: m["world_axes"]["stage1"]["values"].update(e2={"out_dir": "x"}), r"cannot set \['out_dir'\]"),
        (lambda m: m["run_axes"]["targets"]["values"].update(x={"ensemble": "all7"}), "ensemble 'all7' is not in"),
        (lambda m: m["every_world"].append({"stage1": "e24"}), "'stage1' is not a run axis"),
        (lambda m: m["run_axes"]["targets"]["values"].update(sup={"dist_weight": 0.0}), "would be the control itself"),
        (lambda m: m["world_axes"]["stage1"]["values"].update(all={"stage1": {"train_on": "all"}}), "train_on all"),
        (lambda m: m["world_axes"]["stage1"]["values"].update(x={"wavcaps": {}}), r"cannot set \['wavcaps'\]"),
        (
            lambda m: m["world_axes"]["stage1"]["values"].update(x={"evaluation": {"sets": ["clothov2"]}}),
            "a world cannot set evaluation.sets or data.source",
        ),
        (  # map.csv leads each row with its test set
            lambda m: m["run_axes"].update(set={"centre": "a", "values": {"a": {}}}),
            r"axes \['set'\] have names of the map's own columns",
        ),
        (
            lambda m: m["run_axes"]["targets"]["values"].update(
                x={"target_rule": {"name": "agreement", "agree_with": "all9", "k": 2}}
            ),
            "target_rule.agree_with: 'all9' is not in correspondences.ensembles",
        ),
        (lambda m: m.update(starts=[1]), "ensemble 'others' needs at least two starts"),
        (
            lambda m: m["run_axes"].update(rule={"centre": "a", "values": {"a": {}}}),
            r"axes \['rule'\] have names of the map's own columns",
        ),
    ],
)
def test_map_mistakes_name_the_axis_and_value(edit, message):
    config = configuration("map.yaml")
    edit(config["map"])
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def job_counts(result) -> dict[str, int]:
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}


def planned_names(result, rule, wildcard="name") -> list[str]:
    """The value of one wildcard in every job of a rule that `snakemake -n` plans."""
    blocks = result.stdout.split("\n\n")
    return [re.search(rf"wildcards: .*?{wildcard}=([^,\s]+)", b).group(1) for b in blocks if f"rule {rule}:" in b]


@pytest.mark.snakemake
def test_the_demo_map_plans_every_stage1_run_and_every_control_once(tmp_path):
    result = run_snakemake(
        "-n", "--cores", 2, "--configfile", REPO / "config" / "demo.yaml", REPO / "config" / "map.yaml", cwd=tmp_path
    )
    counts = job_counts(result)
    stage1 = {name.removesuffix("_train_stage1"): n for name, n in counts.items() if name.endswith("_train_stage1")}
    assert stage1 == {"e14": 5, "e24": 5}
    stage2 = {name.removesuffix("_train_stage2"): n for name, n in counts.items() if name.endswith("_train_stage2")}
    assert stage2 == {"e14": 13 * 5 + 5, "e24": 13 * 5 + 5}
    for world in stage2:
        controls = [n for n in planned_names(result, f"{world}_train_stage2") if n.startswith("control-")]
        assert len(controls) == len(set(controls)) == 5
    assert counts["e14_generate_demo_dataset"] == 1 and "e24_generate_demo_dataset" not in counts
    # every world's runs scored on the demo's AudioCaps test stand-in too, generated once for both
    assert counts["e14_generate_demo_audiocaps_test"] == 1 and "e24_generate_demo_audiocaps_test" not in counts
    for world in stage2:
        assert counts[f"{world}_evaluate_model_on_set"] == counts[f"{world}_evaluate_model"] == 5 + 13 * 5 + 5
    (map_job,) = rule_blocks(result, "map")
    assert "results/map/e24/stage2/split25_from3-seed523528930/evaluation/audiocaps/best/ranks.parquet" in map_job
    assert counts["e14_text_states"] == 3  # the demo's frozen MiniLM: each split's captions once per world
    assert counts["e14_ensemble_targets"] == 8  # all5, captions, xie and each start's without{N}
    assert counts["map"] == 1


@pytest.mark.snakemake
def test_the_paper_configuration_plans_its_clothov2_ablation_with_the_same_harness(tmp_path):
    result = run_snakemake(
        "-n",
        "--cores",
        1,
        "--configfile",
        REPO / "config" / "config.yaml",
        REPO / "config" / "ablation.yaml",
        cwd=tmp_path,
    )
    counts = job_counts(result)
    # 5 starts, 2 more PaSST seeds, a MobileNetV3 and an ATST-Frame run; 8 targets and the control, from each start
    assert counts["centre_train_stage1"] == 9 and counts["centre_train_stage2"] == 8 * 5 + 5
    # all5, captions, xie, seeds7, ears7; each start's own and without{N}
    assert counts["centre_ensemble_targets"] == 5 + 5 + 5
    assert counts["centre_embed_captions"] == 1 and counts["map"] == 1
    assert not any(name.endswith("text_states") for name in counts)  # RoBERTa is trained: no states to share
    stage1 = planned_names(result, "centre_train_stage1", "run")
    assert sorted(stage1) == sorted(["atst-seed409194", "mn-seed409194"] + [f"seed{s}" for s in range(409194, 409201)])
    controls = [n for n in planned_names(result, "centre_train_stage2") if n.startswith("control-")]
    assert sorted(controls) == sorted(f"control-from-seed{s}-seed523528930" for s in range(409194, 409199))


@pytest.mark.snakemake
def test_a_tiny_map_runs_through_snakemake_and_writes_every_point_with_its_intervals(tmp_path):
    config = overlaid(
        tiny_config(tmp_path / "results"), yaml.safe_load((REPO / "tests" / "config" / "tiny_map.yaml").read_text())
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    run_snakemake("--cores", 2, "--configfile", tmp_path / "config.yaml", cwd=tmp_path)
    table = pd.read_csv(tmp_path / "results" / "map" / "map.csv")
    assert table["estimator"].tolist() == ["heldout", "gated", "oracle"]
    assert (table["runs"] == "2 x 1").all() and (table["starts"] == 2).all()
    assert (table["select_by"] == "dcase2025_map@16").all()
    assert table["rule"].tolist() == ["softmax", "agreement(agree_with=xie, k=2)", "softmax"]
    for metric in ("dcase2025_ap@16", "ap@10", "dcase2025_ap@10"):
        for contrast in ("stage2-control", "stage2-start", "control-start"):
            column = f"{metric} {contrast}"
            assert (table[f"{column} low"] <= table[column]).all() and (table[column] <= table[f"{column} high"]).all()
            assert (table[f"{column} start_low"] <= table[column]).all() and table[f"{column} starts_sd"].notna().all()
    assert table["false_clips"].iloc[2] == pytest.approx(0, abs=1e-6) and table["false_clips"].iloc[0] > 0
    shares = table[["own_clip", "other_true_clips", "false_clips"]].sum(axis=1)
    assert shares.to_numpy() == pytest.approx(1.0)  # of the target the loss trains towards
    oracle = table.set_index("estimator").loc["oracle"]
    assert (table["ap@10 oracle-control"] == oracle["ap@10 stage2-control"]).all()  # each point's ceiling
    markdown = (tmp_path / "results" / "map" / "map.md").read_text()
    assert "t-interval over the per-start means" in markdown and "| oracle" in markdown
    assert (tmp_path / "results" / "map" / "map.png").stat().st_size > 0
    world = tmp_path / "results" / "centre"
    assert (world / "correspondences" / "without1" / "targets.h5").exists()  # start 1's targets: start 2 alone
    log = pd.read_csv(world / "stage2" / "gated_from1-seed3" / "log.csv")
    assert "val_dcase2025_map@16" in log  # the epoch chosen by it
