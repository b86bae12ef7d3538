"""The training step on the GPU path waits for nothing: the sync audit (training.sync_audit) over the
loop's own step, its real loader, loss and target rule, with the optimizer and gradient scaler a
GPU run in fp16 builds."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_training import TRAIN, spec_in, tiny_data  # noqa: F401 (a fixture)

from audioretrieval.correspondences.ensemble import build_targets
from audioretrieval.files import save_torch_atomically
from audioretrieval.model.checkpoint import checkpoint_of
from audioretrieval.model.embed import embed_checkpoint
from audioretrieval.training import loop, losses
from audioretrieval.training.sync_audit import SyncAudit

pytestmark = pytest.mark.slow  # builds a run and trains a few steps


def gpu_like_run(spec) -> loop.Run:
    run = loop.start(spec)
    run.optimizer = loop.build_optimizer(run.model, spec.train, fused=True)
    run.scaler = torch.amp.GradScaler("cpu", enabled=True)
    run.ddp_model = run.model
    run.model.train()
    return run


def audited_steps(spec, steps: int = 2) -> list[list]:
    """What the audit finds in each of `steps` training steps after the first (which sets up the
    optimizer's state), with the run made as on a GPU: fused AdamW and an enabled gradient scaler."""
    run = gpu_like_run(spec)
    found = []
    for step, batch in enumerate(run.loader):
        if step == steps + 1:
            break
        if step == 0:
            loop.train_step(run, batch, 0.0)
            continue
        with SyncAudit(host=batch) as audit:
            loop.train_step(run, batch, step / run.steps_per_epoch)
        found.append(audit.found)
    return found


@pytest.fixture(scope="module")
def distilling_spec(tmp_path_factory, tiny_data, tiny_tokenizer):  # noqa: F811
    """A stage-2 run with both loss terms, its targets from an untrained model's embeddings."""
    root = tmp_path_factory.mktemp("audit")
    spec = spec_in(root / "run", tiny_data, tiny_tokenizer, train={**TRAIN, "batch_size": 4})
    model = loop.DualEncoder(spec.model, TRAIN["segment_s"])
    save_torch_atomically(checkpoint_of(model, spec.model, TRAIN["segment_s"], 0, {}, 0), root / "init.pt")
    audio, captions = tiny_data["development"]
    embed_checkpoint(root / "init.pt", audio, captions, root / "emb.h5", batch_size=8)
    build_targets([str(root / "emb.h5")], root / "targets.h5")
    return replace(
        spec,
        init_checkpoint=str(root / "init.pt"),
        targets=str(root / "targets.h5"),
        target_tau=0.05,
        loss_weights={"sup": 1.0, "dist": 1.0},
    )


def test_a_training_step_makes_the_gpu_wait_for_nothing(distilling_spec):
    for found in audited_steps(distilling_spec):
        assert found == [], "\n".join(map(str, found))


def checked_loss(logits, clip_ids):
    """The contrastive loss as a first draft might write it: means over `[mask]`, and a finiteness check."""
    mask = losses.positives(clip_ids)
    loss = -(F.log_softmax(logits, dim=0)[mask].mean() + F.log_softmax(logits, dim=1)[mask].mean()) / 2
    if not torch.isfinite(loss):
        raise FloatingPointError("loss")
    return loss


def test_the_audit_names_each_line_that_would_make_the_gpu_wait(distilling_spec, monkeypatch):
    monkeypatch.setattr(loop, "contrastive_loss", checked_loss)
    found = audited_steps(distilling_spec, steps=1)[0]
    here = Path(__file__).resolve().as_posix()
    lines = {str(sync.where).split(" ")[0] for sync in found}
    source = Path(__file__).read_text().splitlines()
    mask_line = next(i for i, line in enumerate(source, 1) if "[mask].mean()" in line and "loss = " in line)
    check_line = next(i for i, line in enumerate(source, 1) if "torch.isfinite(loss)" in line)
    assert lines == {
        f"{here}:{mask_line}",
        f"{here}:{check_line}",
        f"{Path(loop.__file__).as_posix()}:{backward_line()}",
    }
    what = [sync.what for sync in found]
    assert sum("boolean-mask indexing (aten.index.Tensor)" in w for w in what) == 2
    assert sum("reads a value back" in w for w in what) == 1
    assert sum("in the backward pass, IndexBackward0" in w for w in what) == 2


def backward_line() -> int:
    source = Path(loop.__file__).read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if ".backward()" in line)


def test_reading_the_losses_every_log_every_steps_is_the_one_read_back(distilling_spec):
    run = gpu_like_run(distilling_spec)
    batch = next(iter(run.loader))
    losses_so_far = [loop.train_step(run, batch, 0.0) for _ in range(2)]
    with SyncAudit() as audit:
        loop.read_losses(run, 0, 0, losses_so_far)
    assert [sync.what for sync in audit.found] == [".cpu() copies a device tensor to the host"]
