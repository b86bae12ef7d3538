import json
import os
import pickle
import random
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import forked
import numpy as np
import pandas as pd
import pytest
import torch
from tiny import make_tokenizer, tiny_model_config

from audioretrieval.data.captions import build_caption_table
from audioretrieval.data.decode import decode_archive
from audioretrieval.data.demo import DemoSpec, generate_demo
from audioretrieval.data.h5audio import AudioH5, AudioH5Writer
from audioretrieval.files import write_table_atomically
from audioretrieval.model.checkpoint import read_checkpoint
from audioretrieval.training import loop
from audioretrieval.training.loop import NonFiniteLoss, train
from audioretrieval.training.schedule import learning_rate
from audioretrieval.training.spec import RunSpec
from audioretrieval.training.state import BestWeights, best_file, best_files, resume

pytestmark = pytest.mark.slow  # every test here trains or resumes a model

TRAIN = {
    "segment_s": 2.0,
    "batch_size": 8,
    "eval_batch_size": 16,
    "epochs": 3,
    "lr": {"audio_encoder": 1e-3, "text_encoder": 1e-3, "audio_projection": 1e-3, "text_projection": 1e-3},
    "min_lr": 1e-6,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
    "warmup_epochs": 1,
    "rampdown_start": 1,
    "rampdown_stop": 3,
    "precision": "auto",
    "compile": False,
    "cache_spectrograms": False,
    "num_workers": 0,
    "log_every": 2,
    "save_every": 1,
    "gradient_compression": "none",
    "select_by": "map@10",
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A decoded tiny demo dataset: development and validation audio and caption tables."""
    root = tmp_path_factory.mktemp("tiny-data")
    generate_demo(
        root / "raw",
        DemoSpec(
            seed=3, clips={"development": 8, "validation": 4, "evaluation": 2}, min_duration_s=1.0, max_duration_s=2.5
        ),
    )
    files = {}
    for split in ("development", "validation"):
        audio = root / f"{split}.h5"
        decode_archive(root / "raw" / f"clotho_audio_{split}.7z", audio, root / f"{split}-skipped.csv", progress=False)
        captions = root / f"{split}.parquet"
        write_table_atomically(
            build_caption_table(root / "raw" / f"clotho_captions_{split}.csv", AudioH5(audio)), captions
        )
        files[split] = (str(audio), str(captions))
    return files


def spec_in(run_dir: Path, data: dict, tokenizer, **changes) -> RunSpec:
    spec = RunSpec(
        seed=5,
        model=tiny_model_config(tokenizer),
        train=dict(TRAIN),
        train_audio=data["development"][0],
        train_captions=data["development"][1],
        val_audio=data["validation"][0],
        val_captions=data["validation"][1],
        best=str(run_dir / "best.pt"),
        last=str(run_dir / "last.pt"),
        log_table=str(run_dir / "log.csv"),
    )
    return replace(spec, **changes)


def weights(path) -> dict:
    return read_checkpoint(path)["state_dict"]


def test_a_run_writes_best_last_and_a_log_and_is_deterministic(tmp_path, tiny_data, tiny_tokenizer):
    first = spec_in(tmp_path / "a", tiny_data, tiny_tokenizer)
    second = spec_in(tmp_path / "b", tiny_data, tiny_tokenizer)
    train(first, progress=False)
    train(second, progress=False)
    log = pd.read_csv(first.log_table)
    assert log["epoch"].tolist() == [1, 2, 3]
    expected = {
        "train_loss",
        "seconds",
        "val_map@10",
        "val_r@1",
        "val_r@5",
        "val_r@10",
        *(f"lr_{g}" for g in ("audio_encoder", "text_encoder", "audio_projection", "text_projection")),
    }
    assert expected <= set(log.columns)
    best = read_checkpoint(first.best)
    assert best["metrics"]["map@10"] == log["val_map@10"].max()
    assert read_checkpoint(first.last)["epoch"] == 2
    pd.testing.assert_frame_equal(log.drop(columns="seconds"), pd.read_csv(second.log_table).drop(columns="seconds"))
    for key, value in weights(first.last).items():
        assert torch.equal(value, weights(second.last)[key]), key


def test_every_speed_option_trains_the_same_model(tmp_path, tiny_data, tiny_tokenizer):
    # the tiny demo's clips last 1-2.5 s and the segment 2 s: some clips are cached, the longer ones cropped at random
    lengths = AudioH5(tiny_data["development"][0]).lengths
    assert (lengths <= 64000).any() and (lengths > 64000).any()
    plain = spec_in(tmp_path / "plain", tiny_data, tiny_tokenizer)
    fast_model = tiny_model_config(tiny_tokenizer)
    fast_model["audio"]["fused_attention"] = True
    fast = spec_in(
        tmp_path / "fast",
        tiny_data,
        tiny_tokenizer,
        model=fast_model,
        train={**TRAIN, "cache_spectrograms": True, "num_workers": 2},
    )  # persistent workers draw the crops
    train(plain, progress=False)
    train(fast, progress=False)
    pd.testing.assert_frame_equal(
        pd.read_csv(plain.log_table).drop(columns="seconds"),
        pd.read_csv(fast.log_table).drop(columns="seconds"),
        rtol=1e-4,
    )
    for key, value in weights(plain.last).items():
        # the keys' bias has no true gradient (softmax ignores a constant): Adam turns its rounding noise into steps
        if not key.endswith("attn.qkv.bias"):
            assert torch.allclose(value, weights(fast.last)[key], atol=1e-4), key


def test_a_run_that_holds_its_spectrograms_and_skips_reading_their_audio_trains_the_same_model(
    tmp_path, tiny_data, tiny_tokenizer
):
    plain = spec_in(tmp_path / "plain", tiny_data, tiny_tokenizer)
    cached = spec_in(tmp_path / "cached", tiny_data, tiny_tokenizer, train={**TRAIN, "cache_spectrograms": True})
    train(plain, progress=False)
    train(cached, progress=False)  # no DataLoader workers: a held clip's audio is not read again
    pd.testing.assert_frame_equal(
        pd.read_csv(plain.log_table).drop(columns="seconds"), pd.read_csv(cached.log_table).drop(columns="seconds")
    )
    for key, value in weights(plain.last).items():
        assert torch.equal(value, weights(cached.last)[key]), key


def test_a_compiled_model_computes_the_same_step():
    from audioretrieval.model.dual_encoder import DualEncoder
    from audioretrieval.training.losses import contrastive_loss

    cfg = tiny_model_config(make_tokenizer(Path(tempfile.mkdtemp())))
    waveform, fraction, captions = (
        0.1 * torch.randn(4, 64000),
        torch.ones(4),
        ["a loud tone", "a hum", "beeps", "a hum"],
    )
    losses, grads = [], []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = DualEncoder(
            cfg, 2.0
        ).eval()  # no patchout or dropout: a compiled graph draws those from its own generator
        if compiled:
            model.compile_encoders()
        loss = contrastive_loss(model.logits(*model(waveform, fraction, captions)), torch.tensor([0, 1, 2, 1]))
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-5, rtol=1e-3), name


def test_a_killed_run_resumes_from_its_last_saved_epoch_to_the_same_weights(tmp_path, tiny_data, tiny_tokenizer):
    """Saved every second epoch (train.save_every 2), killed once the state of epoch 2 is on disk:
    the rerun retrains from there and ends where an uninterrupted run saving every epoch ends, best
    weights included; best-epoch files the state does not name are removed, a missing one refused."""
    reference = spec_in(tmp_path / "reference", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 4})
    train(reference, progress=False)

    interrupted = spec_in(
        tmp_path / "interrupted", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 4, "save_every": 2}
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(asdict(interrupted)))
    command = ["-m", "audioretrieval.training.loop", str(spec_file)]
    process = forked.Process(command)
    state = interrupted.resume_dir / "state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists() and not Path(interrupted.last).exists()
    saved = torch.load(state, weights_only=True)
    assert saved["epoch"] == 1  # the only state a 4-epoch run saving every 2 epochs writes
    named = best_file(interrupted.resume_dir, saved["best_epoch"])
    assert named.exists()

    stray = best_file(interrupted.resume_dir, 3)  # as if epoch 4 had been the best when the run was killed
    stray.write_bytes(b"not this run's")
    run = loop.start(interrupted)
    resume(interrupted, run.model, run.optimizer, run.scaler)
    assert not stray.exists() and named.exists()
    kept = named.read_bytes()
    named.unlink()
    with pytest.raises(FileNotFoundError, match=rf"best weights of epoch {saved['best_epoch'] + 1} in .*best\.\d\.pt"):
        resume(interrupted, run.model, run.optimizer, run.scaler)
    named.write_bytes(kept)

    result = forked.run(command)
    assert result.returncode == 0, result.stderr
    assert "after epoch 2" in result.stderr  # resumed (1-based, as the log counts), not restarted
    assert pd.read_csv(interrupted.log_table)["epoch"].tolist() == [1, 2, 3, 4]
    for output in ("last", "best"):
        expected, got = weights(getattr(reference, output)), weights(getattr(interrupted, output))
        for key, value in expected.items():
            assert torch.equal(value, got[key]), (output, key)
    assert read_checkpoint(interrupted.best)["epoch"] == read_checkpoint(reference.best)["epoch"]


def killed_at_random_moments(spec: RunSpec, seconds: float, rng: random.Random, kills: int = 3) -> list[str]:
    """Run `spec` as its own process, killed (SIGKILL) at a random moment of what an uninterrupted run
    takes (`seconds`), up to `kills` times, then run to its end: what each start did."""
    spec_file = spec.run_dir / "spec.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(asdict(spec)))
    command, starts = ["-m", "audioretrieval.training.loop", str(spec_file)], []
    for attempt in range(kills + 1):
        moment = rng.uniform(0.1, 0.5 if attempt == 0 else 0.8) * seconds if attempt < kills else 300.0
        process = forked.Process(command)
        try:
            process.wait(moment)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        log = process.communicate()[1]
        resumed = re.search(r"resuming \S+ after epoch \d+", log)
        did = resumed.group(0) if resumed else "no resume logged"
        starts.append(f"{did}, {moment:.1f} s: exit {process.returncode}")
        if process.returncode == 0:
            return starts
        assert process.returncode == -signal.SIGKILL, (starts, log)
    raise AssertionError(f"the last start did not finish: {starts}")


def timed_run(spec: RunSpec) -> float:
    started = time.monotonic()
    train(spec, progress=False)
    return time.monotonic() - started


def test_stage1_and_stage2_runs_killed_at_random_moments_end_with_an_uninterrupted_runs_weights(
    tmp_path, tiny_data, tiny_tokenizer
):
    from audioretrieval.correspondences.ensemble import build_targets
    from audioretrieval.model.embed import embed_checkpoint

    rng = random.Random(35)
    settings = {**TRAIN, "epochs": 6, "rampdown_stop": 6}
    stage1 = spec_in(tmp_path / "stage1", tiny_data, tiny_tokenizer, train=settings)
    audio, captions = tiny_data["development"]
    seconds = {stage1.run_dir.name: timed_run(stage1)}
    embed_checkpoint(stage1.best, audio, captions, tmp_path / "emb.h5", batch_size=8)
    build_targets([str(tmp_path / "emb.h5")], tmp_path / "targets.h5")
    stage2 = replace(
        stage1,
        seed=9,
        init_checkpoint=stage1.best,
        targets=str(tmp_path / "targets.h5"),
        loss_weights={"dist": 0.5, "sup": 0.5},
        target_tau=0.05,
        best=str(tmp_path / "stage2" / "best.pt"),
        last=str(tmp_path / "stage2" / "last.pt"),
        log_table=str(tmp_path / "stage2" / "log.csv"),
    )
    seconds[stage2.run_dir.name] = timed_run(stage2)
    for reference in (stage1, stage2):
        killed = replace(
            reference,
            best=reference.best.replace(str(tmp_path), str(tmp_path / "killed")),
            last=reference.last.replace(str(tmp_path), str(tmp_path / "killed")),
            log_table=reference.log_table.replace(str(tmp_path), str(tmp_path / "killed")),
        )
        starts = killed_at_random_moments(killed, seconds[reference.run_dir.name], rng)
        assert starts[0].endswith(f"exit {-signal.SIGKILL}"), starts  # killed part way
        assert any(start.startswith("resuming") for start in starts), starts
        assert pd.read_csv(killed.log_table)["epoch"].tolist() == [1, 2, 3, 4, 5, 6], starts
        for output in ("last", "best"):
            expected, got = weights(getattr(reference, output)), weights(getattr(killed, output))
            for key, value in expected.items():
                assert torch.equal(value, got[key]), (reference.run_dir.name, output, key, starts)
        assert not killed.resume_dir.exists()


def test_the_best_weights_are_written_in_the_background_and_at_most_two_epochs_are_kept(tmp_path):
    best = BestWeights(tmp_path)
    try:
        best.keep({"w": torch.zeros(3)}, 0)
        best.saved_with(0)
        best.keep({"w": torch.ones(3)}, 2)
        assert best.settled() == best_file(tmp_path, 2)
        assert sorted(best_files(tmp_path)) == [0, 2]  # the saved state still names epoch 0
        best.keep({"w": torch.full((3,), 3.0)}, 3)
        best.settled()
        assert sorted(best_files(tmp_path)) == [0, 3]
        best.saved_with(3)
        assert sorted(best_files(tmp_path)) == [3]
        assert torch.equal(torch.load(best.settled(), weights_only=True)["w"], torch.full((3,), 3.0))
        best.keep({"w": lambda: None}, 4)  # pickle refuses it in the writer thread: the error reaches the caller
        with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
            best.settled()
        assert sorted(best_files(tmp_path)) == [3]  # nothing half-written left as a best file
    finally:
        best.close()


def test_a_changed_configuration_does_not_resume_stale_state(tmp_path, tiny_data, tiny_tokenizer):
    spec = spec_in(tmp_path / "run", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 1})
    train(spec, progress=False)
    changed = replace(spec, seed=6)  # same directory, other configuration
    train(changed, progress=False)
    fresh = spec_in(tmp_path / "fresh", tiny_data, tiny_tokenizer, seed=6, train={**TRAIN, "epochs": 1})
    train(fresh, progress=False)
    pd.testing.assert_frame_equal(
        pd.read_csv(changed.log_table).drop(columns="seconds"), pd.read_csv(fresh.log_table).drop(columns="seconds")
    )


def test_a_finished_run_leaves_no_resume_state_and_a_changed_input_is_not_resumed(tmp_path, tiny_data, tiny_tokenizer):
    spec = spec_in(tmp_path / "run", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 1})
    train(spec, progress=False)
    assert Path(spec.last).exists() and not spec.resume_dir.exists()  # rerunning the job trains again
    captions = tmp_path / "captions.parquet"
    captions.write_bytes(Path(spec.input_files()[1]).read_bytes())
    spec = replace(spec, train_captions=str(captions))
    before = spec.fingerprint()
    os.utime(captions, ns=(0, 10**18))  # the same path, written anew (a rerun of the rule that makes it)
    assert spec.fingerprint() != before


def nan_audio(source: str, path: Path) -> str:
    """The clips of `source` with every sample NaN."""
    audio = AudioH5(source)
    with AudioH5Writer(path, 32000, "float32") as writer:
        for row, name in enumerate(audio.file_names):
            writer.append(name, np.full(int(audio.lengths[row]), np.nan, dtype=np.float32), audio.durations[row])
    return str(path)


def test_the_learning_rate_follows_the_fractional_epoch_at_every_step(tmp_path, tiny_data, tiny_tokenizer):
    """The schedule is evaluated at epoch + step / steps_per_epoch before each step, as the reference
    code's LR scheduler steps per batch: the last step of the warm-up epoch runs at (steps - 1) / steps
    of the base rate (40 captions, batches of 8: 5 steps), not at the epoch's start value."""
    spec = spec_in(tmp_path / "run", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 2})
    train(spec, progress=False)
    log = pd.read_csv(spec.log_table)
    rates = [learning_rate(e, 1e-3, 1e-6, 1, 1, 3) for e in (4 / 5, 1 + 4 / 5)]
    assert log["lr_audio_encoder"].tolist() == pytest.approx(rates, rel=1e-9)


def test_half_precision_trains_under_autocast_with_a_gradient_scaler(tmp_path, tiny_data, tiny_tokenizer, monkeypatch):
    """train.precision fp16 (the reference code's precision=16) on a GPU: the forward pass under fp16
    autocast and the loss scaled by a GradScaler. A CPU always computes in fp32, so the precision is
    forced here to run that path on the CPU."""
    monkeypatch.setattr(loop, "resolve_precision", lambda setting, device: "fp16")
    run = loop.start(spec_in(tmp_path / "run", tiny_data, tiny_tokenizer))
    dtypes = []
    run.model.text.projection.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    scaled = []
    scale = run.scaler.scale
    monkeypatch.setattr(run.scaler, "scale", lambda loss: scaled.append(loss) or scale(loss))
    run.ddp_model = run.model
    losses = loop.train_epoch(run, 0, progress=False)
    assert run.scaler.is_enabled() and len(scaled) == len(losses) == run.steps_per_epoch
    assert set(dtypes) == {torch.float16} and all(np.isfinite(losses))


@pytest.mark.parametrize("log_every, read_after", [(2, 2), (100, 5)], ids=["mid-epoch", "epoch-end"])
def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path, tiny_data, tiny_tokenizer, log_every, read_after):
    broken = nan_audio(tiny_data["development"][0], tmp_path / "nan.h5")
    spec = spec_in(
        tmp_path / "run", tiny_data, tiny_tokenizer, train_audio=broken, train={**TRAIN, "log_every": log_every}
    )
    # read from the device every log_every steps and at the epoch's end (5 steps): the read names the first bad step
    message = rf"loss is nan at epoch 1, step 1 \(global step 1; read after step {read_after}\)"
    with pytest.raises(NonFiniteLoss, match=message):
        train(spec, progress=False)
    assert not Path(spec.best).exists() and not Path(spec.last).exists()


def test_how_often_the_loss_is_read_changes_nothing_in_training(tmp_path, tiny_data, tiny_tokenizer):
    logs = []
    for every in (1, 3, 100):
        spec = spec_in(
            tmp_path / f"every{every}", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 1, "log_every": every}
        )
        train(spec, progress=False)
        logs.append(pd.read_csv(spec.log_table).drop(columns="seconds"))
    pd.testing.assert_frame_equal(logs[0], logs[1])
    pd.testing.assert_frame_equal(logs[0], logs[2])


def test_non_finite_validation_embeddings_stop_the_run_instead_of_scoring_a_perfect_epoch(
    tmp_path, tiny_data, tiny_tokenizer
):
    broken = nan_audio(tiny_data["validation"][0], tmp_path / "nan.h5")
    spec = spec_in(tmp_path / "run", tiny_data, tiny_tokenizer, val_audio=broken)
    with pytest.raises(
        NonFiniteLoss, match=r"validation after epoch 1: \d+ similarities of \d+ captions .* are NaN or infinite"
    ):
        train(spec, progress=False)
    assert not Path(spec.best).exists() and not best_files(spec.resume_dir)


def test_stage2_distills_from_ensemble_targets_starting_from_a_stage1_checkpoint(tmp_path, tiny_data, tiny_tokenizer):
    from audioretrieval.correspondences.ensemble import build_targets
    from audioretrieval.model.embed import embed_checkpoint

    stage1 = spec_in(tmp_path / "stage1", tiny_data, tiny_tokenizer, train={**TRAIN, "epochs": 1})
    train(stage1, progress=False)
    audio, captions = tiny_data["development"]
    embed_checkpoint(stage1.best, audio, captions, tmp_path / "emb.h5", batch_size=8)
    build_targets([str(tmp_path / "emb.h5")], tmp_path / "targets.h5")

    frozen = {**TRAIN, "epochs": 1, "lr": dict.fromkeys(TRAIN["lr"], 0.0)}
    stage2 = spec_in(
        tmp_path / "stage2",
        tiny_data,
        tiny_tokenizer,
        seed=9,
        train=frozen,
        init_checkpoint=stage1.best,
        targets=str(tmp_path / "targets.h5"),
        loss_weights={"dist": 1.0, "sup": 0.0},
        target_tau=0.05,
    )
    train(stage2, progress=False)
    assert np.isfinite(pd.read_csv(stage2.log_table)["train_loss"]).all()
    for key, value in weights(stage1.best).items():  # lr 0: the stage-2 model is its initialisation
        assert torch.equal(value, weights(stage2.last)[key]), key

    # lr 0 and one seed: every run sees the same model, batches and random draws, so the logged loss
    # shows what each term contributes: the targets reach it, and the weights combine the terms
    def loss_of(name, **changes):
        run = replace(
            stage2,
            best=str(tmp_path / name / "best.pt"),
            last=str(tmp_path / name / "last.pt"),
            log_table=str(tmp_path / name / "log.csv"),
            **changes,
        )
        train(run, progress=False)
        return pd.read_csv(run.log_table)["train_loss"].iloc[0]

    dist, sup = (
        pd.read_csv(stage2.log_table)["train_loss"].iloc[0],
        loss_of("sup", loss_weights={"dist": 0.0, "sup": 1.0}),
    )
    assert loss_of("mixed", loss_weights={"dist": 0.5, "sup": 0.5}) == pytest.approx(0.5 * dist + 0.5 * sup, rel=1e-5)
    assert loss_of("flatter", target_tau=0.5) != pytest.approx(dist, rel=1e-3)

    without = replace(stage2, targets=None, best=str(tmp_path / "x" / "best.pt"))
    with pytest.raises(ValueError, match="loss weight dist is 1.0 but no targets file"):
        train(without, progress=False)


def test_validation_after_every_epoch_reuses_the_same_dataloader_workers(tmp_path, tiny_data, tiny_tokenizer):
    run = loop.start(spec_in(tmp_path / "run", tiny_data, tiny_tokenizer, train={**TRAIN, "num_workers": 1}))
    first = loop.validate(run, 0)
    workers = [worker.pid for worker in run.validation.loader._iterator._workers]
    assert loop.validate(run, 1) == first  # the same weights: the same scores
    assert [worker.pid for worker in run.validation.loader._iterator._workers] == workers
