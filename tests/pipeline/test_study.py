"""The study a configuration describes: runs, seeds, controls, the oracle, comparisons, target-mass
rows, and every default resolved once (audioretrieval.pipeline.study), and the checks of the
configuration that its schema cannot express."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, check_at_load
from snakemake.exceptions import WorkflowError

from audioretrieval.pipeline import study
from audioretrieval.pipeline.config import ConfigError, check_config
from audioretrieval.pipeline.study import stage2_jobs


def demo_config():
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


def test_a_control_is_its_run_with_only_the_loss_weights_changed_and_runs_from_one_start_share_it():
    config = demo_config()
    config["stage2"]["runs"][0].update(seeds=[5, 6], target_tau=0.1)
    config["stage2"]["runs"].append({**config["stage2"]["runs"][0], "name": "other", "seeds": [6, 7]})
    jobs = {job.name: job for job in stage2_jobs(config)}
    assert sorted(jobs) == [
        "control-from-seed1-seed5",
        "control-from-seed1-seed6",
        "control-from-seed1-seed7",
        "distill-seed5",
        "distill-seed6",
        "other-seed6",
        "other-seed7",
    ]
    assert jobs["control-from-seed1-seed6"].control_of == ("distill", "other")
    for seed in (5, 6):
        run, control = jobs[f"distill-seed{seed}"], jobs[f"control-from-seed1-seed{seed}"]
        assert (control.dist_weight, control.sup_weight) == (0.0, 1.0) and control.init == run.init
        assert control.seed == run.seed and control.ensemble is None and control.target_tau is None
    config["stage2"]["runs"][0]["control"] = config["stage2"]["runs"][1]["control"] = False
    assert [job.name for job in stage2_jobs(config)] == [
        "distill-seed5",
        "distill-seed6",
        "other-seed6",
        "other-seed7",
    ]


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: (
                c["stage2"]["runs"][0].update(ensemble="oracle"),
                c["data"].update(source="clotho"),
                c["evaluation"].update(sets=["clothov2"]),  # not the demo's AudioCaps stand-in: ClothoV2 alone
            ),
            "'oracle' targets come from the demo's ground truth",
        ),
        (lambda c: c["correspondences"]["ensembles"].update(oracle=[1]), "'oracle' is reserved"),
        (
            lambda c: c["evaluation"].update(relevance_url="http://x/y.csv"),
            "the demo scores multi-positive mAP against its own",
        ),
        (lambda c: c["stage2"]["runs"].append(copy.deepcopy(c["stage2"]["runs"][0])), "job names must be unique"),
    ],
)
def test_stage2_config_mistakes_name_the_key(edit, message):
    config = demo_config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


STUDY_RUNS = [
    {
        "name": "distill",
        "init": 1,
        "ensemble": "all",
        "seeds": [11, 12],
        "dist_weight": 1.0,
        "sup_weight": 0.0,
        "target_tau": None,
        "control": True,
    },
    {
        "name": "self_distill",
        "init": 1,
        "ensemble": "seed1",
        "seeds": [11, 12],
        "dist_weight": 1.0,
        "sup_weight": 0.0,
        "target_tau": None,
        "control": True,
    },
    {
        "name": "oracle",
        "init": 1,
        "ensemble": "oracle",
        "seeds": [11, 12],
        "dist_weight": 1.0,
        "sup_weight": 0.0,
        "target_tau": None,
        "control": False,
    },
]


def study_config():
    """Stage 2 from seed 1 with two seeds, from the ensemble's targets and from seed 1's own, one
    shared control, and the oracle."""
    config = demo_config()
    config["stage2"]["runs"] = copy.deepcopy(STUDY_RUNS)
    config["correspondences"]["ensembles"] = {"all": [1, 2, 3], "seed1": [1]}
    return config


def test_stage1_runs_are_one_per_seed():
    config = demo_config()
    assert study.stage1_runs(config) == [f"seed{s}" for s in config["stage1"]["seeds"]]
    assert [study.seed_of(run) for run in study.stage1_runs(config)] == config["stage1"]["seeds"]


def test_runs_of_other_encoders_are_named_by_their_encoder_and_train_its_audio_settings():
    config = demo_config()
    mn = {"family": "mn", "pretrained": False, "weights": None, "width_mult": 0.2, "window_s": 3.0, "hop_s": 3.0}
    config["stage1"]["encoders"] = {"mn": {"seeds": [1, 4], "audio": mn}}
    assert study.encoder_runs(config) == ["mn-seed1", "mn-seed4"]
    assert [study.seed_of(run) for run in study.encoder_runs(config)] == [1, 4]
    assert study.run_model(config, "mn-seed4") == {**config["model"], "audio": mn}
    assert study.run_model(config, "seed1") is config["model"]
    assert study.stage1_runs(config) == [f"seed{s}" for s in config["stage1"]["seeds"]]  # stage 2's starts
    members = [1, "mn-seed1", "captions:paired"]
    assert study.member_seeds(members) == [1] and study.member_encoder_runs(members) == ["mn-seed1"]


def test_the_targets_temperature_and_rule_default_to_the_papers_once_and_controls_have_none():
    config = study_config()
    config["stage2"]["runs"][2].update(target_tau=0.02, target_rule={"name": "topk", "k": 3})
    jobs = {job.name: job for job in stage2_jobs(config)}
    assert jobs["distill-seed11"].target_tau == config["model"]["tau"]  # null in the configuration
    assert jobs["oracle-seed11"].target_tau == 0.02 and jobs["oracle-seed11"].target_rule == {"name": "topk", "k": 3}
    assert jobs["control-from-seed1-seed11"].target_tau is None
    assert study.training_params(jobs["control-from-seed1-seed11"]) == {
        "seed": 11,
        "loss_weights": {"dist": 0.0, "sup": 1.0},
        "target_tau": None,
        "target_rule": None,
    }
    assert study.training_params(jobs["distill-seed12"]) == {
        "seed": 12,
        "loss_weights": {"dist": 1.0, "sup": 0.0},
        "target_tau": config["model"]["tau"],
        "target_rule": {"name": "softmax"},  # absent in the configuration: the paper's
    }


def test_the_oracle_is_used_only_where_a_run_distils_from_it():
    config = study_config()
    assert study.uses_oracle(stage2_jobs(config))
    config["stage2"]["runs"] = config["stage2"]["runs"][:1]
    assert not study.uses_oracle(stage2_jobs(config))


def test_comparisons_pair_each_run_with_its_control_its_start_and_stage1_and_state_the_oracles_share():
    config = study_config()
    groups, pairs, shares = study.comparison_groups(config, stage2_jobs(config))
    assert groups == {
        "stage 1 mean": ["seed1", "seed2", "seed3"],
        "distill": ["distill-seed11", "distill-seed12"],
        "stage 1 seed1": ["seed1"],
        "self_distill": ["self_distill-seed11", "self_distill-seed12"],
        "oracle": ["oracle-seed11", "oracle-seed12"],
        "control-from-seed1": ["control-from-seed1-seed11", "control-from-seed1-seed12"],
    }
    assert pairs == [
        (comparison, run, other)
        for run in ("distill", "self_distill", "oracle")
        for comparison, other in (
            ("stage 2 - control", "control-from-seed1"),
            ("stage 2 - its initial stage-1 model", "stage 1 seed1"),
            ("stage 2 - mean of stage 1", "stage 1 mean"),
        )
    ]
    assert shares == [("distill", "control-from-seed1", "oracle"), ("self_distill", "control-from-seed1", "oracle")]
    for run in config["stage2"]["runs"]:
        run["control"] = False  # no control: nothing to pair with it, no share
    groups, pairs, shares = study.comparison_groups(config, stage2_jobs(config))
    assert "control-from-seed1" not in groups and shares == []
    assert ("stage 2 - control", "distill", "control-from-seed1") not in pairs


def test_target_mass_rows_are_every_ensemble_and_each_target_a_runs_loss_trains_towards():
    config = study_config()
    config["correspondences"]["ensembles"]["captions"] = ["captions"]
    config["stage2"]["runs"] += [
        {**config["stage2"]["runs"][0], "name": "sharp", "target_tau": 0.02, "control": False},
        {**config["stage2"]["runs"][0], "name": "mixed", "dist_weight": 0.5, "sup_weight": 0.5, "control": False},
        {
            **config["stage2"]["runs"][0],
            "name": "gated",
            "target_rule": {"name": "agreement", "agree_with": "captions", "k": 8},
            "control": False,
        },
    ]
    tau = config["model"]["tau"]
    rows = study.target_mass_rows(config, stage2_jobs(config))
    assert [(r["ensemble"], r["tau"], r["rule"], r["dist_weight"], r["sup_weight"]) for r in rows] == [
        ("all", 0.02, "softmax", 1.0, 0.0),
        ("all", tau, "agreement(agree_with=captions, k=8)", 1.0, 0.0),
        ("all", tau, "softmax", 0.5, 0.5),
        ("all", tau, "softmax", 1.0, 0.0),
        ("captions", tau, "softmax", 1.0, 0.0),
        ("oracle", tau, "softmax", 1.0, 0.0),
        ("seed1", tau, "softmax", 1.0, 0.0),
    ]
    assert rows[1]["rule_ensembles"] == {"agree_with": "captions"} and rows[0]["rule_ensembles"] == {}


def test_ensembles_of_one_member_are_not_scored_on_their_own_and_the_figure_shows_the_first_estimated():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert study.multi_member_ensembles(config) == ["all", "all_captions", "mixed"]  # seed409194 alone is that model
    assert study.retrieval_ensembles(config) == ["all", "mixed"]  # the caption estimator cannot rank evaluation clips
    assert study.quality_row("all_captions", [1, "captions"]) == "ensemble all_captions"
    rows = [study.quality_row(name, [member]) for name, member in [("x", 4), ("y", "captions"), ("z", "mn-seed1")]]
    assert rows == ["seed4", "captions", "mn-seed1"]
    assert study.example_ensemble(config) == "seed409194"  # the first stage-2 run's
    assert study.example_ensemble(study_config()) == "all"


AUDIOCAPS_FILES = {"captions_csv": "train.csv", "test_captions_csv": "test.csv", "audio_dir": "audio"}
FULL_DEMO = yaml.safe_load((REPO / "config" / "demo_full.yaml").read_text())
MN = {"family": "mn", "pretrained": False, "weights": None, "width_mult": 0.2, "window_s": 1.0, "hop_s": 1.0}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["data"].update(decode_thread=2), "'decode_thread' was unexpected"),
        (lambda c: c["data"].update(sample_rate=44100), "32000 was expected"),  # the stored rate, no other
        (lambda c: c["demo"]["clips"].pop("evaluation"), "'evaluation' is a required property"),
        (lambda c: c["demo"].update(min_duration_s=9.0), "demo.min_duration_s (9.0) must not exceed"),
        (lambda c: c.pop("demo"), "'demo' is a required property"),
        (
            lambda c: (c.pop("audiocaps"), c["stage1"].update(train_on="all")),
            "stage1.train_on is all, but none of audiocaps, wavcaps or extra_tables is configured",
        ),
        (
            lambda c: c["audiocaps"].update(file_name="{video}.wav"),
            "audiocaps.file_name '{video}.wav': expected a file name (no folder: set audiocaps.audio_dir) "
            "using {youtube_id}",
        ),
        (
            lambda c: (
                c["audiocaps"].update(FULL_DEMO["audiocaps"]),
                c.update(wavcaps=FULL_DEMO["wavcaps"]),
                c["demo"]["extra"].update(FULL_DEMO["demo"]["extra"]),
                c["stage1"].update(train_on="all"),
                c["data"].update(sample_format="float32"),
            ),
            "the sets stage 1 trains on together must all be float32 or none",
        ),
        (
            lambda c: (c.update(wavcaps={**FULL_DEMO["wavcaps"], "sources": ["FreeSound"]}), c["demo"].pop("extra")),
            "demo.extra must give the stand-ins' sizes",
        ),
        (
            lambda c: c["evaluation"].update(sets=["audiocaps", "clothov2"]),
            "evaluation.sets ['audiocaps', 'clothov2']: the first set must be the main dataset's evaluation split, "
            "'clothov2' (data.source demo)",
        ),
        (
            lambda c: c["evaluation"].update(sets=["clothov2", "table"]),
            "evaluation.sets: ['table'] cannot be a further test set; expected any of ['audiocaps']",
        ),
        (
            lambda c: (c["evaluation"].update(sets=["clothov2", "audiocaps"]), c.pop("audiocaps")),
            "evaluation.sets names audiocaps, but there is no audiocaps section",
        ),
        (
            lambda c: c["audiocaps"].update(test_captions_url="https://example.org/test.csv"),
            "audiocaps.test_captions_url is set, but the demo generates its AudioCaps stand-in",
        ),
        (
            lambda c: (
                c["evaluation"].update(sets=["clothov2", "audiocaps"]),
                c["audiocaps"].update(file_name="{audiocap_id}_{youtube_id}.wav"),
            ),
            "audiocaps.file_name '{audiocap_id}_{youtube_id}.wav': {audiocap_id} names a caption, and a test clip "
            "has five",
        ),
        (
            lambda c: c["evaluation"].update(sets=["clothov2", "audiocaps"]),  # the tiny demo's raw_dir is elsewhere
            "audiocaps.captions_csv 'results/demo/raw/audiocaps/train.csv' is outside",
        ),
        (
            lambda c: (
                c["evaluation"].update(sets=["clothov2", "audiocaps"]),
                c["audiocaps"].update(
                    {k: str(Path(c["data"]["raw_dir"]) / "audiocaps" / v) for k, v in AUDIOCAPS_FILES.items()}
                ),
                c["demo"]["extra"].update(audiocaps_leaked=41),
            ),
            "demo.extra: audiocaps_leaked (41) exceeds audiocaps_test_clips (40)",
        ),
        (
            lambda c: c["correspondences"]["ensembles"].update(mixed=[1, "mn-seed2"]),
            "correspondences.ensembles.mixed: ['mn-seed2'] are not runs of stage1.encoders (none configured)",
        ),
        (
            lambda c: c["stage1"].update(
                encoders={"mn": {"seeds": [1], "audio": {**MN, "window_s": 5.0, "hop_s": 5.0}}}
            ),
            "train: segment_s (2.0) must be at least stage1.encoders.mn.audio.window_s (5.0)",
        ),
        (
            lambda c: c["stage1"].update(encoders={"mn": {"seeds": [1], "audio": {**MN, "depth": 2}}}),
            "'depth' was unexpected",
        ),
        (
            lambda c: c["stage1"].update(encoders={"mn-2": {"seeds": [1], "audio": MN}}),
            "'mn-2' does not match",
        ),
        (
            lambda c: (
                c.update(wavcaps={**FULL_DEMO["wavcaps"], "sources": ["FreeSound"]}),
                c["demo"]["extra"].update(FULL_DEMO["demo"]["extra"]),
            ),
            "wavcaps.sources ['FreeSound'] must be the sources "
            "demo.extra.wavcaps_clips generates ['FreeSound', 'SoundBible']",
        ),
    ],
)
def test_config_mistakes_are_refused_at_load_naming_the_key(tiny_demo_config, edit, message):
    edit(tiny_demo_config)
    with pytest.raises((ConfigError, WorkflowError), match=re.escape(message)):
        check_at_load(tiny_demo_config)


@pytest.mark.parametrize(
    "edit, messages",
    [
        (
            lambda c: c["stage2"]["train"].update(epochs="abc"),
            ["'abc' is not of type 'integer'", "['stage2']['train']['epochs']"],
        ),
        (lambda c: c["stage2"]["train"].update(lr=5), ["5 is not of type 'object'", "['stage2']['train']['lr']"]),
        (lambda c: c["stage2"]["train"].update(epoch=3), ["'epoch' was unexpected"]),
        (
            lambda c: c["stage2"]["train"].update(rampdown_stop=0.5),
            ["stage2.train over train: expected warmup_epochs (1) <= rampdown_start (1) <= rampdown_stop (0.5)"],
        ),
        (
            lambda c: c["data"].update(md5={"clotho_audio_development.7z": "not an md5"}),
            ["'not an md5' does not match"],
        ),
    ],
)
def test_the_paper_configs_stage2_settings_and_md5s_are_checked_at_load(edit, messages):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    edit(config)
    with pytest.raises((WorkflowError, ConfigError)) as raised:
        check_at_load(config)
    for message in messages:
        assert message in str(raised.value)
