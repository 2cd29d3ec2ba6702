"""The one training loop of the learned baselines, and the base class of the image methods.

A learned image method supplies a ``torch.nn.Module`` whose ``forward(x)`` returns the scalar
training loss of a float batch ``x`` [B,C,H,W] in [0,1], and whose ``decompose(x)`` returns
``(recon [B,C,H,W] in [0,1], soft_masks [B,K,H,W])``. :func:`train_model` does the rest:

- device: CUDA when available (``ctx.device`` overrides), bf16 autocast, TF32, cuDNN autotuning and
  channels-last memory on the GPU; optional ``torch.compile`` with a clean fallback to eager;
- data: the whole training split, folded into frames [N*T,H,W,C] uint8, is held on the device and
  batches are drawn there with a seeded generator (DESIGN.md "Performance habits"), as
  ``generators.DeviceSplit`` does for whole videos; a split that does not fit (over half the free GPU
  memory, or 8 GiB on the CPU) is read from the host memmap with pinned copies instead;
- Adam/RMSProp, global-norm gradient clipping, linear warm-up then exponential decay
  (``lr * decay_rate ** (step / decay_steps)``, the Slot Attention / IODINE code's form);
- checkpoints every N steps and at the end (model, optimiser, scheduler, RNG states, step, curve), as
  tensors and plain values only, resumed automatically from ``ctx.checkpoint_dir`` and read with
  ``weights_only=True`` and checked against their digest (a crafted, truncated or altered file is a
  :class:`CheckpointError`, never code run);
- a tqdm bar with loss and steps/s; a validation FG-ARI learning curve in ``ctx.info["curve"]``;
- divergence (NaN/inf loss) raises :class:`TrainingDiverged`; ``ctx.time_budget_s`` stops cleanly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import DatasetInfo, FitContext, Method, Prediction
from .nn import to_unit

CHECKPOINT_NAME = "trainer_state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from safely: unreadable, truncated, or holding more than data."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is failed."""

    def __init__(self, step: int, loss: float):
        self.step = step
        self.loss = loss
        super().__init__(f"training diverged at step {step}: loss = {loss} (not finite)")


@dataclasses.dataclass
class TrainSettings:
    """Optimisation and trainer options shared by every learned method's config.

    ``steps`` is the paper's number of updates; the profile scales it (``ctx.scale_steps``, which also
    applies ``max_steps``) and the warm-up / decay lengths by the same fraction, so a short run sees the
    whole schedule shape.
    """

    steps: int = 500_000
    batch_size: int = 64
    lr: float = 4e-4
    optimizer: str = "adam"  # adam | rmsprop
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    decay_rate: float = 1.0
    decay_steps: int = 100_000
    clip_norm: float | None = None
    # trainer options (not hyper-parameters of the papers)
    val_every: int = 2000  # validation FG-ARI every N steps (at least 10 points per run)
    val_size: int = 320  # validation frames scored each time
    checkpoint_every: int = 5000
    log_every: int = 50  # loss sync interval on the GPU (every step on the CPU)
    compile: bool | None = None  # None: on for CUDA, off on the CPU
    compile_mode: str | None = None  # torch.compile mode (None = default; e.g. "max-autotune-no-cudagraphs")
    amp: bool = True  # bf16 autocast on CUDA (never on the CPU)
    predict_batch_size: int = 256
    debug_nan_at_step: int | None = None  # testing aid: the loss becomes NaN at this step

    def check(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "val_size", "predict_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm!r}")


class Schedule:
    """Learning-rate factor: linear warm-up, then ``rate ** (step / decay_steps)`` (a picklable object)."""

    def __init__(self, warmup_steps: int, decay_rate: float, decay_steps: int):
        self.warmup_steps = max(0, int(warmup_steps))
        self.decay_rate = float(decay_rate)
        self.decay_steps = max(1, int(decay_steps))

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warm * self.decay_rate ** (step / self.decay_steps)


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """CUDA when available unless ``requested`` names a device; a CUDA request without CUDA is an error."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={requested!r} was requested but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _frames_numpy(split) -> np.ndarray:
    """The frames of a split as [N*T,H,W,C] uint8 (a memmap view; videos are folded into frames)."""
    video = split.video
    if isinstance(video, torch.Tensor):
        video = video.cpu().numpy()
    if video.ndim != 5 or video.dtype != np.uint8:
        raise ValueError(f"split.video must be uint8 [N,T,H,W,C], got {video.dtype} {tuple(video.shape)}")
    return video.reshape(-1, *video.shape[2:])


class FrameSource:
    """Random frame batches for training: held on the device when it fits, else read from the host."""

    def __init__(self, split, device: torch.device, seed: int, on_device: bool | None = None):
        self.device = device
        frames = _frames_numpy(split)
        self.n = frames.shape[0]
        if self.n == 0:
            raise ValueError("the training split is empty")
        if on_device is None:
            on_device = self._fits(frames.nbytes)
        self.on_device = on_device
        if on_device:
            # Only the frames move (not the masks, which training never reads), in chunks, so a big
            # video split is never held twice in host memory (the work of ``split.to(device)``).
            self.frames = torch.empty(frames.shape, dtype=torch.uint8, device=device)
            step = max(1, (256 * 2**20) // max(1, frames[0].nbytes))
            for lo in range(0, self.n, step):
                self.frames[lo:lo + step].copy_(torch.from_numpy(np.array(frames[lo:lo + step])))
            self.gen = torch.Generator(device=device).manual_seed(seed)
        else:
            self.frames_np = frames
            self.gen = torch.Generator().manual_seed(seed)

    def _fits(self, nbytes: int) -> bool:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return nbytes < 0.5 * free  # leave half the free memory to the model
        return nbytes < 8 * 2**30

    def sample(self, batch_size: int) -> torch.Tensor:
        """uint8 [B,H,W,C] on the device."""
        if self.on_device:
            idx = torch.randint(0, self.n, (batch_size,), device=self.device, generator=self.gen)
            return self.frames[idx]
        idx = torch.randint(0, self.n, (batch_size,), generator=self.gen).numpy()
        order = np.argsort(idx)  # sorted reads from the memmap, original order restored
        out = np.empty((batch_size, *self.frames_np.shape[1:]), np.uint8)
        out[order] = self.frames_np[idx[order]]
        t = torch.from_numpy(out)
        if self.device.type == "cuda":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)


def _rng_state(source: FrameSource) -> dict:
    """Every RNG state as tensors and plain numbers, so the checkpoint loads with ``weights_only=True``
    (numpy's state tuple holds an ndarray, which only a full, code-running unpickler can rebuild)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "data": source.gen.get_state(),
          "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, source: FrameSource) -> None:
    # RNG states are CPU ByteTensors; torch.load(map_location=cuda) moved them to the GPU
    torch.set_rng_state(st["torch"].cpu())
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    source.gen.set_state(st["data"].cpu())
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda"]])


def prepare_cuda(model: nn.Module) -> None:
    """GPU settings of every training run: cuDNN autotuning, TF32 matmuls/convs, channels-last weights."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    _channels_last(model)


def _channels_last(model: nn.Module) -> None:
    """Channels-last for the 4-D weights only: ``Module.to(memory_format=...)`` raises on modules
    holding 5-D buffers (MONet's), so convert tensor by tensor."""
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


def _save_atomic(obj: Any, path: Path) -> None:
    """Write beside ``path`` and rename: a crash or a full disk leaves the old checkpoint, not half a new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "curve", "seconds")


def checkpoint_digest(state: Any) -> str:
    """sha256 of a checkpoint's content in order (tensor dtypes, shapes and bytes; plain values): bytes
    changed on disk can load without an error (tensor data is not checksummed), and a resume would then
    train from garbage or fail steps later on a strided tensor; with the digest they are refused."""
    h = hashlib.sha256()

    def walk(x) -> None:
        if isinstance(x, torch.Tensor):
            h.update(f"T{x.dtype}{tuple(x.shape)}".encode())
            h.update(x.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            h.update(f"D{len(x)}".encode())
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, (list, tuple)):
            h.update(f"{type(x).__name__}{len(x)}".encode())
            for v in x:
                walk(v)
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    walk(state)
    return h.hexdigest()


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` (tensors and plain values) with its digest, atomically."""
    _save_atomic(dict(state, digest=checkpoint_digest(state)), path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A trainer checkpoint, read with ``weights_only=True``: tensors and plain values only, so a crafted
    file is refused instead of running its code, and its content must match the digest it was saved with.
    Any unreadable or altered file is a :class:`CheckpointError` naming it."""
    remedy = "delete it (or run with --force) to train this unit from scratch"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:  # what the weights-only unpickler raises for anything but plain data
        first = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln),
                     str(e).splitlines()[0] if str(e) else "")
        raise CheckpointError(f"checkpoint {path} holds more than tensors and plain values and was not loaded "
                              f"({first[:200]}); {remedy}") from None
    except Exception as e:  # a truncated or garbled file: zip reader errors, EOFError, ...
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); {remedy}") from None
    missing = [k for k in CHECKPOINT_KEYS + ("digest",) if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a trainer checkpoint of this version (missing "
                              f"{missing}); {remedy}")
    digest = state.pop("digest")
    if digest != checkpoint_digest(state):
        raise CheckpointError(f"checkpoint {path} was altered after it was written (its content does not match "
                              f"its digest); {remedy}")
    return state


@torch.no_grad()
def predict_masks(model: nn.Module, video: torch.Tensor, batch_size: int = 256, amp: bool = True):
    """Run ``model.decompose`` on uint8 frames [N,H,W,C]; returns (ids int64 [N,H,W] in 1..K, recon, soft)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids, recons, softs = [], [], []
    use_amp = amp and device.type == "cuda"
    try:
        for lo in range(0, video.shape[0], batch_size):
            x = to_unit(video[lo:lo + batch_size].to(device, non_blocking=True))
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                recon, soft = model.decompose(x)
            soft = soft.float()
            ids.append(soft.argmax(1) + 1)  # ids 1..K: 0 is never predicted
            recons.append(recon.float().clamp(0, 1))
            softs.append(soft)
    finally:
        model.train(was_training)
    return torch.cat(ids), torch.cat(recons), torch.cat(softs)


def _sync_interval(cfg: TrainSettings, cuda: bool) -> int:
    """Steps between loss checks: each check syncs the GPU, so batch them there; every step on the CPU."""
    return cfg.log_every if cuda else 1


def _validator(val, device: torch.device, size: int, batch_size: int, amp: bool, log):
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


def train_model(model: nn.Module, cfg: TrainSettings, train, val, ctx: FitContext,
                device: torch.device | None = None, on_device: bool | None = None) -> dict:
    """Train ``model`` on the frames of ``train``; fills and returns ``ctx.info``."""
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
    schedule = Schedule(round(cfg.warmup_steps * sched_scale), cfg.decay_rate,
                        max(1, round(cfg.decay_steps * sched_scale)))
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":  # the fused kernel on CUDA: one launch for all parameters
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=cuda or None)
    else:
        opt = torch.optim.RMSprop(params, lr=cfg.lr, eps=cfg.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    source = FrameSource(train, device, ctx.seed, on_device)
    validate = _validator(val, device, cfg.val_size, cfg.predict_batch_size, cfg.amp, ctx.log)
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
            raise CheckpointError(f"checkpoint {ckpt} does not fit this run ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); delete it (or run "
                                  f"with --force) to train this unit from scratch") from None
        step, curve, elapsed_before = state["step"], state["curve"], state["seconds"]
        info["resumed_from_step"] = step
        ctx.log(f"resuming from {ckpt} at step {step}")

    def save() -> None:
        if ckpt is not None:
            save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "rng": _rng_state(source), "step": step,
                             "curve": curve, "seconds": elapsed_before + (time.perf_counter() - t0)}, ckpt)

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

    bar = tqdm(total=total, initial=step, disable=not ctx.progress, mininterval=1.0,
               desc=f"{type(model).__name__}", dynamic_ncols=True)

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
        point = {"step": step, "loss": float(np.mean(window)) if window else None,
                 "val_fg_ari": validate(model) if validate else None,
                 "seconds": round(elapsed_before + time.perf_counter() - t0, 3)}
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
    info.update(steps=step, total_steps=total, budget_cut=budget_cut, device=str(device), amp=amp,
                compiled=compiled, data_on_device=source.on_device, train_seconds=round(seconds, 3),
                steps_per_second=round((step - steps_at_loop) / loop_s, 3) if loop_s > 0 else None,
                final_loss=last_loss, schedule_scale=sched_scale, curve=curve, status="ok")
    return info


class LearnedImageMethod(Method):
    """Base of the learned image methods: ``fit`` via :func:`train_model`, ``predict`` by argmax.

    Subclasses implement :meth:`build_model`. Predicted ids are **1..K** (slot k -> id k+1), so 0 is
    never used; ``soft_masks`` are the mixture weights [B,T,K,H,W]; ``recon`` is [B,T,H,W,C] in [0,1].
    """

    def __init__(self, config: Any, info: DatasetInfo):
        super().__init__(config, info)
        self.model: nn.Module | None = None

    def num_slots(self) -> int:
        k = getattr(self.config, "num_slots", None)
        return int(k) if k else int(self.info.max_objects) + 1  # K = max objects + background

    def build_model(self) -> nn.Module:  # pragma: no cover - interface
        raise NotImplementedError

    def fit(self, train, val, ctx: FitContext) -> None:
        t, h, w, c = (int(s) for s in train.shape)
        if (h, w, c) != tuple(self.info.shape[1:]):
            raise ValueError(f"train split frames are {(h, w, c)} but DatasetInfo.shape says {self.info.shape}")
        device = resolve_device(ctx.device)
        seed_everything(ctx.seed)
        self.model = self.build_model().to(device)
        ctx.info["num_slots"] = self.num_slots()
        train_model(self.model, self.config, train, val, ctx, device)

    def predict(self, batch: Mapping[str, Any]) -> Prediction:
        if self.model is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        video = batch["video"]
        if not isinstance(video, torch.Tensor):
            video = torch.as_tensor(np.asarray(video))
        if video.ndim != 5 or video.dtype != torch.uint8:
            raise ValueError(f"batch['video'] must be uint8 [B,T,H,W,C], got {video.dtype} {tuple(video.shape)}")
        b, t, h, w, c = video.shape
        ids, recon, soft = predict_masks(self.model, video.reshape(b * t, h, w, c),
                                         self.config.predict_batch_size, self.config.amp)
        k = soft.shape[1]
        return Prediction(masks=ids.reshape(b, t, h, w),
                          recon=recon.permute(0, 2, 3, 1).reshape(b, t, h, w, c),
                          soft_masks=soft.reshape(b, t, k, h, w))
