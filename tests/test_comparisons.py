import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from audioretrieval.compare import comparisons_table, paired_bootstrap, realised_share
from audioretrieval.config import ConfigError, check_config, stage2_jobs
from audioretrieval.ensemble import EnsembleTargets
from audioretrieval.summary import summary_table
from audioretrieval.truth import target_mass, write_oracle_targets
from conftest import REPO

from test_correspondences import CLIPS, caption_table


def test_identical_models_give_a_zero_interval():
    scores = np.random.default_rng(0).random(300)
    result = paired_bootstrap(scores, scores.copy())
    assert result["difference"] == result["low"] == result["high"] == 0.0 and not result["excludes_zero"]


def test_a_model_better_on_every_query_gives_an_interval_above_zero():
    base = np.random.default_rng(1).random(200)
    better = base + np.random.default_rng(2).uniform(0.01, 0.05, 200)
    result = paired_bootstrap(better, base, resamples=2000)
    assert 0 < result["low"] <= result["difference"] <= result["high"] and result["excludes_zero"]


def test_the_same_seed_gives_the_same_interval():
    rng = np.random.default_rng(3)
    a, b = rng.random(150), rng.random(150)
    assert paired_bootstrap(a, b, seed=5) == paired_bootstrap(a, b, seed=5)
    assert paired_bootstrap(a, b, seed=5)["low"] != paired_bootstrap(a, b, seed=6)["low"]


def per_query(scores, multi=None):
    table = pd.DataFrame({"file_name": [f"c{i // 5}.wav" for i in range(len(scores))],
                          "caption_index": [i % 5 + 1 for i in range(len(scores))], "ap@10": scores})
    if multi is not None:
        table["multi_ap@10"] = multi
    return table


def test_comparisons_average_the_seeds_of_a_group_and_pair_queries():
    rng = np.random.default_rng(4)
    base = rng.random(100)
    tables = {"seed1": per_query(base), "seed2": per_query(base + 0.02),
              "d-seed1": per_query(base + 0.05), "d-seed2": per_query(base + 0.07)}
    groups = {"stage 1 mean": ["seed1", "seed2"], "seed1": ["seed1"], "d": ["d-seed1", "d-seed2"]}
    table = comparisons_table(tables, groups, [("vs init", "d", "seed1"), ("vs mean", "d", "stage 1 mean")],
                              ["ap@10"], resamples=500)
    assert table["difference"].round(6).tolist() == [6.0, 5.0]  # % points
    assert table["excludes_zero"].all()
    shuffled = dict(tables, seed2=tables["seed2"].iloc[::-1].reset_index(drop=True))
    with pytest.raises(ValueError, match="seed2 was not scored on the same queries as seed1"):
        comparisons_table(shuffled, groups, [("vs mean", "d", "stage 1 mean")], ["ap@10"], resamples=100)


def test_multi_positive_comparisons_leave_out_unannotated_queries():
    multi = np.where(np.arange(10) < 4, 0.5, np.nan)
    tables = {"a": per_query(np.full(10, 0.5), multi), "b": per_query(np.full(10, 0.2), multi - 0.1)}
    table = comparisons_table(tables, {"a": ["a"], "b": ["b"]}, [("a - b", "a", "b")], ["multi_ap@10"], resamples=100)
    assert table.loc[0, "queries"] == 4 and table.loc[0, "difference"] == pytest.approx(10.0)


def test_realised_share_of_the_oracle_gain():
    tables = {"control": per_query(np.full(10, 0.2)), "est": per_query(np.full(10, 0.25)), "oracle": per_query(np.full(10, 0.3))}
    groups = {name: [name] for name in tables}
    assert realised_share(tables, groups, "est", "control", "oracle", "ap@10") == pytest.approx(0.5)
    worse = dict(tables, oracle=per_query(np.full(10, 0.1)))
    assert np.isnan(realised_share(worse, groups, "est", "control", "oracle", "ap@10"))


def demo_config():
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


def test_a_control_is_its_run_with_only_the_loss_weights_changed_and_runs_from_one_start_share_it():
    config = demo_config()
    config["stage2"]["runs"][0].update(seeds=[5, 6], target_tau=0.1)
    config["stage2"]["runs"].append({**config["stage2"]["runs"][0], "name": "other", "seeds": [6, 7]})
    jobs = {job["name"]: job for job in stage2_jobs(config)}
    assert sorted(jobs) == ["control-from-seed1-seed5", "control-from-seed1-seed6", "control-from-seed1-seed7",
                            "distill-seed5", "distill-seed6", "other-seed6", "other-seed7"]
    assert jobs["control-from-seed1-seed6"]["control_of"] == ["distill", "other"]
    for seed in (5, 6):
        run, control = jobs[f"distill-seed{seed}"], jobs[f"control-from-seed1-seed{seed}"]
        assert (control["dist_weight"], control["sup_weight"]) == (0.0, 1.0) and control["init"] == run["init"]
        assert control["seed"] == run["seed"] and control["ensemble"] is None and control["target_tau"] is None
    config["stage2"]["runs"][0]["control"] = config["stage2"]["runs"][1]["control"] = False
    assert [job["name"] for job in stage2_jobs(config)] == ["distill-seed5", "distill-seed6", "other-seed6", "other-seed7"]


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["stage2"]["runs"][0].update(ensemble="oracle") or c["data"].update(source="clotho"),
     "'oracle' targets come from the demo's ground truth"),
    (lambda c: c["correspondences"]["ensembles"].update(oracle=[1]), "'oracle' is reserved"),
    (lambda c: c["evaluation"].update(relevance_url="http://x/y.csv"), "the demo scores multi-positive mAP against its own"),
    (lambda c: c["stage2"]["runs"].append(copy.deepcopy(c["stage2"]["runs"][0])), "job names must be unique"),
])
def test_stage2_config_mistakes_name_the_key(edit, message):
    config = demo_config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_the_summary_shows_stage2_seeds_their_mean_and_the_controls():
    config = demo_config()
    config["stage2"]["runs"][0]["seeds"] = [5, 6]
    jobs = stage2_jobs(config)
    metrics = {job["name"]: {"map@10": 0.1 * i, "r@1": 0, "r@5": 0, "r@10": 0} for i, job in enumerate(jobs)}
    table = summary_table({"stage1": {"seed1": metrics[jobs[0]["name"]]}, "stage2": metrics}, None, jobs)
    assert table["model"].tolist() == ["seed1", "distill-seed5", "distill-seed6", "control-from-seed1-seed5",
                                       "control-from-seed1-seed6", "distill, mean of 2 seeds",
                                       "control-from-seed1, mean of 2 seeds"]
    assert table["kind"].tolist()[1:] == ["stage 2", "stage 2", "control", "control", "stage 2 mean", "control mean"]
    assert table["notes"][3] == "control of distill: from seed1, w_dist 0, w_sup 1"
    assert table.loc[5, "mAP@10"] == pytest.approx(5.0) and table.loc[6, "mAP@10"] == pytest.approx(25.0)


def truth_table(pairs):
    captions = caption_table()
    rows = [(captions["file_name"][j], captions["caption_index"][j], CLIPS[c]) for j, c in pairs]
    return pd.DataFrame(rows, columns=["file_name", "caption_index", "relevant_file_name"])


def test_oracle_targets_are_the_truth_and_put_all_mass_on_true_clips(tmp_path):
    captions = caption_table()
    own = [(j, captions["clip_index"][j]) for j in range(len(captions))]
    truth = truth_table(own + [(0, 3), (5, 1)])
    write_oracle_targets(CLIPS, captions, truth, tmp_path / "oracle.h5")
    block = EnsembleTargets(tmp_path / "oracle.h5").block(np.arange(len(CLIPS)), np.arange(len(captions)))
    expected = torch.zeros(len(CLIPS), len(captions))
    for j, c in own + [(0, 3), (5, 1)]:
        expected[c, j] = 1
    assert torch.equal(block, expected)
    mass = target_mass(tmp_path / "oracle.h5", truth, batch_size=8, tau=0.05, batches=50)
    assert mass["false_clips"] < 1e-6 and mass["own_clip"] + mass["other_true_clips"] == pytest.approx(1.0)
    assert mass["other_true_clips"] > 0
