"""Target rules (correspondences.target_rules): each rule against its definition in both directions,
the loss's target under a loss mix, the rules against their schema entries, and the rule module as
the one place that turns scores into targets."""

import ast
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

from audioretrieval.correspondences import target_rules
from audioretrieval.correspondences.target_rules import TargetRule, loss_target, shares
from audioretrieval.training.losses import contrastive_loss, distillation_loss, positives

CLIP_IDS = torch.tensor([3, 1, 3, 0, 2, 4])  # clip 3 twice: two of its captions, its audio twice
OWN = positives(CLIP_IDS)
SCORES = torch.tensor(
    [
        [0.9, 0.1, 0.8, 0.3, 0.2, 0.0],
        [0.2, 0.7, 0.1, 0.6, 0.4, 0.3],
        [0.8, 0.3, 0.9, 0.1, 0.5, 0.2],
        [0.1, 0.5, 0.2, 0.8, 0.3, 0.6],
        [0.4, 0.2, 0.6, 0.1, 0.9, 0.7],
        [0.3, 0.1, 0.0, 0.5, 0.6, 0.8],
    ],
    dtype=torch.float64,
)


def both_directions(rule: TargetRule, scores=SCORES, estimates=None):
    over_audios, over_captions = rule.distributions(scores, OWN, estimates)
    torch.testing.assert_close(over_audios.sum(0), torch.ones(6, dtype=scores.dtype))
    torch.testing.assert_close(over_captions.sum(1), torch.ones(6, dtype=scores.dtype))
    return over_audios, over_captions


def test_the_papers_rule_is_the_softmax_of_the_scores_over_their_temperature_both_ways():
    over_audios, over_captions = both_directions(TargetRule.of(None, 0.05))
    torch.testing.assert_close(over_audios, torch.softmax(SCORES / 0.05, dim=0))
    torch.testing.assert_close(over_captions, torch.softmax(SCORES / 0.05, dim=1))


def test_split_keeps_its_share_on_the_own_clip_and_spreads_the_rest_as_the_softmax_over_the_others():
    over_audios, over_captions = both_directions(TargetRule.of({"name": "split", "own_share": 0.75}, 0.1))
    for target, dim in ((over_audios, 0), (over_captions, 1)):
        own_mass = shares(target, OWN, torch.zeros_like(OWN), dim)["own_clip"]
        torch.testing.assert_close(own_mass, torch.full((6,), 0.75, dtype=torch.float64))
    # caption 0 (clip 3): its two audios share the own part; the other four follow softmax(S / tau)
    assert over_audios[0, 0] == pytest.approx(0.375) and over_audios[2, 0] == pytest.approx(0.375)
    others = torch.exp(SCORES[[1, 3, 4, 5], 0] / 0.1)
    torch.testing.assert_close(over_audios[[1, 3, 4, 5], 0], 0.25 * others / others.sum())
    alone = TargetRule.of({"name": "split", "own_share": 0.2}, 0.1).over(SCORES[:2, :2], torch.ones(2, 2).bool(), 0)
    torch.testing.assert_close(alone, torch.full((2, 2), 0.5, dtype=torch.float64))  # no other clip: all on its own


def test_topk_keeps_the_own_clip_and_the_k_best_others_renormalised():
    over_audios, _ = both_directions(TargetRule.of({"name": "topk", "k": 2}, 0.05))
    kept = over_audios > 0
    assert (kept.sum(0) == OWN.sum(0) + 2).all() and kept[OWN].all()
    assert set(torch.nonzero(kept[:, 1]).squeeze(1).tolist()) == {1, 2, 3}  # caption 1: its clip, then 0.3, 0.5
    support = torch.tensor([1, 2, 3])
    torch.testing.assert_close(over_audios[support, 1], torch.softmax(SCORES[support, 1] / 0.05, dim=0))
    everything = both_directions(TargetRule.of({"name": "topk", "k": 5}, 0.05))
    torch.testing.assert_close(everything[0], torch.softmax(SCORES / 0.05, dim=0))


def test_agreement_puts_off_own_mass_only_where_the_second_estimator_also_ranks_in_its_top_k():
    second = SCORES.flip(0)  # another estimator's view of the same batch
    rule = TargetRule.of({"name": "agreement", "agree_with": "captions", "k": 2}, 0.05)
    assert rule.estimators == {"agree_with": "captions"}
    over_audios, over_captions = both_directions(rule, estimates={"agree_with": second})
    expected_support = target_rules._own_and_best_others(second, OWN, 0, 2)
    assert torch.equal(over_audios > 0, expected_support)
    same = both_directions(rule, estimates={"agree_with": SCORES})
    torch.testing.assert_close(same[1], both_directions(TargetRule.of({"name": "topk", "k": 2}, 0.05))[1])
    with pytest.raises(ValueError, match=r"needs the scores of \['captions'\]"):
        rule.distributions(SCORES, OWN)


def test_the_logistic_rule_is_xie_et_als_normalised_sigmoid_of_caption_caption_cosines():
    """Their CELoss (target_func 'logistic'): soft = sigmoid(alpha C C^T - beta), rows normalised;
    audio i's target over captions is row i, caption j's over audios column j of soft^T."""
    captions = torch.nn.functional.normalize(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    captions = captions.double()
    cosines = captions @ captions.T  # the paired caption estimator's batch block
    over_audios, over_captions = both_directions(
        TargetRule.of({"name": "logistic", "alpha": 25, "beta": 20}, 0.05), cosines
    )
    values = cosines.tolist()
    for i in range(6):
        row = [1 / (1 + math.exp(-(25 * values[i][j] - 20))) for j in range(6)]
        assert over_captions[i].tolist() == pytest.approx([r / sum(row) for r in row], rel=1e-9)
        assert over_audios[:, i].tolist() == pytest.approx([r / sum(row) for r in row], rel=1e-9)  # symmetric


def test_the_loss_target_of_a_loss_mix_is_the_mix_of_the_rules_target_and_the_one_hot():
    clip_ids = torch.arange(6)  # each clip once: L_sup is exactly the cross-entropy against the one-hot
    own = positives(clip_ids)
    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    over_audios, over_captions = TargetRule.of(None, 0.05).distributions(SCORES, own)
    loss = 0.25 * distillation_loss(logits, over_audios, over_captions) + 0.75 * contrastive_loss(logits, clip_ids)
    mixed = [loss_target(t, own, dim, 0.25, 0.75) for t, dim in ((over_audios, 0), (over_captions, 1))]
    torch.testing.assert_close(loss, distillation_loss(logits, *mixed))
    parts = shares(mixed[0], own, torch.zeros_like(own))
    torch.testing.assert_close(parts["own_clip"], 0.75 + 0.25 * torch.diagonal(over_audios))
    torch.testing.assert_close(parts["false_clips"], 0.25 * (1 - torch.diagonal(over_audios)))


def test_a_rule_with_the_wrong_settings_or_name_is_refused_naming_them():
    with pytest.raises(ValueError, match=r"'split': expected the settings \['own_share'\], got \['k'\]"):
        TargetRule.of({"name": "split", "k": 3}, 0.05)
    with pytest.raises(ValueError, match="target rule 'sharpest': expected one of"):
        TargetRule.of({"name": "sharpest"}, 0.05)
    assert target_rules.label({"name": "split", "own_share": 0.5}) == "split(own_share=0.5)"


def test_every_rule_has_its_schema_entry_with_the_functions_settings():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["$defs"]["target_rule"]
    assert schema["properties"]["name"]["enum"] == list(target_rules.RULES)
    entries = {block["if"]["properties"]["name"]["const"]: block["then"] for block in schema["allOf"]}
    assert list(entries) == list(target_rules.RULES)
    for name, definition in target_rules.RULES.items():
        assert set(entries[name]["properties"]) - {"name"} == set(definition.parameters), name
        assert set(entries[name].get("required", [])) == set(definition.parameters), name


def scores_to_targets(source: str, filename: str) -> list[str]:
    """The lines of a module that compute a softmax or sigmoid, or a log-softmax outside the losses
    (where it is of the model's logits): what only the target rule may compute. An audio encoder's
    network (model/encoders) may gate its channels with a sigmoid."""
    allowed = {"softmax", "sigmoid"} if filename.endswith("correspondences/target_rules.py") else set()
    if "/model/encoders/" in filename:
        allowed.add("sigmoid")
    if filename.endswith("training/losses.py"):
        allowed.add("log_softmax")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in {"softmax", "log_softmax", "sigmoid"} - allowed:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_but_the_target_rule_turns_scores_into_targets():
    files = [*(REPO / "src").rglob("*.py"), *(REPO / "workflow_scripts").glob("*.py")]
    found = [hit for path in files for hit in scores_to_targets(path.read_text(), path.as_posix())]
    assert not found, f"only correspondences/target_rules.py may compute targets from scores: {found}"
    planted = "import torch\n\ndef mass(block, tau):\n    return torch.softmax(block / tau, dim=0)\n"
    assert scores_to_targets(planted, "src/audioretrieval/correspondences/truth.py") == [
        "src/audioretrieval/correspondences/truth.py:4: torch.softmax(block / tau, dim=0)"
    ]
    assert Path(target_rules.__file__).name == "target_rules.py"
