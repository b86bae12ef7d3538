import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from scipy import stats

from audioretrieval.evaluation.sets import stacked
from audioretrieval.pipeline.study import stage2_jobs
from audioretrieval.report import plots
from audioretrieval.report.compare import (
    comparisons_table,
    comparisons_text,
    paired_bootstrap,
    realised_share,
    set_comparisons,
)
from audioretrieval.report.summary import summary_markdown, summary_table, summary_text
from audioretrieval.report.sweep import hierarchical_bootstrap, map_markdown, map_table, set_maps, start_interval


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
    table = pd.DataFrame(
        {
            "file_name": [f"c{i // 5}.wav" for i in range(len(scores))],
            "caption_index": [i % 5 + 1 for i in range(len(scores))],
            "ap@10": scores,
        }
    )
    if multi is not None:
        table["multi_ap@10"] = multi
    return table


def test_comparisons_average_the_seeds_of_a_group_and_pair_queries():
    rng = np.random.default_rng(4)
    base = rng.random(100)
    tables = {
        "seed1": per_query(base),
        "seed2": per_query(base + 0.02),
        "d-seed1": per_query(base + 0.05),
        "d-seed2": per_query(base + 0.07),
    }
    groups = {"stage 1 mean": ["seed1", "seed2"], "seed1": ["seed1"], "d": ["d-seed1", "d-seed2"]}
    table = comparisons_table(
        tables, groups, [("vs init", "d", "seed1"), ("vs mean", "d", "stage 1 mean")], ["ap@10"], resamples=500
    )
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
    tables = {
        "control": per_query(np.full(10, 0.2)),
        "est": per_query(np.full(10, 0.25)),
        "oracle": per_query(np.full(10, 0.3)),
    }
    groups = {name: [name] for name in tables}
    assert realised_share(tables, groups, "est", "control", "oracle", "ap@10") == pytest.approx(0.5)
    worse = dict(tables, oracle=per_query(np.full(10, 0.1)))
    assert np.isnan(realised_share(worse, groups, "est", "control", "oracle", "ap@10"))

    def text(tables):
        table = comparisons_table(tables, groups, [("est - control", "est", "control")], ["ap@10"], resamples=10)
        return comparisons_text(tables, groups, table, [("est", "control", "oracle")], resamples=10)

    assert "0.50 in mean ap@10\n" in text(tables)  # nothing to explain
    assert "not the randomness of training" in text(tables) and "docs/map.md" in text(tables)
    assert "nan in mean ap@10 (nan: the oracle does not beat the control)" in text(worse)
    above = dict(tables, oracle=per_query(np.full(10, 0.22)))
    assert "2.50 in mean ap@10 (above 1: the estimated targets gain more than the oracle's)" in text(above)


def test_the_summary_shows_stage2_seeds_their_mean_and_the_controls():
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config["stage2"]["runs"][0]["seeds"] = [5, 6]
    jobs = stage2_jobs(config)
    metrics = {job.name: {"map@10": 0.1 * i, "r@1": 0, "r@5": 0, "r@10": 0} for i, job in enumerate(jobs)}
    table = summary_table({"stage1": {"seed1": metrics[jobs[0].name]}, "stage2": metrics}, None, jobs)
    assert table["model"].tolist() == [
        "seed1",
        "distill-seed5",
        "distill-seed6",
        "control-from-seed1-seed5",
        "control-from-seed1-seed6",
        "distill, mean of 2 seeds",
        "control-from-seed1, mean of 2 seeds",
    ]
    assert table["kind"].tolist()[1:] == ["stage 2", "stage 2", "control", "control", "stage 2 mean", "control mean"]
    assert table["notes"][3] == "control of distill: from seed1, w_dist 0, w_sup 1"
    assert table.loc[5, "mAP@10"] == pytest.approx(5.0) and table.loc[6, "mAP@10"] == pytest.approx(25.0)


def metrics(value):
    return {"map@10": value, "r@1": value / 2, "r@5": value, "r@10": value}


def test_the_summary_lists_best_and_last_weights_of_every_run_the_seed_means_and_the_references():
    best = {
        "stage1": {"seed1": metrics(0.2), "seed2": metrics(0.3)},
        "ensembles": {"all": metrics(0.35)},
        "stage2": {"distill": metrics(0.4), "control": metrics(0.38)},
    }
    last = {
        "stage1": {"seed1": metrics(0.1), "seed2": metrics(0.2)},
        "stage2": {"distill": metrics(0.3), "control": metrics(0.3)},
    }
    reference = [
        {
            "model": "paper: stage 1",
            "map@10": 28.2,
            "r@1": 17.24,
            "r@5": 42.31,
            "r@10": 56.47,
            "compare_with": "seed1, last weights",
        }
    ]
    table = summary_table(best, last, None, reference)
    assert table["model"].tolist() == [
        "seed1",
        "seed2",
        "stage 1, mean of 2 seeds",
        "ensemble all",
        "distill",
        "control",
        "seed1",
        "seed2",
        "stage 1, mean of 2 seeds",
        "distill",
        "control",
        "paper: stage 1",
    ]
    assert table["weights"].tolist() == ["best"] * 6 + ["last"] * 5 + [""]
    means = table[table["model"] == "stage 1, mean of 2 seeds"].set_index("weights")
    assert means.loc["best", "mAP@10"] == pytest.approx(25.0) and means.loc["last", "mAP@10"] == pytest.approx(15.0)
    assert means.loc["best", "mAP@10 sd"] == pytest.approx(np.std([20, 30], ddof=1))
    assert table["notes"].iloc[-1] == "published; compare with seed1, last weights"
    markdown = summary_markdown(table)
    assert "25.00 ± 7.07" in markdown and "| 28.20" in markdown


def test_the_summary_and_comparisons_have_a_section_per_test_set_each_with_its_own_metrics():
    on_clotho = {"stage1": {"seed1": {**metrics(0.2), "dcase2025_map@16": 0.3}}, "stage2": {"d": metrics(0.4)}}
    on_audiocaps = {"stage1": {"seed1": metrics(0.5)}, "stage2": {"d": metrics(0.6)}}
    reference = [{"model": "paper: stage 1", "map@10": 28.2}]
    table = stacked(
        {
            "clothov2": summary_table(on_clotho, None, None, reference),
            "audiocaps": summary_table(on_audiocaps, None, None, []),
        }
    )
    assert table.columns[0] == "set" and table["set"].tolist() == ["clothov2"] * 3 + ["audiocaps"] * 2
    assert table.loc[table["set"] == "audiocaps", "mAP@10"].tolist() == pytest.approx([50.0, 60.0])
    assert table.loc[table["set"] == "audiocaps", "DCASE25 mAP@16"].isna().all()
    text = summary_text(table)
    clotho, audiocaps = text.split("## Text-to-audio retrieval on AudioCaps test (%)")
    assert clotho.startswith("## Text-to-audio retrieval on ClothoV2 evaluation (%)")
    assert "DCASE25 mAP@16" in clotho and "DCASE25 mAP@16" not in audiocaps and "paper: stage 1" not in audiocaps

    rng = np.random.default_rng(9)
    base = rng.random(40)
    clotho_queries = {"s": per_query(base, base), "d": per_query(base + 0.02, base + 0.01)}
    audiocaps_queries = {"s": per_query(base[:20]), "d": per_query(base[:20] + 0.04)}
    both, text = set_comparisons(
        {"clothov2": clotho_queries, "audiocaps": audiocaps_queries},
        {"s": ["s"], "d": ["d"]},
        [("d - s", "d", "s")],
        [],
        resamples=200,
    )
    assert both.columns[0] == "set" and both[["set", "metric"]].values.tolist() == [
        ["clothov2", "ap@10"],
        ["audiocaps", "ap@10"],
    ]
    assert both["difference"].tolist() == pytest.approx([2.0, 4.0]) and both["queries"].tolist() == [40, 20]
    assert "## Comparisons on ClothoV2 evaluation" in text and "## Comparisons on AudioCaps test" in text
    for figure in (plots.metric_bars(table), plots.comparison_intervals(both)):
        assert len(figure.axes) == 2  # a panel per set
        plots.plt.close(figure)


def test_the_hierarchical_interval_collapses_without_variation_and_widens_with_training_randomness():
    constant = np.full((3, 2, 400), 1.5)
    assert hierarchical_bootstrap(constant, 500) == pytest.approx(
        {"difference": 1.5, "low": 1.5, "high": 1.5, "runs_sd": 0}
    )
    rng = np.random.default_rng(0)
    queries = rng.normal(0, 2, size=(1, 1, 400))  # the same queries' noise in every run
    runs = rng.normal(0, 1.5, size=(3, 2, 1))  # one offset per start and seed: training randomness
    quiet, noisy = (
        hierarchical_bootstrap(np.broadcast_to(queries, (3, 2, 400)), 2000),
        hierarchical_bootstrap(queries + runs, 2000),
    )
    query_only = paired_bootstrap((queries + runs).mean(axis=(0, 1)), np.zeros(400), resamples=2000)
    assert quiet["runs_sd"] == 0 and noisy["runs_sd"] == pytest.approx(np.std(runs, ddof=1))
    assert noisy["high"] - noisy["low"] > 1.5 * (query_only["high"] - query_only["low"])
    assert noisy["high"] - noisy["low"] > 1.5 * (quiet["high"] - quiet["low"])
    assert noisy["difference"] == pytest.approx((queries + runs).mean())
    with pytest.raises(ValueError, match=r"expected differences \[starts, seeds, queries\]"):
        hierarchical_bootstrap(np.zeros((3, 400)), 100)


def test_the_map_pairs_each_run_with_its_control_and_start_and_reads_the_targets_quality():
    rng = np.random.default_rng(1)
    starts = {f"seed{s}": rng.random(50) * 0.5 for s in (1, 2)}
    tables = {name: per_query(scores) for name, scores in starts.items()}
    for s in (1, 2):
        for k in (7, 8):
            tables[f"c-seed{s}-seed{k}"] = per_query(starts[f"seed{s}"] + 0.01)  # the control: +1 point
            tables[f"d-seed{s}-seed{k}"] = per_query(starts[f"seed{s}"] + 0.03)  # stage 2: +3 points
            tables[f"o-seed{s}-seed{k}"] = per_query(starts[f"seed{s}"] + 0.05)
    point = {
        "labels": {"estimator": "ensemble"},
        "world": "w",
        "variant": "d",
        "ensembles": ["all", "all"],
        "targets": "estimated",
        "quality_rows": ["ensemble all", "ensemble all"],
        "target_tau": 0.05,
        "rule": "softmax",
        "weights": {"dist": 1.0, "sup": 0.0},
        "select_by": "map@10",
        "starts": ["seed1", "seed2"],
        "runs": [[f"d-seed{s}-seed{k}" for k in (7, 8)] for s in (1, 2)],
        "controls": [[f"c-seed{s}-seed{k}" for k in (7, 8)] for s in (1, 2)],
    }
    oracle = {
        **point,
        "variant": "o",
        "labels": {"estimator": "oracle"},
        "ensembles": ["oracle"] * 2,
        "targets": "oracle",
    }
    oracle.update(quality_rows=[None, None], runs=[[f"o-seed{s}-seed{k}" for k in (7, 8)] for s in (1, 2)])
    quality = pd.DataFrame(
        {
            "model": ["seed1", "ensemble all"],
            "roc_auc": [0.8, 0.9],
            "average_precision": [0.3, 0.4],
            "true_pairs": [30, 30],
            "pairs": [900, 900],
            "captions": [10, 10],
        }
    )
    mass = pd.DataFrame(
        {
            "ensemble": ["all", "all", "oracle"],
            "tau": [0.05, 0.05, 0.05],
            "rule": ["softmax", "topk(k=3)", "softmax"],
            "dist_weight": [1.0, 1.0, 1.0],
            "sup_weight": [0.0, 0.0, 0.0],
            "own_clip": [0.3, 0.5, 0.4],
            "other_true_clips": [0.3, 0.4, 0.6],
            "false_clips": [0.4, 0.1, 0.0],
            "off_own_precision": [0.43, 0.8, 1.0],
        }
    )
    table = map_table([point, oracle], {"w": tables}, {"w": quality}, {"w": mass}, resamples=300)
    row = table.iloc[0]
    assert row["ap@10 stage2-control"] == pytest.approx(2.0) and row["ap@10 stage2-start"] == pytest.approx(3.0)
    assert row["ap@10 control-start"] == pytest.approx(1.0) and row["ap@10 stage2-control runs_sd"] == pytest.approx(0)
    assert row["ap@10 oracle-control"] == pytest.approx(4.0) and row["runs"] == "2 x 2"
    assert (row["roc_auc"], row["false_clips"], row["true_clips_per_caption"]) == (0.9, 0.4, 4.0)  # its rule's row
    assert row["off_own_precision"] == 0.43 and (row["starts"], row["seeds"], row["rule"]) == (2, 2, "softmax")
    assert row["ap@10 stage2-control start_low"] == pytest.approx(2.0)  # every start gains alike: no spread
    assert row["ap@10 stage2-control starts_sd"] == pytest.approx(0, abs=1e-12)
    assert np.isnan(table.iloc[1]["roc_auc"]) and table.iloc[1]["false_clips"] == 0.0
    assert "| ensemble" in map_markdown(table, ["estimator"], 300)
    shifted = {
        name: t.assign(**{"ap@10": t["ap@10"] + (0.01 if name.startswith("d-") else 0)}) for name, t in tables.items()
    }
    both, text = set_maps(
        [point, oracle],
        {"clothov2": {"w": tables}, "audiocaps": {"w": shifted}},
        {"w": quality},
        {"w": mass},
        ["estimator"],
        300,
    )
    assert both["set"].tolist() == ["clothov2", "clothov2", "audiocaps", "audiocaps"]
    assert both["ap@10 stage2-control"].tolist() == pytest.approx([2.0, 4.0, 3.0, 4.0])
    assert text.startswith("## The map:") and "## On AudioCaps test, the map:" in text


def test_the_start_level_interval_is_the_t_interval_over_the_per_start_means():
    diff = np.zeros((4, 2, 10))
    diff += np.array([1.0, 2.0, 4.0, 5.0])[:, None, None]  # the starts' means
    diff[:, 1] += 0.5  # a seed effect within each start, and query noise that averages out
    diff += np.random.default_rng(0).standard_normal(10) - np.random.default_rng(0).standard_normal(10).mean()
    result = start_interval(diff)
    means = np.array([1.25, 2.25, 4.25, 5.25])
    half = stats.t.ppf(0.975, 3) * means.std(ddof=1) / 2
    assert result["start_low"] == pytest.approx(means.mean() - half) and result["start_high"] == pytest.approx(
        means.mean() + half
    )
    assert result["starts_sd"] == pytest.approx(means.std(ddof=1))
    assert np.isnan(start_interval(diff[:1])["start_low"])  # one start: no interval at that level
    wider = hierarchical_bootstrap(diff, 2000)
    assert wider["high"] - wider["low"] < result["start_high"] - result["start_low"]  # the bootstrap's is narrower


def test_the_map_reads_what_goes_with_the_gain_from_estimated_targets_only():
    def row(estimator, false_clips, roc_auc, gain, world="w"):
        cells = {"ap@10 start": 25.0}
        for metric in ("ap@10", "dcase2025_ap@16"):
            for contrast, value in [("stage2-control", gain), ("stage2-start", gain), ("control-start", 0.0)]:
                column = f"{metric} {contrast}"
                cells.update({column: value, f"{column} low": value - 1, f"{column} high": value + 1})
                cells[f"{column} runs_sd"] = 0.5
                cells.update({f"{column} start_low": value - 2, f"{column} start_high": value + 2})
                cells[f"{column} starts_sd"] = 0.7
        targets = "oracle" if estimator == "oracle" else "estimated"
        return {
            "estimator": estimator,
            "world": world,
            "rule": "softmax",
            "select_by": "dcase2025_map@16",
            "runs": "3 x 2",
            "target_source": targets,
            "false_clips": false_clips,
            "roc_auc": roc_auc,
            **cells,
        }

    rows = [row("a", 0.5, 0.80, -1.0), row("b", 0.3, 0.85, 0.0), row("c", 0.1, 0.90, 1.0), row("d", 0.2, np.nan, 2.0)]
    rows.append(row("oracle", 5e-8, np.nan, -9.0))  # a batch's softmax leaves the oracle a trace of false mass
    text = map_markdown(pd.DataFrame(rows), ["estimator"], 300)
    assert "across the 4 points with estimated targets" in text and "within worlds" not in text  # one world
    assert "| target's share on false clips | -0.83 | -0.83 |" in text  # the oracle's point left out
    assert "| estimates' ROC AUC | +1.00 | +1.00 |" in text  # over the 3 points whose ROC AUC is known
    assert "+1.00 [-1.00, +3.00]" in text and "[+0.00, +2.00]" in text  # the start-level and bootstrap intervals
    assert "best validation dcase2025_map@16" in text
    predictors = text.split("What goes with")[1]
    assert "nan" not in predictors and "the start's score" not in predictors  # no spread: no r
    # within worlds: a second world whose gains are the first's shifted up by 5 changes r across, not within
    shifted = [{**r, "world": "v", "false_clips": r["false_clips"] + 1} for r in rows[:4]]
    for r in shifted:
        for metric in ("ap@10", "dcase2025_ap@16"):
            r[f"{metric} stage2-control"] += 5
    text = map_markdown(pd.DataFrame(rows + shifted), ["estimator"], 300)
    within = text.split("within worlds")[1]
    assert "| target's share on false clips | -0.83 | -0.83 |" in within


def test_the_map_figure_draws_what_a_map_without_ground_truth_or_dcase_annotations_has():
    table = pd.DataFrame(
        {
            "world": ["w", "w"],
            "variant": ["a", "b"],
            "ap@10 stage2-control": [1.0, -1.0],
            "ap@10 stage2-control low": [0.0, -2.0],
            "ap@10 stage2-control high": [2.0, 0.0],
            "ap@10 control-start": [0.5, 0.7],
            "own_clip": [np.nan, np.nan],
        }
    )
    fig = plots.map_figure(table)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "control − start, AP@10 (% points)"
