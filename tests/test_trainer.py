"""The shared trainer: schedule, data path, checkpoint/resume, divergence, budget, learning curve."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from baselines.base import FitContext
from baselines.trainer import CHECKPOINT_NAME, FrameSource, Schedule, TrainingDiverged, resolve_device
from tests.test_baselines_learned import H, W, tiny, toy_split


def _fit(tmp_path=None, seed=0, steps=10, max_steps=None, budget=None, val=None, **over):
    m = tiny("slot_attention", steps=steps, val_every=1, **over)
    ctx = FitContext(
        device="cpu", progress=False, seed=seed, max_steps=max_steps, time_budget_s=budget, checkpoint_dir=tmp_path
    )
    m.fit(toy_split(32), val, ctx)
    return m, ctx


def test_schedule_warmup_then_exponential_decay():
    s = Schedule(warmup_steps=10, decay_rate=0.5, decay_steps=100)
    assert s(0) == pytest.approx(0.1 * 0.5**0.0)
    assert s(4) == pytest.approx(0.5 * 0.5**0.04)
    assert s(9) == pytest.approx(0.5**0.09)
    assert s(200) == pytest.approx(0.25)
    assert Schedule(0, 1.0, 1)(12345) == 1.0


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_frame_source_folds_videos_and_is_seeded():
    split = toy_split(6, t=3)
    a, b = FrameSource(split, torch.device("cpu"), seed=1), FrameSource(split, torch.device("cpu"), seed=1)
    assert a.n == 18  # N*T frames
    xa, xb = a.sample(5), b.sample(5)
    assert xa.shape == (5, H, W, 3) and xa.dtype == torch.uint8
    assert torch.equal(xa, xb)
    # the host path (a split too big for the device) draws the same frames from the memmap
    host = FrameSource(split, torch.device("cpu"), seed=1, on_device=False)
    assert not host.on_device
    assert torch.equal(host.sample(5), xa)
    frames = split.video.reshape(-1, H, W, 3)
    assert all(any(np.array_equal(f, g) for g in frames) for f in xa.numpy())


def test_same_seed_same_run_on_cpu():
    _, a = _fit(steps=4)
    _, b = _fit(steps=4)
    _, c = _fit(steps=4, seed=1)
    la, lb, lc = ([p["loss"] for p in x.info["curve"]] for x in (a, b, c))
    assert la == lb
    assert la != lc


def test_resume_after_interruption_gives_the_same_losses(tmp_path, monkeypatch):
    _, full = _fit(steps=8)
    orig, calls = FrameSource.sample, []

    def dying(self, batch_size):
        calls.append(1)
        if len(calls) == 7:  # the process dies while drawing step 7's batch; step 6 was checkpointed
            raise KeyboardInterrupt
        return orig(self, batch_size)

    monkeypatch.setattr(FrameSource, "sample", dying)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, steps=8, checkpoint_every=3)
    monkeypatch.setattr(FrameSource, "sample", orig)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 6
    _, second = _fit(tmp_path, steps=8, checkpoint_every=3)
    assert second.info["resumed_from_step"] == 6 and second.info["steps"] == 8
    assert [p["step"] for p in second.info["curve"]] == list(range(1, 9))
    np.testing.assert_allclose(
        [p["loss"] for p in second.info["curve"]], [p["loss"] for p in full.info["curve"]], rtol=1e-6
    )


def test_max_steps_caps_the_run_and_shrinks_the_schedule():
    _, ctx = _fit(steps=100, max_steps=5, warmup_steps=20)
    assert ctx.info["steps"] == 5 and ctx.info["total_steps"] == 5
    assert ctx.info["schedule_scale"] == pytest.approx(0.05)


def test_nan_loss_ends_the_run_as_diverged():
    with pytest.raises(TrainingDiverged, match="step 3") as e:
        _fit(steps=6, debug_nan_at_step=3)
    assert e.value.step == 3 and np.isnan(e.value.loss)
    assert isinstance(e.value, RuntimeError)


def test_nan_is_caught_with_a_delayed_check(monkeypatch):
    # on the GPU losses are checked every log_every steps; the reported step is still the first bad one
    import baselines.trainer as tr

    monkeypatch.setattr(tr, "_sync_interval", lambda cfg, cuda: 5)
    ctx = FitContext(device="cpu", progress=False)
    m = tiny("slot_attention", steps=10, debug_nan_at_step=4)
    with pytest.raises(TrainingDiverged) as e:
        m.fit(toy_split(16), None, ctx)
    assert e.value.step == 4
    assert ctx.info["status"] == "diverged" and ctx.info["steps"] == 4


def test_time_budget_stops_cleanly():
    _, ctx = _fit(steps=10**6, budget=1.0)
    assert ctx.info["budget_cut"] is True
    assert 1 <= ctx.info["steps"] < 10**6
    assert ctx.info["total_steps"] == 10**6
    assert ctx.info["curve"][-1]["step"] == ctx.info["steps"]


def test_profile_scales_steps():
    m = tiny("slot_attention", steps=40)
    ctx = FitContext(device="cpu", progress=False, step_scale=0.1)
    m.fit(toy_split(16), None, ctx)
    assert ctx.info["steps"] == 4 and ctx.info["schedule_scale"] == pytest.approx(0.1)


def test_validation_curve_records_fg_ari(monkeypatch):
    calls = []

    def fake_fg_ari(true, pred):
        calls.append((true.shape, pred.shape, int(pred.min()), true.dtype, pred.dtype))
        return torch.full((true.shape[0],), 0.25, dtype=torch.float64)

    fake = types.ModuleType("metrics")
    fake.fg_ari = fake_fg_ari
    monkeypatch.setitem(sys.modules, "metrics", fake)
    val = toy_split(10, seed=5)
    _, ctx = _fit(steps=4, val=val, val_size=6)
    curve = ctx.info["curve"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4]
    assert all(p["val_fg_ari"] == pytest.approx(0.25) for p in curve)
    assert all(set(p) == {"step", "loss", "val_fg_ari", "seconds"} for p in curve)
    assert calls[0][0] == (6, 1, H, W) and calls[0][1] == (6, 1, H, W) and calls[0][2] >= 1
    assert calls[0][3] == torch.int64 and calls[0][4] == torch.int64
    secs = [p["seconds"] for p in curve]
    assert secs == sorted(secs)


def test_validation_with_the_real_metric_is_a_score():
    pytest.importorskip("metrics")
    metrics = sys.modules["metrics"]
    if not hasattr(metrics, "fg_ari"):
        pytest.skip("metrics.fg_ari not written yet")
    _, ctx = _fit(steps=2, val=toy_split(8, seed=5), val_size=8)
    v = ctx.info["curve"][-1]["val_fg_ari"]
    assert v is not None and -1.0 <= v <= 1.0


def test_bad_settings_are_rejected():
    m = tiny("slot_attention", batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(toy_split(8), None, FitContext(device="cpu", progress=False))
    m = tiny("slot_attention", optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer"):
        m.fit(toy_split(8), None, FitContext(device="cpu", progress=False))


def test_frame_shape_mismatch_is_rejected():
    m = tiny("slot_attention")
    with pytest.raises(ValueError, match="DatasetInfo.shape"):
        m.fit(toy_split(8, size=16), None, FitContext(device="cpu", progress=False))
