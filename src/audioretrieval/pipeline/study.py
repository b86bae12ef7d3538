"""The study a configuration describes, expanded once into plain values: the stage-1 runs, the
stage-2 jobs (runs × seeds, their controls, the demo's oracle), what the comparisons pair and what
the target-mass table breaks down. Every default is resolved here (a run's target temperature is
model.tau unless it says otherwise), so the rules and the library receive settled values."""

from __future__ import annotations

from audioretrieval.correspondences.captions import ESTIMATOR as CAPTIONS

ORACLE = "oracle"  # the ensemble name of the demo's ground-truth targets


def stage1_runs(config: dict) -> list[str]:
    """The stage-1 runs, one per seed: seed{N}."""
    return [f"seed{seed}" for seed in config["stage1"]["seeds"]]


def seed_of(run: str) -> int:
    return int(run.removeprefix("seed"))


def control_family(init: int) -> str:
    """The name of the control runs of every stage-2 run that starts from stage-1 seed `init`."""
    return f"control-from-seed{init}"


def _job(run: dict, name: str, family: str, seed: int, dist_weight: float, sup_weight: float, target_tau) -> dict:
    return {
        "name": f"{name}-seed{seed}",
        "family": family,
        "init": run["init"],
        "seed": seed,
        "control_of": [],
        "ensemble": run["ensemble"] if dist_weight else None,
        "dist_weight": dist_weight,
        "sup_weight": sup_weight,
        "target_tau": target_tau if dist_weight else None,
    }


def stage2_jobs(config: dict) -> list[dict]:
    """Every stage-2 training job: each configured run once per seed, named `{name}-seed{N}`, and for
    runs with `control: true` the controls `control-from-seed{init}-seed{N}`: the same training with
    dist_weight 0 and sup_weight 1 (the same extra epochs with the ordinary contrastive loss). A
    control depends only on its start and seed, so runs that share both share one control job. Each
    job: name, family (its run, or its control family), init, seed, control_of (the runs a control
    serves), ensemble (None without distillation), dist_weight, sup_weight, target_tau (the
    targets' temperature: the run's, else model.tau; None without distillation)."""
    tau = config["model"]["tau"]
    runs = config["stage2"]["runs"]
    jobs = [
        _job(run, run["name"], run["name"], seed, run["dist_weight"], run["sup_weight"], run["target_tau"] or tau)
        for run in runs
        for seed in run["seeds"]
    ]
    controls: dict[str, dict] = {}
    for run in (run for run in runs if run["control"]):
        family = control_family(run["init"])
        for seed in run["seeds"]:
            job = controls.setdefault(f"{family}-seed{seed}", _job(run, family, family, seed, 0.0, 1.0, None))
            job["control_of"].append(run["name"])
    return jobs + list(controls.values())


def training_params(job: dict) -> dict:
    """What a stage-2 job's training depends on beyond its input files: a control's mention no
    targets (so changing them does not rerun it)."""
    return {
        "seed": job["seed"],
        "loss_weights": {"dist": job["dist_weight"], "sup": job["sup_weight"]},
        "target_tau": job["target_tau"],
    }


def uses_oracle(jobs: list[dict]) -> bool:
    return any(job["ensemble"] == ORACLE for job in jobs)


def member_seeds(members: list) -> list[int]:
    """The stage-1 seeds among an ensemble's members (the others name the caption estimator)."""
    return [m for m in members if m != CAPTIONS]


def uses_captions(config: dict) -> bool:
    """Whether an ensemble takes the caption estimator (correspondences.captions) as a member."""
    return any(CAPTIONS in members for members in config["correspondences"]["ensembles"].values())


def multi_member_ensembles(config: dict) -> list[str]:
    """The ensembles of several members, shown in the quality table (an ensemble of one is its member)."""
    return [name for name, members in config["correspondences"]["ensembles"].items() if len(members) > 1]


def quality_row(ensemble: str, members: list) -> str:
    """The row of the correspondence quality table that shows an ensemble's estimates: its member's
    own row for an ensemble of one (seed{N}, or the caption estimator's), else `ensemble {name}`."""
    if len(members) > 1:
        return f"ensemble {ensemble}"
    return CAPTIONS if members[0] == CAPTIONS else f"seed{members[0]}"


def retrieval_ensembles(config: dict) -> list[str]:
    """The ensembles scored as retrieval models on the evaluation split: several stage-1 models and
    nothing else (the caption estimator needs the captions of the clips it scores)."""
    ensembles = config["correspondences"]["ensembles"]
    return [name for name in multi_member_ensembles(config) if CAPTIONS not in ensembles[name]]


def example_ensemble(config: dict) -> str:
    """The ensemble whose estimates the report's figure shows: the first stage-2 run's, else the first."""
    estimated = [run["ensemble"] for run in config["stage2"]["runs"] if run["ensemble"] != ORACLE]
    return estimated[0] if estimated else next(iter(config["correspondences"]["ensembles"]))


def comparison_groups(config: dict, jobs: list[dict]) -> tuple[dict, list, list]:
    """What the comparisons table averages and pairs: groups of models (the seeds of each stage-2
    run, the stage-1 runs), (what, group, baseline) pairs, and (estimated, control, oracle) triples
    whose share of the possible gain it states."""
    groups = {"stage 1 mean": stage1_runs(config)}
    first: dict[str, dict] = {}
    for job in jobs:
        groups.setdefault(job["family"], []).append(job["name"])
        groups.setdefault(f"stage 1 seed{job['init']}", [f"seed{job['init']}"])
        first.setdefault(job["family"], job)
    pairs, shares = [], []
    for family, job in first.items():
        if job["control_of"]:
            continue
        control = control_family(job["init"]) if control_family(job["init"]) in groups else None
        if control:
            pairs.append(("stage 2 - control", family, control))
        pairs.append(("stage 2 - its initial stage-1 model", family, f"stage 1 seed{job['init']}"))
        pairs.append(("stage 2 - mean of stage 1", family, "stage 1 mean"))
        oracles = [f for f, j in first.items() if j["ensemble"] == ORACLE and j["init"] == job["init"]]
        if control and oracles and job["ensemble"] != ORACLE:
            shares.append((family, control, oracles[0]))
    return groups, pairs, shares


def target_mass_rows(config: dict, jobs: list[dict]) -> list[dict]:
    """The targets whose mass the demo's anatomy table breaks down: every ensemble at the model's
    temperature, and each (ensemble, target temperature) a stage-2 job distils from (the oracle's
    included)."""
    tau = config["model"]["tau"]
    rows = {(name, tau) for name in config["correspondences"]["ensembles"]}
    rows |= {(job["ensemble"], job["target_tau"]) for job in jobs if job["dist_weight"]}
    return [{"ensemble": name, "tau": t} for name, t in sorted(rows)]
