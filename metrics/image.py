"""Reconstruction error (docs/metrics.md §7).

``mse`` = mean of ``(x − y)²`` over C, H, W of each frame in [0, 1] (uint8 is divided by 255),
then the mean over the frames of a video: ``F.mse_loss(reduction="mean")`` per image, the convention
of seed 000 Tables 1-3. ``reduction="sum"`` (also ``mse_sum``) sums over C, H, W instead, the
labelled ClevrTex / SlotDiffusion convention (``= C·H·W × mse``). Computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._checks import wrap_output

__all__ = ["mse", "mse_sum"]

_REDUCTIONS = ("mean", "sum")
_CHUNK_ELEMS = 1 << 22  # elements per float64 chunk (32 MiB)


def _check_image(x: Any, name: str) -> None:
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name}: expected a numpy array or torch tensor [B,T,H,W,C], got {type(x).__name__}")
    if x.ndim != 5:
        raise ValueError(f"{name}: expected images [B,T,H,W,C] (images: T = 1), got shape {tuple(x.shape)}")
    if any(int(s) == 0 for s in x.shape):
        raise ValueError(
            f"{name}: empty batch or empty frames, shape {tuple(x.shape)}; expected [B,T,H,W,C] with all sizes >= 1"
        )
    if isinstance(x, torch.Tensor):
        ok = x.dtype == torch.uint8 or x.dtype.is_floating_point
    else:
        ok = x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)
    if not ok:
        raise TypeError(f"{name}: expected uint8 or float images in [0, 1], got dtype {x.dtype}")


def _unit(x: Any, name: str) -> Any:
    """float64 in [0, 1]: uint8 / 255; floats are checked (NaN or values outside [0, 1] are errors)."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.uint8:
            return x.to(torch.float64) / 255.0
        x = x.to(torch.float64)
        bad_nan = bool(torch.isnan(x).any())
        lo, hi = (float(x.min()), float(x.max())) if not bad_nan else (0.0, 0.0)
    else:
        if x.dtype == np.uint8:
            return x.astype(np.float64) / 255.0
        x = x.astype(np.float64)
        bad_nan = bool(np.isnan(x).any())
        lo, hi = (float(x.min()), float(x.max())) if not bad_nan else (0.0, 0.0)
    if bad_nan:
        raise ValueError(f"{name}: contains NaN; expected images in [0, 1]")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: values in [{lo:g}, {hi:g}]; expected float images in [0, 1] (or uint8)")
    return x


def mse(x: Any, y: Any, *, reduction: str = "mean") -> Any:
    """Per-sample reconstruction error, float64 ``[B]`` (§7).

    Args:
        x, y: images ``[B,T,H,W,C]``, uint8 or float in [0, 1] (each may be either).
        reduction: ``"mean"`` over C, H, W per frame (default), or ``"sum"``; then mean over frames.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    _check_image(x, "x")
    _check_image(y, "y")
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(
            f"y: shape {tuple(y.shape)} does not match x shape {tuple(x.shape)}; expected the same [B,T,H,W,C]"
        )
    tensors = [a for a in (x, y) if isinstance(a, torch.Tensor)]
    device = tensors[0].device if tensors else None
    if len({a.device for a in tensors}) > 1:
        raise ValueError(f"x and y are on different devices ({x.device}, {y.device})")
    if tensors:
        x = torch.as_tensor(x, device=device)
        y = torch.as_tensor(y, device=device)
    B = int(x.shape[0])
    per = int(np.prod(x.shape[1:]))
    step = max(1, _CHUNK_ELEMS // per)
    parts = []
    for lo in range(0, B, step):
        d = _unit(x[lo : lo + step], "x") - _unit(y[lo : lo + step], "y")
        sq = d * d
        per_frame = sq.mean((2, 3, 4)) if reduction == "mean" else sq.sum((2, 3, 4))
        parts.append(per_frame.mean(1))
    vals = torch.cat(parts) if tensors else np.concatenate(parts)
    return wrap_output(vals, "torch" if tensors else "numpy", device)


def mse_sum(x: Any, y: Any) -> Any:
    """Sum-convention MSE (ClevrTex, SlotDiffusion): ``mse(x, y, reduction="sum")``."""
    return mse(x, y, reduction="sum")
