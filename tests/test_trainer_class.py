"""The trainer as a class: each method alone, the hooks video models plug in (a clip source, a curriculum,
phases), and the class path equal, loss for loss, to a frozen copy of the loop it replaced."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from baselines.base import FitContext
from baselines.nn import to_unit
from baselines.trainer import (
    CHECKPOINT_NAME,
    CheckpointError,
    ClipSource,
    FrameSource,
    Phase,
    Schedule,
    Trainer,
    TrainingDiverged,
    TrainSettings,
    _frames_numpy,
    _rng_state,
    _set_rng_state,
    _sync_interval,
    load_checkpoint,
    predict_masks,
    prepare_cuda,
    resolve_device,
    save_checkpoint,
    seed_everything,
    train_model,
)
from tests.test_baselines_learned import ToySplit, tiny, toy_split

# ------------------------------------------------------------------------------ the loop before the class
# A verbatim copy of ``train_model`` (and its validator) as it was before it became :class:`Trainer`
# (git edc83f7, baselines/trainer.py), frozen here so the class can be held to the same losses step by step.


def _ref_validator(val, device: torch.device, size: int, batch_size: int, amp: bool, log):
    """A function model -> mean FG-ARI over the first ``size`` validation frames (None without data)."""
    if val is None or len(val) == 0:
        return None
    frames = _frames_numpy(val)[:size]
    masks = np.asarray(val.masks).reshape(-1, *val.masks.shape[2:])[:size]
    video = torch.from_numpy(np.array(frames)).to(device)  # a writable copy of the memmap slice
    true = torch.from_numpy(masks.astype(np.int64)).to(device)
    warned = []

    def run(model: nn.Module) -> float | None:
        try:
            from metrics import fg_ari  # lazy: the metrics package is only used for monitoring
        except ImportError as e:
            if not warned:
                log(f"validation FG-ARI unavailable ({e}); the curve records losses only")
                warned.append(1)
            return None
        pred, _, _ = predict_masks(model, video, batch_size, amp)
        scores = fg_ari(true[:, None], pred[:, None])
        scores = torch.as_tensor(scores, dtype=torch.float64)
        scores = scores[~torch.isnan(scores)]  # frames without foreground have no FG-ARI
        return float(scores.mean()) if scores.numel() else None

    return run


def _reference_train_model(
    model: nn.Module,
    cfg: TrainSettings,
    train,
    val,
    ctx: FitContext,
    device: torch.device | None = None,
    on_device: bool | None = None,
) -> dict:
    """The frozen loop (see above)."""
    cfg.check()
    device = device or resolve_device(ctx.device)
    cuda = device.type == "cuda"
    if cuda:
        prepare_cuda(model)
    model.to(device).train()
    amp = cfg.amp and cuda
    use_compile = cuda if cfg.compile is None else bool(cfg.compile)

    total = ctx.scale_steps(cfg.steps)
    # the warm-up and decay shrink with the run (profile fraction and max_steps cap alike), so a short
    # run sees the paper's schedule shape; a time budget does not change them (it is an interruption)
    sched_scale = total / cfg.steps
    schedule = Schedule(
        round(cfg.warmup_steps * sched_scale), cfg.decay_rate, max(1, round(cfg.decay_steps * sched_scale))
    )
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":  # the fused kernel on CUDA: one launch for all parameters
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=cuda or None)
    else:
        opt = torch.optim.RMSprop(params, lr=cfg.lr, eps=cfg.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    source = FrameSource(train, device, ctx.seed, on_device)
    validate = _ref_validator(val, device, cfg.val_size, cfg.predict_batch_size, cfg.amp, ctx.log)
    curve_every = max(1, min(cfg.val_every, total // 10 or 1))

    info = ctx.info
    curve: list[dict] = []
    step = 0
    elapsed_before = 0.0
    ckpt = Path(ctx.checkpoint_dir) / CHECKPOINT_NAME if ctx.checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt, device)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"], source)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # another model's or an old format's state
            raise CheckpointError(
                f"checkpoint {ckpt} does not fit this run ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); delete it (or run "
                f"with --force) to train this unit from scratch"
            ) from None
        step, curve, elapsed_before = state["step"], state["curve"], state["seconds"]
        info["resumed_from_step"] = step
        ctx.log(f"resuming from {ckpt} at step {step}")

    def save() -> None:
        if ckpt is not None:
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": _rng_state(source),
                    "step": step,
                    "curve": curve,
                    "seconds": elapsed_before + (time.perf_counter() - t0),
                },
                ckpt,
            )

    loss_fn = model
    compiled = False
    if use_compile:
        try:
            loss_fn = torch.compile(model, mode=cfg.compile_mode)
            compiled = True
        except Exception as e:  # compile itself is lazy; most failures surface at the first call
            ctx.log(f"torch.compile unavailable ({type(e).__name__}: {e}); training eagerly")

    def one_step(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(x)
        loss = loss.float()
        if cfg.debug_nan_at_step is not None and step + 1 == cfg.debug_nan_at_step:
            loss = loss * float("nan")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_norm is not None:
            nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        opt.step()
        sched.step()
        return loss.detach()

    sync_every = _sync_interval(cfg, cuda)
    pending: list[torch.Tensor] = []  # losses not yet checked (checking syncs the GPU)
    window: list[float] = []  # checked losses since the last curve point
    budget_cut = False
    last_loss = float("nan")
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=step,
        disable=not ctx.progress,
        mininterval=1.0,
        desc=f"{type(model).__name__}",
        dynamic_ncols=True,
    )

    def flush() -> None:
        nonlocal last_loss
        if not pending:
            return
        vals = torch.stack(pending).cpu().numpy().astype(np.float64)
        first = step - len(pending) + 1
        pending.clear()
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            info.update(steps=first + int(bad[0]), status="diverged")
            raise TrainingDiverged(first + int(bad[0]), float(vals[bad[0]]))
        window.extend(vals.tolist())
        last_loss = float(vals[-1])
        bar.set_postfix(loss=f"{np.mean(vals):.4g}", lr=f"{sched.get_last_lr()[0]:.2e}", refresh=False)

    def add_point() -> None:
        point = {
            "step": step,
            "loss": float(np.mean(window)) if window else None,
            "val_fg_ari": validate(model) if validate else None,
            "seconds": round(elapsed_before + time.perf_counter() - t0, 3),
        }
        window.clear()
        curve.append(point)
        info["curve"] = curve

    t0 = time.perf_counter()
    t_loop = None
    steps_at_loop = step
    try:
        while step < total:
            if ctx.time_budget_s is not None and time.perf_counter() - t0 >= ctx.time_budget_s:
                budget_cut = True
                break
            x = source.sample(cfg.batch_size)
            x = to_unit(x)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            try:
                loss = one_step(x)
            except Exception as e:
                if not compiled or isinstance(e, TrainingDiverged):
                    raise
                ctx.log(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); falling back to eager")
                loss_fn, compiled = model, False
                loss = one_step(x)
            step += 1
            if t_loop is None:  # the first step holds compilation and autotuning: time from the second
                t_loop, steps_at_loop = time.perf_counter(), step
            pending.append(loss)
            bar.update(1)
            if len(pending) >= sync_every:
                flush()
            if step % curve_every == 0 or step == total:
                flush()
                add_point()
            if step % cfg.checkpoint_every == 0:
                flush()
                save()
        flush()
        if not curve or curve[-1]["step"] != step:
            add_point()
        save()
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    loop_s = time.perf_counter() - t_loop if t_loop is not None else 0.0
    info.update(
        steps=step,
        total_steps=total,
        budget_cut=budget_cut,
        device=str(device),
        amp=amp,
        compiled=compiled,
        data_on_device=source.on_device,
        train_seconds=round(seconds, 3),
        steps_per_second=round((step - steps_at_loop) / loop_s, 3) if loop_s > 0 else None,
        final_loss=last_loss,
        schedule_scale=sched_scale,
        curve=curve,
        status="ok",
    )
    return info


# ------------------------------------------------------------------------------ helpers


class TinyNet(nn.Module):
    """A per-pixel softmax over K slots, each a learned colour: the smallest model the trainer takes."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.logits = nn.Conv2d(3, k, 1)
        self.colour = nn.Parameter(torch.rand(k, 3))

    def decompose(self, x):
        soft = self.logits(x).softmax(1)
        return torch.einsum("bkhw,kc->bchw", soft, self.colour.sigmoid()), soft

    def forward(self, x):
        return ((self.decompose(x)[0] - x) ** 2).mean()


class Tokeniser(nn.Module):
    """Phase 1 of a two-phase model (a dVAE's stand-in): an autoencoder whose forward is its own loss."""

    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return ((self.dec(self.enc(x).tanh()).sigmoid() - x) ** 2).mean()


class TwoStage(nn.Module):
    """Phase 2 learns a decoder on the tokeniser's detached codes; noise draws on the torch RNG so a resume
    that lost the RNG state would show."""

    def __init__(self):
        super().__init__()
        self.tok = Tokeniser()
        self.main = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        codes = self.tok.enc(x).tanh().detach()
        codes = codes + 0.01 * torch.randn_like(codes)
        return ((self.main(codes).sigmoid() - x) ** 2).mean()


class ClipNet(nn.Module):
    """A video model: clips [B,L,C,H,W]; remembers the shapes it was given."""

    def __init__(self):
        super().__init__()
        self.net = nn.Conv2d(3, 3, 1)
        self.shapes: list[tuple] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        frames = x.flatten(0, 1)
        return ((self.net(frames).sigmoid() - frames) ** 2).mean()


def _ctx(ckdir=None, logs=None, **kw) -> FitContext:
    return FitContext(
        device="cpu",
        progress=False,
        seed=0,
        checkpoint_dir=ckdir,
        log=logs.append if logs is not None else (lambda s: None),
        **kw,
    )


def _cfg(**over) -> TrainSettings:
    return TrainSettings(
        **{"steps": 6, "batch_size": 4, "lr": 1e-2, "val_every": 1, "checkpoint_every": 1000, "log_every": 1, **over}
    )


def _losses(info) -> list:
    return [p["loss"] for p in info["curve"]]


def _state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Dying(Trainer):
    """Dies (as a killed process would) while drawing the batch of update ``die_at``."""

    die_at = 10**9

    def next_batch(self):
        if self.step + 1 == self.die_at:
            raise KeyboardInterrupt
        return super().next_batch()


# ------------------------------------------------------------------------------ the class equals the old loop


def _slot_attention(seed: int = 0):
    m = tiny("slot_attention", steps=6, val_every=1, clip_norm=1.0)
    seed_everything(seed)
    return m.build_model(), m.config


def _tiny_rmsprop(seed: int = 0):
    torch.manual_seed(seed)
    return TinyNet(), _cfg(
        optimizer="rmsprop", clip_norm=0.5, warmup_steps=2, decay_rate=0.5, decay_steps=3, checkpoint_every=2
    )


@pytest.mark.parametrize(
    "build, with_val",
    [(_slot_attention, True), (_tiny_rmsprop, False)],
    ids=["slot_attention_adam_val", "tiny_rmsprop_clip_decay_ckpt"],
)
def test_the_class_gives_the_losses_of_the_frozen_loop(tmp_path, build, with_val):
    train, val = toy_split(16), (toy_split(6, seed=5) if with_val else None)
    runs = {}
    for name, fn in (("frozen", _reference_train_model), ("class", train_model)):
        model, cfg = build()
        seed_everything(0)
        info = fn(model, cfg, train, val, _ctx(tmp_path / name))
        runs[name] = (info, _state(model), load_checkpoint(tmp_path / name / CHECKPOINT_NAME))
    (old, old_w, old_ck), (new, new_w, new_ck) = runs["frozen"], runs["class"]
    assert [p["step"] for p in new["curve"]] == [p["step"] for p in old["curve"]] == list(range(1, 7))
    assert _losses(new) == _losses(old)  # bit for bit, step by step
    assert [p["val_fg_ari"] for p in new["curve"]] == [p["val_fg_ari"] for p in old["curve"]]
    if with_val:
        assert all(p["val_fg_ari"] is not None for p in new["curve"])
    assert _same_state(new_w, old_w)
    assert new["final_loss"] == old["final_loss"] and new["steps"] == old["steps"] == 6
    same_keys = {k for k in old if k not in ("train_seconds", "steps_per_second", "curve")}
    assert {k: new[k] for k in same_keys} == {k: old[k] for k in same_keys}
    assert set(new) == set(old)
    # the checkpoints hold the same state, with the phase added
    assert set(new_ck) == set(old_ck) | {"phase"} and new_ck["phase"] == 0
    assert new_ck["step"] == old_ck["step"] and new_ck["scheduler"] == old_ck["scheduler"]
    assert _same_state(new_ck["model"], old_ck["model"])
    for a, b in zip(new_ck["optimizer"]["state"].values(), old_ck["optimizer"]["state"].values()):
        assert _same_state(a, b)


def test_a_checkpoint_written_before_phases_existed_still_resumes(tmp_path):
    torch.manual_seed(0)
    info = train_model(TinyNet(), _cfg(steps=3, checkpoint_every=3), toy_split(8), None, _ctx(tmp_path))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    del state["phase"]
    save_checkpoint(state, tmp_path / CHECKPOINT_NAME)
    torch.manual_seed(1)
    again = train_model(TinyNet(), _cfg(steps=5, checkpoint_every=3), toy_split(8), None, _ctx(tmp_path))
    assert again["resumed_from_step"] == 3 and again["steps"] == 5
    assert _losses(again)[:3] == _losses(info)


# ------------------------------------------------------------------------------ methods alone


def _trainer(ckdir=None, logs=None, model=None, cfg=None, **kw) -> Trainer:
    torch.manual_seed(0)
    return Trainer(model or TinyNet(), cfg or _cfg(), toy_split(8), None, _ctx(ckdir, logs), **kw)


def test_flush_raises_at_the_first_bad_step_and_keeps_good_losses():
    t = _trainer()
    t.pending, t.step = [torch.tensor(1.0), torch.tensor(3.0)], 2
    t.flush()
    assert t.window == [1.0, 3.0] and t.last_loss == 3.0 and t.pending == []
    t.pending, t.step = [torch.tensor(0.5), torch.tensor(float("inf")), torch.tensor(float("nan"))], 7
    with pytest.raises(TrainingDiverged) as e:
        t.flush()  # losses of steps 5, 6, 7: the first bad one is step 6
    assert e.value.step == 6 and e.value.loss == float("inf")
    assert t.info["status"] == "diverged" and t.info["steps"] == 6 and t.pending == []


def test_after_step_syncs_adds_points_and_checkpoints_when_due(tmp_path, monkeypatch):
    t = _trainer(tmp_path, cfg=_cfg(steps=40, val_every=3, checkpoint_every=4))
    t.resume()
    t.t0 = time.perf_counter()
    t.sync_every = 2  # as on the GPU: losses are checked every few steps
    saved, synced = [], []
    monkeypatch.setattr(t, "save", lambda: saved.append(t.step))
    real_flush = t.flush
    monkeypatch.setattr(t, "flush", lambda: (synced.append(t.step) if t.pending else None, real_flush()))
    for i in range(12):
        t.after_step(torch.tensor(float(i)))
    assert [p["step"] for p in t.curve] == [3, 6, 9, 12]
    assert [p["loss"] for p in t.curve] == [1.0, 4.0, 7.0, 10.0]  # the mean of each window
    assert saved == [4, 8, 12]
    # every second step (the sync interval), and before every point and checkpoint
    assert synced == [2, 3, 4, 6, 8, 9, 11, 12] and t.pending == []


def test_build_optimizer_uses_the_scaled_schedule():
    cfg = _cfg(steps=100, warmup_steps=20, decay_rate=0.5, decay_steps=50, lr=1.0)
    t = Trainer(TinyNet(), cfg, toy_split(4), None, _ctx(step_scale=0.1))
    assert t.total == 10 and t.sched_scale == pytest.approx(0.1)
    opt, sched = t.build_optimizer(list(t.model.parameters()), cfg)
    assert isinstance(opt, torch.optim.Adam)
    s = sched.lr_lambdas[0]
    assert (s.warmup_steps, s.decay_rate, s.decay_steps) == (2, 0.5, 5)
    assert sched.get_last_lr()[0] == pytest.approx(0.5)  # (0 + 1) / 2 of the warm-up
    opt, _ = t.build_optimizer(list(t.model.parameters()), dataclasses.replace(cfg, optimizer="rmsprop"))
    assert isinstance(opt, torch.optim.RMSprop)


def test_save_then_resume_restores_step_curve_optimiser_and_data_stream(tmp_path):
    a = _trainer(tmp_path, cfg=_cfg(steps=3))
    a.run()
    b = _trainer(tmp_path, logs=(logs := []), cfg=_cfg(steps=3))
    b.resume()
    assert b.step == 3 and b.curve == a.curve and "at step 3" in logs[-1]
    assert b.sched.state_dict() == a.sched.state_dict()
    assert _same_state(b.model.state_dict(), a.model.state_dict())
    assert torch.equal(b.source.gen.get_state(), a.source.gen.get_state())
    assert torch.equal(b.source.sample(4), a.source.sample(4))


def test_compile_is_skipped_when_off_and_falls_back_when_it_cannot_start(monkeypatch):
    t = _trainer()
    assert t.compile(t.model) == (t.model, False)

    def broken(*a, **k):
        raise RuntimeError("no inductor here")

    monkeypatch.setattr(torch, "compile", broken)
    t = _trainer(logs=(logs := []), cfg=_cfg(compile=True))
    assert t.compile(t.model) == (t.model, False)
    assert "torch.compile unavailable (RuntimeError: no inductor here); training eagerly" in logs


def test_a_compiled_model_failing_at_its_first_call_trains_on_eagerly_with_the_same_losses(monkeypatch):
    eager = train_model(*_tiny_rmsprop(), toy_split(8), None, _ctx())
    calls = []

    def fake_compile(module, mode=None):
        def compiled(x):
            calls.append(1)
            raise RuntimeError("backend compiler failed")

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    model, cfg = _tiny_rmsprop()
    logs = []
    info = train_model(model, dataclasses.replace(cfg, compile=True), toy_split(8), None, _ctx(logs=logs))
    assert calls == [1] and info["compiled"] is False
    assert any("torch.compile failed (RuntimeError: backend compiler failed); falling back to eager" in m for m in logs)
    assert _losses(info) == _losses(eager)


def test_a_diverging_step_is_not_mistaken_for_a_compile_failure(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module, mode=None: module)  # "compiled", and working

    class CheckingAtOnce(Trainer):  # a subclass that checks each loss in the step, not at the sync
        def one_step(self, x):
            loss = super().one_step(x)
            if self.step + 1 == 2:
                raise TrainingDiverged(2, float("nan"))
            return loss

    logs = []
    t = CheckingAtOnce(TinyNet(), _cfg(compile=True), toy_split(8), None, _ctx(logs=logs))
    with pytest.raises(TrainingDiverged) as e:
        t.run()
    assert e.value.step == 2 and t.compiled is True and t.step == 1
    assert not any("falling back" in m for m in logs)


# ------------------------------------------------------------------------------ batch source and curriculum


def _numbered_videos(n: int = 5, t: int = 6):
    """Frame f of video i is filled with the value 10*i + f, so a clip shows where it came from."""
    video = np.broadcast_to((10 * np.arange(n)[:, None] + np.arange(t))[:, :, None, None, None], (n, t, 4, 4, 3))
    return ToySplit(np.ascontiguousarray(video, dtype=np.uint8), np.zeros((n, t, 4, 4), np.int64))


@pytest.mark.parametrize("on_device", [True, False])
def test_a_clip_source_draws_consecutive_frames_of_one_video_seeded(on_device):
    split = _numbered_videos()
    src = ClipSource(split, torch.device("cpu"), seed=3, clip_length=3, on_device=on_device)
    clips = src.sample(64)
    assert clips.shape == (64, 3, 4, 4, 3) and clips.dtype == torch.uint8
    first = clips[:, :, 0, 0, 0].long()
    assert torch.equal(first - first[:, :1], torch.arange(3).expand(64, 3))  # one video, consecutive frames
    assert set((first[:, 0] % 10).tolist()) == {0, 1, 2, 3}  # every start that fits, and none that does not
    assert len(set((first[:, 0] // 10).tolist())) == 5
    other = ClipSource(split, torch.device("cpu"), seed=3, clip_length=3, on_device=not on_device)
    assert torch.equal(other.sample(64), clips)  # host and device paths draw the same clips
    with pytest.raises(ValueError, match=r"clip_length must be an integer in 1\.\.6"):
        src.clip_length = 7


def test_a_trainer_prepares_clips_as_frames_over_time():
    t = _trainer()
    x = torch.randint(0, 256, (2, 3, 5, 4, 3), dtype=torch.uint8)
    y = t.prepare(x)
    assert y.shape == (2, 3, 3, 5, 4)
    assert torch.equal(y[1, 2], to_unit(x[1, 2])[0])


def _clip_run(ckdir=None, die_at=None, steps=5, curriculum=None):
    torch.manual_seed(0)
    model = ClipNet()
    split = _numbered_videos()
    t = Dying(
        model,
        _cfg(steps=steps, batch_size=2, checkpoint_every=3),
        split,
        None,
        _ctx(ckdir),
        source=ClipSource(split, torch.device("cpu"), 0, clip_length=1),
        curriculum=curriculum or (lambda step: {"clip_length": 2 if step < 3 else 4}),
    )
    if die_at:
        t.die_at = die_at
    return t, model


def test_the_curriculum_changes_the_clip_length_at_the_stage_boundary(tmp_path):
    t, model = _clip_run()
    info = t.run()
    assert [s[1] for s in model.shapes] == [2, 2, 2, 4, 4]
    assert all(s[0] == 2 and s[2:] == (3, 4, 4) for s in model.shapes)
    # resumed after the boundary's checkpoint (step 3), the run goes on with clips of 4 at once
    t, _ = _clip_run(tmp_path, die_at=5)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    t, resumed = _clip_run(tmp_path)
    again = t.run()
    assert again["resumed_from_step"] == 3 and [s[1] for s in resumed.shapes] == [4, 4]
    assert _losses(again) == _losses(info)


def test_a_curriculum_may_grow_the_batch_and_an_unknown_setting_is_refused():
    t, model = _clip_run(steps=4, curriculum=lambda step: {"batch_size": 1 + step, "clip_length": 2})
    t.run()
    assert [s[0] for s in model.shapes] == [1, 2, 3, 4]
    t, _ = _clip_run(curriculum=lambda step: {"frames_per_step": 3})
    with pytest.raises(
        ValueError, match="'frames_per_step' is neither batch_size nor an attribute of the batch source ClipSource"
    ):
        t.run()


# ------------------------------------------------------------------------------ phases


def _phases(model: TwoStage) -> list[Phase]:
    return [
        Phase("dvae", steps=4, module=model.tok, settings=_cfg(steps=4, lr=3e-2), validate=False),
        Phase(
            "main",
            steps=6,
            params=list(model.main.parameters()),
            settings=_cfg(steps=6, optimizer="rmsprop", lr=1e-2, batch_size=3),
        ),
    ]


class PhaseSpy(Dying):
    """Remembers the weights at each phase's start."""

    def enter_phase(self, index):
        super().enter_phase(index)
        self.seen = getattr(self, "seen", {})
        self.seen[index] = _state(self.model)


def _two_phase(ckdir=None, die_at=None, init_seed=0, checkpoint_every=3):
    torch.manual_seed(init_seed)
    model = TwoStage()
    t = PhaseSpy(
        model, _cfg(steps=10, checkpoint_every=checkpoint_every), toy_split(8), None, _ctx(ckdir), phases=_phases(model)
    )
    if die_at:
        t.die_at = die_at
    return t, model


@pytest.fixture(scope="module")
def uninterrupted():
    t, model = _two_phase()
    init = _state(model)
    info = t.run()
    return t, model, init, info


def test_two_phases_run_in_order_each_with_its_own_optimiser(uninterrupted):
    t, model, init, info = uninterrupted
    assert info["phases"] == [{"name": "dvae", "steps": 4}, {"name": "main", "steps": 6}]
    assert info["steps"] == 10 and [p["step"] for p in info["curve"]] == list(range(1, 11))
    assert [p["phase"] for p in info["curve"]] == ["dvae"] * 4 + ["main"] * 6
    assert all(p["val_fg_ari"] is None for p in info["curve"])
    at_phase2 = t.seen[1]
    tok, main = (
        (lambda s: {k: v for k, v in s.items() if k.startswith("tok.")}),
        (lambda s: {k: v for k, v in s.items() if k.startswith("main.")}),
    )
    assert not _same_state(tok(at_phase2), tok(init)) and _same_state(main(at_phase2), main(init))  # phase 1
    final = _state(model)
    assert _same_state(tok(final), tok(at_phase2)) and not _same_state(main(final), main(at_phase2))  # phase 2
    assert isinstance(t.opt, torch.optim.RMSprop) and t.batch_size == 3


def test_a_two_phase_run_resumed_between_phases_continues_in_phase_2_with_phase_1_weights(tmp_path, uninterrupted):
    ref, ref_model, _, ref_info = uninterrupted
    t, _ = _two_phase(tmp_path, die_at=5, checkpoint_every=1000)  # dies drawing phase 2's first batch
    with pytest.raises(KeyboardInterrupt):
        t.run()
    ck = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (ck["step"], ck["phase"]) == (4, 0)  # written at phase 1's end, not by checkpoint_every
    t, model = _two_phase(tmp_path, init_seed=123)  # other initial weights: all must come from the checkpoint
    info = t.run()
    assert info["resumed_from_step"] == 4 and sorted(t.seen) == [0, 1]
    assert _same_state(t.seen[1], ref.seen[1])  # phase 2 starts from phase 1's weights
    assert isinstance(t.opt, torch.optim.RMSprop)
    assert _losses(info) == _losses(ref_info) and _same_state(_state(model), _state(ref_model))


@pytest.mark.parametrize("die_at, last_ckpt, phase", [(4, 3, 0), (8, 6, 1)], ids=["mid_phase_1", "mid_phase_2"])
def test_resume_mid_phase_equals_uninterrupted(tmp_path, uninterrupted, die_at, last_ckpt, phase):
    _, ref_model, _, ref_info = uninterrupted
    t, _ = _two_phase(tmp_path, die_at=die_at)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    ck = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (ck["step"], ck["phase"]) == (last_ckpt, phase)
    t, model = _two_phase(tmp_path, init_seed=123)
    info = t.run()
    assert info["resumed_from_step"] == last_ckpt
    assert _losses(info) == _losses(ref_info)
    assert _same_state(_state(model), _state(ref_model))


def test_a_checkpoint_from_another_phase_layout_is_refused(tmp_path):
    t, _ = _two_phase(tmp_path, die_at=8)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    torch.manual_seed(0)
    with pytest.raises(
        CheckpointError,
        match=r"does not fit this run \(ValueError: it stopped at step 6 in "
        r"phase 1, but this run's phases end at steps \[10\]\)",
    ):
        Trainer(TwoStage(), _cfg(steps=10), toy_split(8), None, _ctx(tmp_path)).run()


def test_phases_that_cannot_be_trained_or_checkpointed_are_refused():
    model = TwoStage()
    with pytest.raises(ValueError, match="phase 'outside' trains parameters outside the trainer's model"):
        Trainer(model, _cfg(), toy_split(4), None, _ctx(), phases=[Phase("outside", 3, module=nn.Conv2d(3, 3, 1))])
    with pytest.raises(ValueError, match="phase 'empty' has no parameters"):
        Trainer(model, _cfg(), toy_split(4), None, _ctx(), phases=[Phase("empty", 3, params=[])])
    with pytest.raises(ValueError, match="phase 'zero': steps must be a positive integer, got 0"):
        Trainer(model, _cfg(), toy_split(4), None, _ctx(), phases=[Phase("zero", 0)])


def test_phases_scale_with_the_profile():
    model = TwoStage()
    t = Trainer(model, _cfg(), toy_split(4), None, _ctx(step_scale=0.5), phases=_phases(model))
    assert t.total == 5 and t.ends == [2, 5]
