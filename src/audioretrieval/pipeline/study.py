"""The study a configuration describes, expanded once into plain values: the stage-1 runs, the
stage-2 jobs (runs × seeds, their controls, the demo's oracle), what the comparisons pair and what
the target-mass table breaks down. Every default is resolved here (a run's target temperature is
model.tau unless it says otherwise), so the rules and the library receive settled values."""

from __future__ import annotations

from dataclasses import dataclass

from audioretrieval.correspondences import CAPTIONS, is_caption_member, member_aggregation, target_rules

ORACLE = "oracle"  # the ensemble name of the demo's ground-truth targets
OTHERS = "others"  # map.run ensemble: each start's ensemble of the map's other starts (not containing it)


def stage1_run(member: int | str) -> str:
    """The name of a stage-1 run (and of the ensemble of that model alone): seed{N} for a seed of
    model.audio, the member itself for a run of another encoder ({encoder}-seed{N}, stage1.encoders)."""
    return member if isinstance(member, str) else f"seed{member}"


def stage1_runs(config: dict) -> list[str]:
    """The stage-1 runs of model.audio, one per seed: seed{N} (the starts of stage 2)."""
    return [stage1_run(seed) for seed in config["stage1"]["seeds"]]


def encoder_run(encoder: str, seed: int) -> str:
    """A stage-1 run of another audio encoder (stage1.encoders): an ensemble member only."""
    return f"{encoder}-seed{seed}"


def encoder_runs(config: dict) -> list[str]:
    """The stage-1 runs of the other audio encoders (stage1.encoders), {encoder}-seed{N}."""
    encoders = config["stage1"].get("encoders", {})
    return [encoder_run(name, seed) for name, spec in encoders.items() for seed in spec["seeds"]]


def encoder_of(run: str) -> str | None:
    """The stage1.encoders entry a stage-1 run trains (None: model.audio)."""
    return run.rsplit("-seed", 1)[0] if "-" in run else None


def run_model(config: dict, run: str) -> dict:
    """The model settings of a stage-1 run: model, with its encoder's audio settings for a run of
    stage1.encoders."""
    encoder = encoder_of(run)
    if encoder is None:
        return config["model"]
    return {**config["model"], "audio": config["stage1"]["encoders"][encoder]["audio"]}


def job_name(family: str, seed: int) -> str:
    """A stage-2 job: its run (or control family) and seed."""
    return f"{family}-seed{seed}"


def target_tau(run: dict, tau: float) -> float:
    """The temperature of a run's targets: its own, else the model's."""
    return run["target_tau"] or tau


def seed_of(run: str) -> int:
    return int(run.rsplit("seed", 1)[1])


def control_family(init: int) -> str:
    """The name of the control runs of every stage-2 run that starts from stage-1 seed `init`."""
    return f"control-from-seed{init}"


@dataclass(frozen=True)
class Stage2Job:
    """One stage-2 training job: `name` ({run}-seed{N}, or a control's), `family` (its run, or its
    control family), `init` (the stage-1 seed it starts from), `seed`, `control_of` (the runs a control
    serves), `ensemble` (None without distillation), the loss weights, `target_tau` (the targets'
    temperature: the run's, else model.tau; None without distillation) and `target_rule` (how scores
    become targets, correspondences.target_rules: the run's, else softmax; None without distillation)."""

    name: str
    family: str
    init: int
    seed: int
    ensemble: str | None
    dist_weight: float
    sup_weight: float
    target_tau: float | None
    target_rule: dict | None = None
    control_of: tuple[str, ...] = ()

    @property
    def rule_ensembles(self) -> dict[str, str]:
        """The ensembles the job's target rule reads beside its own: setting -> ensemble."""
        return rule_ensembles(self.target_rule)


def _run_job(run: dict, seed: int, tau: float) -> Stage2Job:
    distils = bool(run["dist_weight"])
    return Stage2Job(
        name=job_name(run["name"], seed),
        family=run["name"],
        init=run["init"],
        seed=seed,
        ensemble=run["ensemble"] if distils else None,
        dist_weight=run["dist_weight"],
        sup_weight=run["sup_weight"],
        target_tau=target_tau(run, tau) if distils else None,
        target_rule=dict(run.get("target_rule") or target_rules.DEFAULT) if distils else None,
    )


def rule_ensembles(rule: dict | None) -> dict[str, str]:
    """The ensembles a target rule's settings name: setting -> ensemble (none for most rules)."""
    if not rule:
        return {}
    return {key: rule[key] for key in target_rules.RULES[rule["name"]].estimators}


def stage2_jobs(config: dict) -> list[Stage2Job]:
    """Every stage-2 training job: each configured run once per seed, named `{name}-seed{N}`, and for
    runs with `control: true` the controls `control-from-seed{init}-seed{N}`: the same training with
    dist_weight 0 and sup_weight 1 (the same extra epochs with the ordinary contrastive loss). A
    control depends only on its start and seed, so runs that share both share one control job."""
    tau = config["model"]["tau"]
    runs = config["stage2"]["runs"]
    jobs = [_run_job(run, seed, tau) for run in runs for seed in run["seeds"]]
    served: dict[tuple[int, int], list[str]] = {}
    for run in (run for run in runs if run["control"]):
        for seed in run["seeds"]:
            served.setdefault((run["init"], seed), []).append(run["name"])
    controls = [
        Stage2Job(
            name=job_name(control_family(init), seed),
            family=control_family(init),
            init=init,
            seed=seed,
            ensemble=None,
            dist_weight=0.0,
            sup_weight=1.0,
            target_tau=None,
            control_of=tuple(names),
        )
        for (init, seed), names in served.items()
    ]
    return jobs + controls


def training_params(job: Stage2Job) -> dict:
    """What a stage-2 job's training depends on beyond its input files: a control's mention no
    targets (so changing them does not rerun it)."""
    return {
        "seed": job.seed,
        "loss_weights": {"dist": job.dist_weight, "sup": job.sup_weight},
        "target_tau": job.target_tau,
        "target_rule": job.target_rule,
    }


def stage2_train(config: dict) -> dict:
    """The training settings of stage 2: `train` with the keys stage2.train changes."""
    return {**config["train"], **config["stage2"]["train"]}


def uses_oracle(jobs: list[Stage2Job]) -> bool:
    return any(job.ensemble == ORACLE for job in jobs)


def member_seeds(members: list) -> list[int]:
    """The seeds of model.audio among an ensemble's members (the others name the caption estimator
    or runs of other encoders)."""
    return [m for m in members if isinstance(m, int)]


def member_encoder_runs(members: list) -> list[str]:
    """The runs of other audio encoders (stage1.encoders) among an ensemble's members."""
    return [m for m in members if isinstance(m, str) and not is_caption_member(m)]


def uses_captions(config: dict) -> bool:
    """Whether an ensemble takes the caption estimator (correspondences.captions) as a member."""
    return any(is_caption_member(m) for members in config["correspondences"]["ensembles"].values() for m in members)


def caption_aggregation(members: list) -> str | None:
    """The aggregation an ensemble's caption member names (`captions:paired`), if it names one."""
    return next((member_aggregation(m) for m in members if member_aggregation(m)), None)


def has_own_row(members: list) -> bool:
    """Whether an ensemble's estimates differ from those of its one member's own file: several
    members, or a caption member with an aggregation of its own."""
    return len(members) > 1 or caption_aggregation(members) is not None


def multi_member_ensembles(config: dict) -> list[str]:
    """The ensembles shown in the quality table by their own row (has_own_row; an ensemble of one
    plain member is that member)."""
    return [name for name, members in config["correspondences"]["ensembles"].items() if has_own_row(members)]


def quality_row(ensemble: str, members: list) -> str:
    """The row of the correspondence quality table that shows an ensemble's estimates: its member's
    own row for an ensemble of one (seed{N}, or the caption estimator's), else `ensemble {name}`."""
    if has_own_row(members):
        return f"ensemble {ensemble}"
    return CAPTIONS if members[0] == CAPTIONS else stage1_run(members[0])


def retrieval_ensembles(config: dict) -> list[str]:
    """The ensembles scored as retrieval models on the evaluation split: several stage-1 models and
    nothing else (the caption estimator needs the captions of the clips it scores)."""
    ensembles = config["correspondences"]["ensembles"]
    return [name for name in multi_member_ensembles(config) if not any(is_caption_member(m) for m in ensembles[name])]


def example_ensemble(config: dict) -> str:
    """The ensemble whose estimates the report's figure shows: the first stage-2 run's, else the first."""
    estimated = [run["ensemble"] for run in config["stage2"]["runs"] if run["ensemble"] != ORACLE]
    return estimated[0] if estimated else next(iter(config["correspondences"]["ensembles"]))


def comparison_groups(config: dict, jobs: list[Stage2Job]) -> tuple[dict, list, list]:
    """What the comparisons table averages and pairs: groups of models (the seeds of each stage-2
    run, the stage-1 runs), (what, group, baseline) pairs, and (estimated, control, oracle) triples
    whose share of the possible gain it states."""
    groups = {"stage 1 mean": stage1_runs(config)}
    first: dict[str, Stage2Job] = {}
    for job in jobs:
        groups.setdefault(job.family, []).append(job.name)
        groups.setdefault(f"stage 1 {stage1_run(job.init)}", [stage1_run(job.init)])
        first.setdefault(job.family, job)
    pairs, shares = [], []
    for family, job in first.items():
        if job.control_of:
            continue
        control = control_family(job.init) if control_family(job.init) in groups else None
        if control:
            pairs.append(("stage 2 - control", family, control))
        pairs.append(("stage 2 - its initial stage-1 model", family, f"stage 1 seed{job.init}"))
        pairs.append(("stage 2 - mean of stage 1", family, "stage 1 mean"))
        oracles = [f for f, j in first.items() if j.ensemble == ORACLE and j.init == job.init]
        if control and oracles and job.ensemble != ORACLE:
            shares.append((family, control, oracles[0]))
    return groups, pairs, shares


def target_mass_rows(config: dict, jobs: list[Stage2Job]) -> list[dict]:
    """The targets whose mass the demo's anatomy table breaks down: every ensemble as the paper's
    rule makes it at the model's temperature (L_dist alone), and each target that a stage-2 job's loss
    trains towards (its ensemble, temperature, rule and loss weights; the oracle's included). A row:
    ensemble, tau, rule (target_rules.label), dist_weight, sup_weight, rule_ensembles."""
    tau = config["model"]["tau"]
    rows = [
        mass_row(name, tau, dict(target_rules.DEFAULT), 1.0, 0.0) for name in config["correspondences"]["ensembles"]
    ]
    rows += [
        mass_row(job.ensemble, job.target_tau, job.target_rule, job.dist_weight, job.sup_weight)
        for job in jobs
        if job.dist_weight
    ]
    unique = {(r["ensemble"], r["tau"], r["rule"], r["dist_weight"], r["sup_weight"]): r for r in rows}
    return [unique[key] for key in sorted(unique)]


def mass_row(ensemble: str, tau: float, rule: dict, dist_weight: float, sup_weight: float) -> dict:
    """One row of the target-mass table: what the loss of a run with these settings trains towards."""
    return {
        "ensemble": ensemble,
        "tau": tau,
        "rule": target_rules.label(rule),
        "dist_weight": dist_weight,
        "sup_weight": sup_weight,
        "rule_settings": rule,
        "rule_ensembles": rule_ensembles(rule),
    }
