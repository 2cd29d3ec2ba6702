"""The one training loop of the learned baselines, and the base class of the image methods.

A learned image method supplies a ``torch.nn.Module`` whose ``forward(x)`` returns the scalar
training loss of a float batch ``x`` [B,C,H,W] in [0,1], and whose ``decompose(x)`` returns
``(recon [B,C,H,W] in [0,1], soft_masks [B,K,H,W])``. :class:`Trainer` (or :func:`train_model`,
``Trainer(...).run()``) does the rest:

- device: CUDA when available (``ctx.device`` overrides), bf16 autocast, TF32, cuDNN autotuning and
  channels-last memory on the GPU; optional ``torch.compile`` with a clean fallback to eager;
- data: the whole training split, folded into frames [N*T,H,W,C] uint8, is held on the device and
  batches are drawn there with a seeded generator (DESIGN.md "Performance habits"), as
  ``generators.DeviceSplit`` does for whole videos; a split that does not fit (over half the free GPU
  memory, or 8 GiB on the CPU) is read from the host memmap with pinned copies instead;
  :class:`ClipSource` draws clips of consecutive frames instead, for models that see several per step;
- Adam/RMSProp, global-norm gradient clipping, linear warm-up then exponential decay
  (``lr * decay_rate ** (step / decay_steps)``, the Slot Attention / IODINE code's form);
- optional curriculum (settings as a function of the step, e.g. the clip length) and phases (e.g. a dVAE
  pre-trained before the main model), each phase with its own parameters and optimiser;
- checkpoints every N steps, at each phase's end and at the end (model, optimiser, scheduler, RNG states,
  step, phase, curve), as tensors and plain values only, resumed automatically from ``ctx.checkpoint_dir``
  and read with ``weights_only=True`` and checked against their digest (a crafted, truncated or altered
  file is a :class:`CheckpointError`, never code run);
- a tqdm bar with loss and steps/s; a validation FG-ARI learning curve in ``ctx.info["curve"]``;
- divergence (NaN/inf loss) raises :class:`TrainingDiverged`; ``ctx.time_budget_s`` stops cleanly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ocbench_common.files import atomic_write

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


class DeviceError(RuntimeError, ValueError):
    """A device that cannot be used here. A ValueError too, so the CLI reports it as a bad argument."""


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """CUDA when available unless ``requested`` names a device; a CUDA request without CUDA is an error.

    The project's one device resolver: the trainer, ``benchmark.runner`` and the CLI's ``--device`` use it.
    """
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(
            f"device={requested!r} is not a device torch knows (e.g. cpu, cuda, cuda:1, auto): {e}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device={requested!r} was requested but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    """Seed torch (every device) and numpy's global generator: the project's one seeding helper, used by
    the trainer and by ``benchmark.runner`` before each unit builds its method."""
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
    """Random frame batches for training: held on the device when it fits, else read from the host.

    The batch-source protocol of :class:`Trainer`: ``sample(batch_size)`` gives uint8 on the device, and
    ``gen`` is the seeded ``torch.Generator`` whose state the checkpoint keeps (so a resume draws on).
    """

    def __init__(self, split, device: torch.device, seed: int, on_device: bool | None = None):
        self._hold(_frames_numpy(split), device, seed, on_device)

    def _hold(self, data: np.ndarray, device: torch.device, seed: int, on_device: bool | None) -> None:
        """Keep ``data`` (indexed on its first axis) on the device when it fits, else as the host memmap."""
        self.device = device
        self.n = data.shape[0]
        if self.n == 0:
            raise ValueError("the training split is empty")
        if on_device is None:
            on_device = self._fits(data.nbytes)
        self.on_device = on_device
        if on_device:
            # Only the frames move (not the masks, which training never reads), in chunks, so a big
            # video split is never held twice in host memory (the work of ``split.to(device)``).
            self.frames = torch.empty(data.shape, dtype=torch.uint8, device=device)
            step = max(1, (256 * 2**20) // max(1, data[0].nbytes))
            for lo in range(0, self.n, step):
                self.frames[lo : lo + step].copy_(torch.from_numpy(np.array(data[lo : lo + step])))
            self.gen = torch.Generator(device=device).manual_seed(seed)
        else:
            self.frames_np = data
            self.gen = torch.Generator().manual_seed(seed)

    def _fits(self, nbytes: int) -> bool:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return nbytes < 0.5 * free  # leave half the free memory to the model
        return nbytes < 8 * 2**30

    def _to_device(self, out: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(out)
        if self.device.type == "cuda":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def sample(self, batch_size: int) -> torch.Tensor:
        """uint8 [B,H,W,C] on the device."""
        if self.on_device:
            idx = torch.randint(0, self.n, (batch_size,), device=self.device, generator=self.gen)
            return self.frames[idx]
        idx = torch.randint(0, self.n, (batch_size,), generator=self.gen).numpy()
        order = np.argsort(idx)  # sorted reads from the memmap, original order restored
        out = np.empty((batch_size, *self.frames_np.shape[1:]), np.uint8)
        out[order] = self.frames_np[idx[order]]
        return self._to_device(out)


class ClipSource(FrameSource):
    """Random clips of ``clip_length`` consecutive frames, uint8 [B,L,H,W,C], for models that see several
    frames per step. ``clip_length`` may change between steps (a curriculum over clip length); each clip
    is one video and one start drawn from ``gen``, so a resumed run draws the same clips."""

    def __init__(self, split, device: torch.device, seed: int, clip_length: int, on_device: bool | None = None):
        video = split.video
        if isinstance(video, torch.Tensor):
            video = video.cpu().numpy()
        if video.ndim != 5 or video.dtype != np.uint8:
            raise ValueError(f"split.video must be uint8 [N,T,H,W,C], got {video.dtype} {tuple(video.shape)}")
        self.t = int(video.shape[1])
        self._hold(video, device, seed, on_device)
        self.clip_length = clip_length

    @property
    def clip_length(self) -> int:
        return self._clip_length

    @clip_length.setter
    def clip_length(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= self.t:
            raise ValueError(f"clip_length must be an integer in 1..{self.t} (the videos' length), got {value!r}")
        self._clip_length = int(value)

    def sample(self, batch_size: int) -> torch.Tensor:
        """uint8 [B,L,H,W,C] on the device."""
        n_len = self.clip_length
        where = self.device if self.on_device else torch.device("cpu")
        idx = torch.randint(0, self.n, (batch_size,), device=where, generator=self.gen)
        start = torch.randint(0, self.t - n_len + 1, (batch_size,), device=where, generator=self.gen)
        if self.on_device:
            return self.frames[idx[:, None], start[:, None] + torch.arange(n_len, device=where)]
        return self._to_device(
            np.stack([self.frames_np[i, s : s + n_len] for i, s in zip(idx.tolist(), start.tolist())])
        )


def _rng_state(source: FrameSource) -> dict:
    """Every RNG state as tensors and plain numbers, so the checkpoint loads with ``weights_only=True``
    (numpy's state tuple holds an ndarray, which only a full, code-running unpickler can rebuild)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    st = {
        "torch": torch.get_rng_state(),
        "data": source.gen.get_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, source: FrameSource) -> None:
    # RNG states are CPU ByteTensors; torch.load(map_location=cuda) moved them to the GPU
    torch.set_rng_state(st["torch"].cpu())
    n = st["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
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
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
        first = next(
            (ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln),
            str(e).splitlines()[0] if str(e) else "",
        )
        raise CheckpointError(
            f"checkpoint {path} holds more than tensors and plain values and was not loaded ({first[:200]}); {remedy}"
        ) from None
    except Exception as e:  # a truncated or garbled file: zip reader errors, EOFError, ...
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); {remedy}"
        ) from None
    missing = [k for k in CHECKPOINT_KEYS + ("digest",) if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is not a trainer checkpoint of this version (missing {missing}); {remedy}"
        )
    digest = state.pop("digest")
    if digest != checkpoint_digest(state):
        raise CheckpointError(
            f"checkpoint {path} was altered after it was written (its content does not match its digest); {remedy}"
        )
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
            x = to_unit(video[lo : lo + batch_size].to(device, non_blocking=True))
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


def _error_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else 'no detail'}"


@dataclasses.dataclass
class Phase:
    """One stage of a run with its own loss module, parameters, optimiser and length: e.g. a dVAE or VQ-VAE
    pre-trained for N steps before the main model learns on its tokens.

    ``module(x)`` returns the scalar loss (None: the trainer's model). Every parameter a phase trains must
    belong to the trainer's model, whose ``state_dict`` is the one checkpointed. ``settings`` gives the
    optimiser, schedule, clipping and batch size (None: the trainer's); ``steps`` counts paper steps, scaled
    with the rest of the run (None: ``settings.steps``). Parameters outside ``params`` are not updated; the
    module should detach what it keeps frozen, or their gradients are computed for nothing.
    """

    name: str
    steps: int | None = None
    module: nn.Module | None = None
    params: Sequence[nn.Parameter] | None = None  # None: the module's parameters that require grad
    settings: TrainSettings | None = None
    validate: bool = True  # score validation FG-ARI (the model's ``decompose``) at this phase's curve points


class Trainer:
    """The one training loop, as methods small enough to test alone and to override one at a time.

    Three hooks let video models plug in without copying the loop:

    - the batch source (``source``): any object with ``sample(batch_size)`` and a seeded ``gen``
      (:class:`FrameSource` by default; :class:`ClipSource` for several frames per step); :meth:`prepare`
      turns its uint8 batch into the model's input;
    - a curriculum (``curriculum(step) -> settings``, for the update after ``step`` updates): applied by
      :meth:`apply_settings` whenever it changes, e.g. ``{"clip_length": 4}`` sets the source's attribute,
      ``{"batch_size": 16}`` the trainer's; a function of the step, so a resumed run gets it right;
    - phases (:class:`Phase`): run in order, each with its own optimiser; a checkpoint records the phase and
      its optimiser, so a run resumes mid-phase, and one is written at every phase end.

    ``run()`` is the loop; :func:`train_model` is ``Trainer(...).run()``.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainSettings,
        train,
        val,
        ctx: FitContext,
        device: torch.device | None = None,
        on_device: bool | None = None,
        *,
        phases: Sequence[Phase] | None = None,
        source=None,
        curriculum: Callable[[int], Mapping[str, Any]] | None = None,
    ):
        cfg.check()
        self.model, self.cfg, self.ctx, self.info = model, cfg, ctx, ctx.info
        self.device = device or resolve_device(ctx.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            prepare_cuda(model)
        model.to(self.device).train()
        self.amp = cfg.amp and self.cuda
        self.use_compile = self.cuda if cfg.compile is None else bool(cfg.compile)

        self.phases = list(phases) if phases else [Phase("main", cfg.steps)]
        paper_steps = self._check_phases()
        paper = sum(paper_steps)
        self.total = ctx.scale_steps(paper)
        # the warm-up and decay shrink with the run (profile fraction and max_steps cap alike), so a short
        # run sees the paper's schedule shape; a time budget does not change them (it is an interruption)
        self.sched_scale = self.total / paper
        ends = np.cumsum(paper_steps)[:-1]
        self.ends = [int(round(e * self.sched_scale)) for e in ends] + [self.total]  # phase i: ends[i-1]..ends[i]

        self.source = source if source is not None else FrameSource(train, self.device, ctx.seed, on_device)
        self.curriculum = curriculum
        self.val_video, self.val_masks = self._val_data(val)
        self.curve_every = max(1, min(cfg.val_every, self.total // 10 or 1))
        self.sync_every = _sync_interval(cfg, self.cuda)
        self.ckpt = Path(ctx.checkpoint_dir) / CHECKPOINT_NAME if ctx.checkpoint_dir else None

        self.step = 0  # updates done, over all phases
        self.curve: list[dict] = []
        self.pending: list[torch.Tensor] = []  # losses not yet checked (checking syncs the GPU)
        self.window: list[float] = []  # checked losses since the last curve point
        self.last_loss = float("nan")
        self.elapsed_before = 0.0  # seconds of the runs this one resumes
        self.budget_cut = False
        self.stage: dict | None = None  # the curriculum settings in force
        # the current phase's (set by enter_phase)
        self.phase_index = -1
        self.settings, self.params, self.module, self.loss_fn, self.compiled = cfg, [], model, model, False
        self.opt = self.sched = None
        self.batch_size = cfg.batch_size
        self.t0 = self.t_loop = None
        self.steps_at_loop = 0
        self.bar = None
        self._warned = False

    # ------------------------------------------------------------------ set-up
    def _settings(self, phase: Phase) -> TrainSettings:
        return phase.settings if phase.settings is not None else self.cfg

    def _module(self, phase: Phase) -> nn.Module:
        return phase.module if phase.module is not None else self.model

    def phase_params(self, phase: Phase) -> list[nn.Parameter]:
        if phase.params is not None:
            return list(phase.params)
        return [p for p in self._module(phase).parameters() if p.requires_grad]

    def _check_phases(self) -> list[int]:
        """Paper steps of each phase; a phase that could not be checkpointed or run is refused here."""
        owned = {id(p) for p in self.model.parameters()}
        paper_steps = []
        for phase in self.phases:
            s = self._settings(phase)
            if phase.settings is not None:
                s.check()
            steps = s.steps if phase.steps is None else phase.steps
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"phase {phase.name!r}: steps must be a positive integer, got {steps!r}")
            params = self.phase_params(phase)
            if not params:
                raise ValueError(f"phase {phase.name!r} has no parameters to train")
            if any(id(p) not in owned for p in params):
                raise ValueError(
                    f"phase {phase.name!r} trains parameters outside the trainer's model, which "
                    f"would not be checkpointed; make its module a submodule of the model"
                )
            paper_steps.append(steps)
        return paper_steps

    def _val_data(self, val):
        if val is None or len(val) == 0:
            return None, None
        size = self.cfg.val_size
        frames = _frames_numpy(val)[:size]
        masks = np.asarray(val.masks).reshape(-1, *val.masks.shape[2:])[:size]
        video = torch.from_numpy(np.array(frames)).to(self.device)  # a writable copy of the memmap slice
        return video, torch.from_numpy(masks.astype(np.int64)).to(self.device)

    def build_optimizer(self, params: list[nn.Parameter], s: TrainSettings):
        """Adam (fused on CUDA: one launch for all parameters) or RMSProp, and the scaled schedule."""
        if s.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=s.lr, betas=tuple(s.betas), eps=s.eps, fused=self.cuda or None)
        else:
            opt = torch.optim.RMSprop(params, lr=s.lr, eps=s.eps)
        schedule = Schedule(
            round(s.warmup_steps * self.sched_scale), s.decay_rate, max(1, round(s.decay_steps * self.sched_scale))
        )
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    def compile(self, module: nn.Module):
        """``(loss function, compiled?)``: ``torch.compile`` when asked, eager when it cannot even start."""
        if not self.use_compile:
            return module, False
        try:
            return torch.compile(module, mode=self.cfg.compile_mode), True
        except Exception as e:  # compile itself is lazy; most failures surface at the first call
            self.ctx.log(f"torch.compile unavailable ({type(e).__name__}: {e}); training eagerly")
            return module, False

    def enter_phase(self, index: int) -> None:
        """Make phase ``index`` current: a fresh optimiser and schedule over its parameters, its module."""
        phase = self.phases[index]
        if self.phase_index >= 0:
            self.model.zero_grad(set_to_none=True)  # the last phase's gradients are nobody's now
        self.phase_index = index
        self.settings = self._settings(phase)
        self.params = self.phase_params(phase)
        self.opt, self.sched = self.build_optimizer(self.params, self.settings)
        self.module = self._module(phase)
        self.loss_fn, self.compiled = self.compile(self.module)
        self.batch_size = self.settings.batch_size
        self.stage = None  # the curriculum is applied again over the phase's batch size
        if len(self.phases) > 1:
            lo = self.ends[index - 1] if index else 0
            self.ctx.log(f"phase {index + 1}/{len(self.phases)} {phase.name!r}: steps {lo}..{self.ends[index]}")

    def advance_phase(self) -> None:
        while self.step >= self.ends[self.phase_index] and self.phase_index + 1 < len(self.phases):
            self.enter_phase(self.phase_index + 1)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The checkpoint: tensors and plain values only (loaded with ``weights_only=True``)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "rng": _rng_state(self.source),
            "step": self.step,
            "curve": self.curve,
            "seconds": self.elapsed_before + (time.perf_counter() - self.t0),
            "phase": self.phase_index,
        }

    def save(self) -> None:
        if self.ckpt is not None:
            save_checkpoint(self.state_dict(), self.ckpt)

    def resume(self) -> None:
        """Continue from the checkpoint in ``ctx.checkpoint_dir`` if there is one, else start phase 1."""
        if self.ckpt is None or not self.ckpt.exists():
            self.enter_phase(0)
            return
        state = load_checkpoint(self.ckpt, self.device)
        try:
            phase, step = state.get("phase", 0), state["step"]  # checkpoints before phases had one
            if (
                isinstance(phase, bool)
                or not isinstance(phase, int)
                or not 0 <= phase < len(self.phases)
                or step < (self.ends[phase - 1] if phase else 0)
                or (phase + 1 < len(self.phases) and step > self.ends[phase])
            ):
                raise ValueError(
                    f"it stopped at step {step} in phase {phase!r}, but this run's phases end at steps {self.ends}"
                )
            self.model.load_state_dict(state["model"])
            self.enter_phase(phase)
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"], self.source)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # another model's or an old format's state
            raise CheckpointError(
                f"checkpoint {self.ckpt} does not fit this run ({_error_line(e)}); delete it "
                f"(or run with --force) to train this unit from scratch"
            ) from None
        self.step, self.curve, self.elapsed_before = step, state["curve"], state["seconds"]
        self.info["resumed_from_step"] = step
        self.ctx.log(f"resuming from {self.ckpt} at step {step}")

    # ------------------------------------------------------------------ one step
    def apply_curriculum(self) -> None:
        if self.curriculum is None:
            return
        settings = dict(self.curriculum(self.step))
        if settings != self.stage:
            self.apply_settings(settings)
            self.stage = settings
            self.ctx.log(f"curriculum from step {self.step}: {settings}")

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        """``batch_size`` is the trainer's; any other key must be an attribute of the batch source."""
        for key, value in settings.items():
            if key == "batch_size":
                self.batch_size = int(value)
            elif hasattr(self.source, key):
                setattr(self.source, key, value)
            else:
                raise ValueError(
                    f"curriculum setting {key!r} is neither batch_size nor an attribute of the batch "
                    f"source {type(self.source).__name__}; override Trainer.apply_settings to use it"
                )

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B,H,W,C] -> float [B,C,H,W] in [0,1] (channels-last on the GPU); clips
        [B,L,H,W,C] -> [B,L,C,H,W]."""
        if x.dim() == 5:
            return to_unit(x).reshape(x.shape[0], x.shape[1], x.shape[4], x.shape[2], x.shape[3])
        x = to_unit(x)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def next_batch(self) -> torch.Tensor:
        return self.prepare(self.source.sample(self.batch_size))

    def one_step(self, x: torch.Tensor) -> torch.Tensor:
        """One update of the current phase; the loss, detached and not yet synced."""
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.loss_fn(x)
        loss = loss.float()
        if self.cfg.debug_nan_at_step is not None and self.step + 1 == self.cfg.debug_nan_at_step:
            loss = loss * float("nan")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.clip_norm is not None:
            nn.utils.clip_grad_norm_(self.params, self.settings.clip_norm)
        self.opt.step()
        self.sched.step()
        return loss.detach()

    def guarded_step(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`one_step`, redone eagerly (and eager from then on) when the compiled module fails."""
        try:
            return self.one_step(x)
        except Exception as e:
            if not self.compiled or isinstance(e, TrainingDiverged):
                raise
            self.ctx.log(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); falling back to eager")
            self.loss_fn, self.compiled = self.module, False
            return self.one_step(x)

    # ------------------------------------------------------------------ bookkeeping
    def flush(self) -> None:
        """Check the pending losses (one GPU sync); a NaN/inf is :class:`TrainingDiverged` at its own step."""
        if not self.pending:
            return
        vals = torch.stack(self.pending).cpu().numpy().astype(np.float64)
        first = self.step - len(self.pending) + 1
        self.pending.clear()
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            self.info.update(steps=first + int(bad[0]), status="diverged")
            raise TrainingDiverged(first + int(bad[0]), float(vals[bad[0]]))
        self.window.extend(vals.tolist())
        self.last_loss = float(vals[-1])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{np.mean(vals):.4g}", lr=f"{self.sched.get_last_lr()[0]:.2e}", refresh=False)

    def validate(self) -> float | None:
        """Mean FG-ARI of the model over the first ``val_size`` validation frames (None without data)."""
        if self.val_video is None:
            return None
        try:
            from metrics import fg_ari  # lazy: the metrics package is only used for monitoring
        except ImportError as e:
            if not self._warned:
                self.ctx.log(f"validation FG-ARI unavailable ({e}); the curve records losses only")
                self._warned = True
            return None
        pred, _, _ = predict_masks(self.model, self.val_video, self.cfg.predict_batch_size, self.cfg.amp)
        scores = torch.as_tensor(fg_ari(self.val_masks[:, None], pred[:, None]), dtype=torch.float64)
        scores = scores[~torch.isnan(scores)]  # frames without foreground have no FG-ARI
        return float(scores.mean()) if scores.numel() else None

    def add_point(self) -> None:
        """A learning-curve point: mean loss since the last one, validation FG-ARI, seconds so far."""
        phase = self.phases[self.phase_index]
        point = {
            "step": self.step,
            "loss": float(np.mean(self.window)) if self.window else None,
            "val_fg_ari": self.validate() if phase.validate else None,
            "seconds": round(self.elapsed_before + time.perf_counter() - self.t0, 3),
        }
        if len(self.phases) > 1:
            point["phase"] = phase.name
        self.window.clear()
        self.curve.append(point)
        self.info["curve"] = self.curve

    def after_step(self, loss: torch.Tensor) -> None:
        """Count the update; sync, add a curve point and checkpoint when due (always at a phase's end)."""
        self.step += 1
        if self.t_loop is None:  # the first step holds compilation and autotuning: time from the second
            self.t_loop, self.steps_at_loop = time.perf_counter(), self.step
        self.pending.append(loss)
        if self.bar is not None:
            self.bar.update(1)
        if len(self.pending) >= self.sync_every:
            self.flush()
        phase_end = self.step == self.ends[self.phase_index] and self.step < self.total
        if self.step % self.curve_every == 0 or self.step == self.total or phase_end:
            self.flush()
            self.add_point()
        if self.step % self.cfg.checkpoint_every == 0 or phase_end:
            self.flush()
            self.save()

    def over_budget(self) -> bool:
        return self.ctx.time_budget_s is not None and time.perf_counter() - self.t0 >= self.ctx.time_budget_s

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Resume or start, train to the scaled step count (or the time budget); fills and returns ``ctx.info``."""
        self.resume()
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=self.total,
            initial=self.step,
            disable=not self.ctx.progress,
            mininterval=1.0,
            desc=f"{type(self.model).__name__}",
            dynamic_ncols=True,
        )
        self.t0, self.t_loop, self.steps_at_loop = time.perf_counter(), None, self.step
        try:
            while self.step < self.total:
                if self.over_budget():
                    self.budget_cut = True
                    break
                self.advance_phase()
                self.apply_curriculum()
                self.after_step(self.guarded_step(self.next_batch()))
            self.flush()
            if not self.curve or self.curve[-1]["step"] != self.step:
                self.add_point()
            self.save()
        finally:
            self.bar.close()
        return self.summary()

    def summary(self) -> dict:
        now = time.perf_counter()
        loop_s = now - self.t_loop if self.t_loop is not None else 0.0
        self.info.update(
            steps=self.step,
            total_steps=self.total,
            budget_cut=self.budget_cut,
            device=str(self.device),
            amp=self.amp,
            compiled=self.compiled,
            data_on_device=getattr(self.source, "on_device", None),
            train_seconds=round(now - self.t0, 3),
            steps_per_second=round((self.step - self.steps_at_loop) / loop_s, 3) if loop_s > 0 else None,
            final_loss=self.last_loss,
            schedule_scale=self.sched_scale,
            curve=self.curve,
            status="ok",
        )
        if len(self.phases) > 1:
            self.info["phases"] = [
                {"name": p.name, "steps": self.ends[i] - (self.ends[i - 1] if i else 0)}
                for i, p in enumerate(self.phases)
            ]
        return self.info


def train_model(
    model: nn.Module,
    cfg: TrainSettings,
    train,
    val,
    ctx: FitContext,
    device: torch.device | None = None,
    on_device: bool | None = None,
) -> dict:
    """Train ``model`` on the frames of ``train``; fills and returns ``ctx.info`` (see :class:`Trainer`)."""
    return Trainer(model, cfg, train, val, ctx, device, on_device).run()


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
        self.make_trainer(train, val, ctx, device).run()

    def make_trainer(self, train, val, ctx: FitContext, device: torch.device) -> Trainer:
        """The hook a method overrides to train with a clip source, a curriculum or phases."""
        return Trainer(self.model, self.config, train, val, ctx, device)

    def predict(self, batch: Mapping[str, Any]) -> Prediction:
        if self.model is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        video = batch["video"]
        if not isinstance(video, torch.Tensor):
            video = torch.as_tensor(np.asarray(video))
        if video.ndim != 5 or video.dtype != torch.uint8:
            raise ValueError(f"batch['video'] must be uint8 [B,T,H,W,C], got {video.dtype} {tuple(video.shape)}")
        b, t, h, w, c = video.shape
        ids, recon, soft = predict_masks(
            self.model, video.reshape(b * t, h, w, c), self.config.predict_batch_size, self.config.amp
        )
        k = soft.shape[1]
        return Prediction(
            masks=ids.reshape(b, t, h, w),
            recon=recon.permute(0, 2, 3, 1).reshape(b, t, h, w, c),
            soft_masks=soft.reshape(b, t, k, h, w),
        )
