"""Input validation and array plumbing shared by every metric.

Every public metric accepts numpy arrays or torch tensors. The rules (docs/metrics.md §0):

* ids are integer ``[B,T,H,W]`` (images: ``T = 1``), never negative, at most ``2**63 - 1`` (every
  count key is int64: larger uint64 ids are refused by name); 0 = background in the GT;
* predictions may instead be soft masks, float ``[B,T,K,H,W]``, reduced by ``argmax`` over K
  (ties go to the lowest index, as both numpy and torch do); NaN in soft masks is an error;
* the batch must not be empty and ``true``/``pred`` must agree on ``[B,T,H,W]``.

Bad input raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape or values)
with a message that names the argument and what was expected.

Computation backend: CPU inputs (numpy, or torch tensors on the CPU) are processed with numpy,
whose ``bincount`` measured ~20x faster than ``torch.bincount`` on CPU for the contingency tables
(see ``benchmarks/bench_metrics.py``); tensors on an accelerator stay there and use torch.
Results follow the input: torch in -> torch float64 on the same device, numpy in -> numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "Ids",
    "id_range",
    "prepare_ids",
    "prepare_pair",
    "prepare_valid",
    "wrap_output",
    "is_tensor",
    "MAX_TABLE_CELLS",
    "check_table_size",
]

# The largest table a metric builds densely (one sample's contingency table, a confusion matrix,
# a matching matrix): 2**25 cells, 256 MiB as int64. Above it a table is counted sparsely where
# the metric needs only the non-zero counts (ARI, mBO, mIoU), and refused with this limit
# otherwise, instead of failing on a many-GiB allocation.
MAX_TABLE_CELLS = 1 << 25
_INT64_MAX = (1 << 63) - 1
# torch's wide unsigned dtypes lack most CPU kernels (aminmax, bincount); the torch backend
# converts them to int64 up front. A uint64 id >= 2**63 has no int64 value and is refused.
_TORCH_UNSIGNED = tuple(getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n))


def check_table_size(shape: tuple[int, ...], what: str, hint: str = "") -> None:
    """ValueError naming ``what`` when a dense table of ``shape`` would exceed ``MAX_TABLE_CELLS``."""
    cells = 1
    for n in shape:
        cells *= int(n)
    if cells > MAX_TABLE_CELLS:
        dims = " x ".join(str(int(n)) for n in shape)
        raise ValueError(
            f"{what}: a {dims} table ({cells * 8 / 2**30:.1f} GiB as int64) exceeds the limit of "
            f"{MAX_TABLE_CELLS} cells ({MAX_TABLE_CELLS * 8 / 2**20:g} MiB){hint}"
        )


def _int64_range_error(name: str, hi: int) -> ValueError:
    return ValueError(
        f"{name}: id {hi} exceeds the int64 range (ids must be <= 2**63 - 1); relabel the ids "
        f"to a compact range, e.g. with np.unique(ids, return_inverse=True)"
    )


# Backend for inputs on the CPU. numpy by measurement (module docstring); tests set it to "torch"
# to exercise the accelerator code path on a CPU-only machine.
_CPU_BACKEND = "numpy"


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _kind(x: Any, name: str) -> str:
    if isinstance(x, torch.Tensor):
        return "torch"
    if isinstance(x, np.ndarray):
        return "numpy"
    raise TypeError(f"{name}: expected a numpy array or a torch tensor, got {type(x).__name__}")


def _is_int_dtype(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return not (x.dtype.is_floating_point or x.dtype.is_complex)
    return x.dtype.kind in "iub"  # signed, unsigned, bool (dtype.kind: cheaper than issubdtype)


def _is_float_dtype(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype.is_floating_point
    return x.dtype.kind == "f"


@dataclass
class Ids:
    """Validated id maps of one call.

    ``true``/``pred`` are numpy arrays (CPU backend) or torch tensors on ``device``;
    ``true_max``/``pred_max`` are the largest ids, or None when the caller deferred the value
    checks (``check_values=False``) to do them chunk by chunk with ``id_range``.
    """

    true: Any
    pred: Any
    backend: str  # "numpy" | "torch"
    out_kind: str  # "numpy" | "torch": what the caller gets back
    device: torch.device | None
    true_max: int | None
    pred_max: int | None
    soft_k: int | None = None  # K of soft-mask predictions (None for id maps)
    true_name: str = "true_ids"
    pred_name: str = "pred_ids"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(s) for s in self.true.shape)  # type: ignore[return-value]


def _argmax_soft(x: Any, name: str) -> Any:
    """Soft masks [B,T,K,H,W] -> ids [B,T,H,W] (argmax over K, ties to the lowest index)."""
    if x.shape[2] == 0:
        raise ValueError(f"{name}: soft masks [B,T,K,H,W] need K >= 1, got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        if torch.isnan(x).any():
            raise ValueError(f"{name}: soft masks [B,T,K,H,W] contain NaN")
        return x.argmax(dim=2)
    if np.isnan(x).any():
        raise ValueError(f"{name}: soft masks [B,T,K,H,W] contain NaN")
    return x.argmax(axis=2)


def _minmax(x: Any) -> tuple[int, int]:
    """(min, max) of an integer array in one pass where possible.

    numpy signed ints: the max of the same bits read as unsigned is the max when no value is
    negative, and has the top bit set otherwise (then the min is taken for the error message).
    """
    if isinstance(x, torch.Tensor):
        if x.numel() == 0:
            return 0, -1
        if x.dtype == torch.bool:
            return 0, int(x.any())
        if x.dtype == torch.uint8:
            return 0, int(x.max())
        lo, hi = torch.aminmax(x)
        return int(lo), int(hi)
    if x.size == 0:
        return 0, -1
    if x.dtype.kind in "ub":
        return 0, int(x.max())
    u = x.view(np.dtype(f"u{x.dtype.itemsize}"))
    hi = int(u.max())
    if hi >= 1 << (8 * x.dtype.itemsize - 1):
        return int(x.min()), int(x.max())
    return 0, hi


def prepare_ids(x: Any, name: str, *, allow_soft: bool = True, ndim: int = 4, layout: str = "[B,T,H,W]") -> Any:
    """Check one id map (or soft masks when ``allow_soft``); return integer ids, same kind."""
    _kind(x, name)
    if _is_float_dtype(x):
        if allow_soft and x.ndim == ndim + 1:
            return _argmax_soft(x, name)
        soft = f" or soft masks {layout[:-5]},K{layout[-5:]} (float)" if allow_soft else ""
        raise TypeError(
            f"{name}: expected integer ids {layout}{soft}; got dtype {x.dtype} with shape "
            f"{tuple(x.shape)} (float ids are not accepted)"
        )
    if not _is_int_dtype(x):
        raise TypeError(f"{name}: expected integer ids {layout}, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected integer ids {layout}, got shape {tuple(x.shape)}")
    return x


def id_range(x: Any, name: str) -> int:
    """Largest id + 1 of an integer array (numpy or torch); ValueError naming ``name`` on a negative id
    or on an id beyond the int64 range (uint64 ids >= 2**63: every count key is int64)."""
    lo, hi = _minmax(x)
    if lo < 0:
        hint = " (0 = background)" if "true" in name else ""
        raise ValueError(f"{name}: negative id {lo}; expected ids >= 0{hint}")
    if hi > _INT64_MAX:
        raise _int64_range_error(name, hi)
    return hi + 1


def _torch_int64(x: torch.Tensor, name: str) -> torch.Tensor:
    """uint16/32/64 tensors -> int64 (other dtypes unchanged); a uint64 id >= 2**63 is refused, as
    its int64 view would be negative (CUDA reported such an id as "negative id -1")."""
    if x.dtype not in _TORCH_UNSIGNED:
        return x
    if x.dtype == torch.uint64:
        s = x.view(torch.int64)
        neg = s < 0
        if bool(neg.any()):
            raise _int64_range_error(name, int(s[neg].max()) + (1 << 64))
        return s
    return x.to(torch.int64)


def prepare_pair(
    true_ids: Any, pred_ids: Any, *, true_name: str = "true_ids", pred_name: str = "pred_ids", check_values: bool = True
) -> Ids:
    """Validate a (GT, prediction) pair of id maps for the segmentation metrics.

    ``check_values=False`` skips the min/max pass over the whole batch; the caller must then
    check every chunk with ``id_range`` (cheaper: the chunk is in cache, §speed in the module doc).
    """
    tk, pk = _kind(true_ids, true_name), _kind(pred_ids, pred_name)
    t = prepare_ids(true_ids, true_name, allow_soft=False)
    soft_k = int(pred_ids.shape[2]) if (_is_float_dtype(pred_ids) and pred_ids.ndim == 5) else None
    p = prepare_ids(pred_ids, pred_name, allow_soft=True)
    if tuple(t.shape) != tuple(p.shape):
        raise ValueError(
            f"{pred_name}: shape {tuple(p.shape)} (after argmax of soft masks) does not match "
            f"{true_name} shape {tuple(t.shape)}; expected the same [B,T,H,W]"
        )
    if any(int(s) == 0 for s in t.shape):
        raise ValueError(
            f"{true_name}: empty batch or empty frames, shape {tuple(t.shape)}; expected [B,T,H,W] with B, T, H, W >= 1"
        )
    out_kind = "torch" if "torch" in (tk, pk) else "numpy"
    devices = {x.device for x in (t, p) if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"{true_name} and {pred_name} are on different devices {sorted(map(str, devices))}")
    device = devices.pop() if devices else None
    if (device is not None and device.type != "cpu") or _CPU_BACKEND == "torch":
        backend = "torch"
        t = _torch_int64(torch.as_tensor(t, device=device), true_name)
        p = _torch_int64(torch.as_tensor(p, device=device), pred_name)
        device = t.device
    else:
        backend = "numpy"
        t = _to_numpy(t)
        p = _to_numpy(p)
    tmax = pmax = None
    if check_values:
        tmax = id_range(t, true_name) - 1
        pmax = id_range(p, pred_name) - 1
    return Ids(t, p, backend, out_kind, device, tmax, pmax, soft_k, true_name, pred_name)


def prepare_valid(valid: Any, ids: Ids, name: str = "valid") -> Any:
    """Optional boolean mask of counted points, same [B,T,H,W] as the ids."""
    if valid is None:
        return None
    _kind(valid, name)
    if tuple(valid.shape) != ids.shape:
        raise ValueError(
            f"{name}: shape {tuple(valid.shape)} does not match ids {ids.shape}; expected a boolean [B,T,H,W] mask"
        )
    is_bool = valid.dtype == torch.bool if isinstance(valid, torch.Tensor) else valid.dtype == np.bool_
    if not is_bool:
        raise TypeError(f"{name}: expected a boolean [B,T,H,W] mask, got dtype {valid.dtype}")
    if ids.backend == "torch":
        return torch.as_tensor(valid, device=ids.device)
    return _to_numpy(valid)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_numpy(x: Any) -> np.ndarray:
    return _to_numpy(x)


def wrap_output(values: Any, out_kind: str, device: torch.device | None) -> Any:
    """float64 per-sample values -> the caller's kind (torch float64 on ``device`` or numpy)."""
    if out_kind == "torch":
        v = values if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values, np.float64))
        return v.to(device=device or "cpu", dtype=torch.float64)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)
