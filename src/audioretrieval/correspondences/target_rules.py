"""Target rules: how an estimator's scores for a batch become the distributions L_dist trains towards.

This module is the one owner of "scores -> a batch's target distribution": training, the demo's
target-mass table and the map's quality columns all call it, and nothing else turns scores into
targets (tests/correspondences/test_target_rules.py holds the library to that).

A rule sees one batch: `scores` [B audios, B captions] (the estimator's block for the batch's clips
and captions), `own` [B, B] (audio i and caption j come from the same clip) and the dimension `dim`
whose entries it distributes over: dim 0 gives each caption's target over the batch's audios
(text-to-audio), dim 1 each audio's target over the batch's captions (audio-to-text). It returns
non-negative values that sum to 1 along `dim`. Every rule is written once for both directions.

A rule is a function registered under its name with `@target_rule(name)` plus its entry in
config/schema.yaml (`$defs/target_rule`); its keyword parameters are the rule's settings
(`stage2.runs[].target_rule`, a run axis of the map). A parameter listed in `estimators` names
another ensemble of correspondences.ensembles: the pipeline makes that ensemble's targets an input
of the job, and the rule receives its scores for the same batch in place of the name.
docs/extending.md says how to add one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

DEFAULT = {"name": "softmax"}  # the paper's rule: softmax(S / tau) over the batch


@dataclass(frozen=True)
class RuleDefinition:
    function: Callable[..., torch.Tensor]
    estimators: tuple[str, ...] = ()  # parameters naming another ensemble whose scores the rule reads

    @property
    def parameters(self) -> list[str]:
        """The rule's own settings (beyond scores, own, dim and tau)."""
        return [name for name in inspect.signature(self.function).parameters if name not in _GIVEN]


_GIVEN = ("scores", "own", "dim", "tau")
RULES: dict[str, RuleDefinition] = {}


def target_rule(name: str, estimators: tuple[str, ...] = ()):
    """Register a rule `function(scores, own, dim, tau, **settings)` under `name`."""

    def register(function):
        RULES[name] = RuleDefinition(function, estimators)
        return function

    return register


def _uniform_over_own(own: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    own = own.to(dtype)
    return own / own.sum(dim, keepdim=True)


def _softmax_within(scores: torch.Tensor, keep: torch.Tensor, dim: int, tau: float) -> torch.Tensor:
    """softmax(scores / tau) along `dim` over the kept entries only (the others get 0)."""
    return torch.softmax((scores / tau).masked_fill(~keep, -torch.inf), dim)


def _own_and_best_others(ranking: torch.Tensor, own: torch.Tensor, dim: int, k: int) -> torch.Tensor:
    """The own entries and the k others that rank highest by `ranking` along `dim` (all when fewer)."""
    others = ranking.masked_fill(own, -torch.inf)
    best = others.topk(min(k, others.shape[dim]), dim).indices
    return own | torch.zeros_like(own).scatter(dim, best, True)


@target_rule("softmax")
def softmax_rule(scores, own, dim, tau):
    """The paper's: softmax(S / tau) over the batch."""
    return torch.softmax(scores / tau, dim)


@target_rule("split")
def split_rule(scores, own, dim, tau, own_share):
    """own_share on the own clip (shared by its entries), the rest as softmax(S / tau) over the other
    clips: how much stays on the own clip and where the rest goes are separate settings (cf. SoftCLIP,
    arXiv 2303.17561). A query without other clips in the batch keeps everything on its own."""
    others = _softmax_within(scores, ~own, dim, tau).nan_to_num(0.0)
    has_others = (~own).any(dim, keepdim=True)
    rest = torch.where(has_others, torch.tensor(1.0 - own_share, device=scores.device), 0.0)
    return (1.0 - rest) * _uniform_over_own(own, dim, scores.dtype) + rest * others


@target_rule("topk")
def topk_rule(scores, own, dim, tau, k):
    """softmax(S / tau) over the own clip and the k best-scoring other clips of the batch, renormalised
    (cf. false-negative attraction over the top k, arXiv 2011.11765)."""
    return _softmax_within(scores, _own_and_best_others(scores, own, dim, k), dim, tau)


@target_rule("agreement", estimators=("agree_with",))
def agreement_rule(scores, own, dim, tau, agree_with, k):
    """softmax(S / tau) over the own clip and those other clips that a second estimator (agree_with)
    also ranks among its k best in the batch (consistency filtering, cf. BiCro, arXiv 2303.12419)."""
    return _softmax_within(scores, _own_and_best_others(agree_with, own, dim, k), dim, tau)


@target_rule("logistic")
def logistic_rule(scores, own, dim, tau, alpha, beta):
    """Xie et al.'s: sigmoid(alpha * S - beta), normalised to sum 1 (their utils/criterion_utils.py,
    target_func 'logistic'; alpha 25, beta 20 in ex_baseline.py). It has no temperature."""
    relevance = torch.sigmoid(alpha * scores - beta)
    return relevance / relevance.sum(dim, keepdim=True)


@dataclass(frozen=True)
class TargetRule:
    """A rule with its settings and the targets' temperature, as a stage-2 run uses it."""

    name: str
    tau: float
    settings: dict = field(default_factory=dict)

    @classmethod
    def of(cls, spec: dict | None, tau: float) -> TargetRule:
        """From a configuration's target_rule ({name, **settings}; None: the paper's)."""
        spec = dict(spec or DEFAULT)
        name = spec.pop("name")
        if name not in RULES:
            raise ValueError(f"target rule {name!r}: expected one of {sorted(RULES)}")
        expected = set(RULES[name].parameters)
        if set(spec) != expected:
            raise ValueError(f"target rule {name!r}: expected the settings {sorted(expected)}, got {sorted(spec)}")
        return cls(name, tau, spec)

    @property
    def estimators(self) -> dict[str, str]:
        """Setting -> the ensemble whose scores it names."""
        return {key: self.settings[key] for key in RULES[self.name].estimators}

    def over(self, scores: torch.Tensor, own: torch.Tensor, dim: int, estimates: dict | None = None) -> torch.Tensor:
        """The rule's target along `dim`; `estimates`: setting -> the scores of the ensemble it names."""
        settings = {**self.settings, **(estimates or {})}
        missing = sorted(set(self.estimators) - set(estimates or {}))
        if missing:
            raise ValueError(f"target rule {self.name!r} needs the scores of {[self.settings[m] for m in missing]}")
        return RULES[self.name].function(scores, own, dim, self.tau, **settings)

    def distributions(
        self, scores: torch.Tensor, own: torch.Tensor, estimates: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(each caption's target over the batch's audios: columns sum 1, each audio's target over the
        batch's captions: rows sum 1), what distillation_loss takes."""
        return self.over(scores, own, 0, estimates), self.over(scores, own, 1, estimates)


def loss_target(target: torch.Tensor, own: torch.Tensor, dim: int, dist_weight: float, sup_weight: float):
    """The target the whole loss trains towards along `dim`: w_dist L_dist + w_sup L_sup is
    (w_dist + w_sup) times the cross-entropy against (w_dist target + w_sup uniform-over-own) /
    (w_dist + w_sup), as cross-entropy is linear in its target (exact when each clip appears once in
    the batch; L_sup weighs a clip seen twice by its pairs)."""
    total = dist_weight + sup_weight
    return (dist_weight * target + sup_weight * _uniform_over_own(own, dim, target.dtype)) / total


def shares(target: torch.Tensor, own: torch.Tensor, true: torch.Tensor, dim: int = 0) -> dict[str, torch.Tensor]:
    """Per query, the target's mass on its own clip, on other clips it truly describes (`true`, own
    excluded) and on clips it does not describe, along `dim`."""
    other_true = true & ~own
    return {
        "own_clip": (target * own).sum(dim),
        "other_true_clips": (target * other_true).sum(dim),
        "false_clips": (target * ~(own | other_true)).sum(dim),
    }


def label(spec: dict | None) -> str:
    """A rule as one canonical word: softmax, split(own_share=0.75), agreement(agree_with=captions, k=8)."""
    spec = dict(spec or DEFAULT)
    name = spec.pop("name")
    settings = ", ".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in sorted(spec.items())
    )
    return f"{name}({settings})" if settings else name
