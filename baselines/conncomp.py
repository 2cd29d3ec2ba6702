"""ConnComp: connected components of same-colour pixels, linked over time by Hungarian matching.

SILOT supplement (seed 002, App. C): per frame, adjacent pixels of the same colour are joined and
every connected component is an object; components of consecutive frames are linked by Hungarian
matching on centroid distance, with an infinite cost when the colours differ. It has nothing to
learn, and its scores show how far colour alone goes on each dataset (the calibration row).

"Same colour" must survive shading and anti-aliasing, so it is a threshold on the cosine
similarity of RGB vectors (`specs/baselines.md`): Tetrominoes' bevels scale a piece's colour
(cosine 1), and edges blended with a black background keep their hue. All of it is vectorised
over the whole batch: one sparse graph over every foreground pixel of every frame, labelled by
``scipy.sparse.csgraph.connected_components``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .base import DatasetInfo, FitContext, Method, Prediction, register_method


@dataclasses.dataclass
class ConnCompConfig:
    # a pixel is foreground when some channel differs from the frame's background colour (its most
    # frequent colour) by more than this fraction of full scale
    fg_threshold: float = 0.1
    # neighbours join when the cosine similarity of their RGB vectors is at least this; 0.99 keeps a
    # bevelled or anti-aliased object whole while splitting touching objects of different hue
    colour_cos: float = 0.99
    # 4 = edge neighbours (default, the paper's "adjacent"); 8 adds diagonals
    connectivity: int = 4
    # components smaller than this are noise (anti-aliasing specks) and go to the background
    min_pixels: int = 3
    # tracking: largest centroid jump (px) that may still link two components; inf = no limit
    max_match_px: float = math.inf

    @classmethod
    def for_dataset(cls, dataset: str, variant: str) -> "ConnCompConfig":
        if dataset == "scattered_mnist":
            # digit strokes are grey-level alpha: a higher threshold drops the faint rim that would
            # glue neighbouring digits together, and 8-connectivity keeps thin diagonal strokes whole
            return cls(fg_threshold=0.25, connectivity=8, min_pixels=4)
        if dataset == "scattered_shapes":
            # supersampled shape edges are blends with black: same hue, lower value (cosine ~1)
            return cls(connectivity=8)
        if dataset == "multi_dsprites":
            # binary rasterisation, flat colours; the background is a random grey, so the colour test
            # is what separates a desaturated sprite from it
            return cls(fg_threshold=0.02, colour_cos=0.999)
        return cls()


def _frame_background(frames: np.ndarray) -> np.ndarray:
    """Most frequent colour of each frame: [F,H,W,C] uint8 -> [F,C]."""
    F, H, W, C = frames.shape
    flat = frames.reshape(F, H * W, C).astype(np.int64)
    codes = np.zeros((F, H * W), np.int64)
    for c in range(C):
        codes = codes * 256 + flat[..., c]
    s = np.sort(codes, axis=1)
    # longest run in each sorted row = the mode
    change = np.ones_like(s, dtype=bool)
    change[:, 1:] = s[:, 1:] != s[:, :-1]
    out = np.empty((F, C), np.int64)
    for f in range(F):
        starts = np.flatnonzero(change[f])
        lengths = np.diff(np.append(starts, H * W))
        code = s[f, starts[np.argmax(lengths)]]
        for c in reversed(range(C)):
            out[f, c] = code % 256
            code //= 256
    return out


def segment_frames(frames: np.ndarray, cfg: ConnCompConfig) -> np.ndarray:
    """Label the connected same-colour components of each frame: [F,H,W,C] uint8 -> int32 [F,H,W].

    Labels are 1..n per frame in raster order of their first pixel; 0 = background.
    """
    F, H, W, C = frames.shape
    x = frames.astype(np.float32)
    bg = _frame_background(frames).astype(np.float32)
    fg = (np.abs(x - bg[:, None, None, :]) > cfg.fg_threshold * 255.0).any(-1)  # [F,H,W]
    n = F * H * W
    idx = np.arange(n).reshape(F, H, W)
    if C > 1:
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        unit = x / np.maximum(norm, 1e-6)
    offsets = [(0, 1), (1, 0)]
    if cfg.connectivity == 8:
        offsets += [(1, 1), (1, -1)]
    elif cfg.connectivity != 4:
        raise ValueError(f"connectivity must be 4 or 8, got {cfg.connectivity}")
    rows, cols = [], []
    for dy, dx in offsets:
        ys = slice(0, H - dy)
        yd = slice(dy, H)
        xs = slice(max(0, -dx), W - max(0, dx))
        xd = slice(max(0, dx), W + min(0, dx))
        ok = fg[:, ys, xs] & fg[:, yd, xd]
        if C > 1:
            cos = (unit[:, ys, xs] * unit[:, yd, xd]).sum(-1)
            ok &= cos >= cfg.colour_cos
        rows.append(idx[:, ys, xs][ok])
        cols.append(idx[:, yd, xd][ok])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    comp = comp.reshape(F, H, W)
    labels = np.zeros((F, H, W), np.int32)
    for f in range(F):
        m = fg[f]
        if not m.any():
            continue
        cf = comp[f][m]
        uniq, first, inv, counts = np.unique(cf, return_index=True, return_inverse=True, return_counts=True)
        keep = counts >= cfg.min_pixels
        # renumber kept components 1..k in raster order of their first pixel
        order = np.argsort(first)
        rank = np.zeros(len(uniq), np.int32)
        kept_sorted = order[keep[order]]
        rank[kept_sorted] = np.arange(1, len(kept_sorted) + 1, dtype=np.int32)
        out = np.zeros(H * W, np.int32)
        out[m.reshape(-1)] = rank[inv]
        labels[f] = out.reshape(H, W)
    return labels


def _component_stats(labels: np.ndarray, frame: np.ndarray):
    """Centroids [k,2] (row, col) and mean colours [k,C] of components 1..k of one frame."""
    k = int(labels.max())
    if k == 0:
        return np.zeros((0, 2)), np.zeros((0, frame.shape[-1]))
    flat = labels.reshape(-1)
    cnt = np.bincount(flat, minlength=k + 1)[1:].astype(np.float64)
    H, W = labels.shape
    yy, xx = np.divmod(np.arange(H * W), W)
    cy = np.bincount(flat, weights=yy, minlength=k + 1)[1:] / cnt
    cx = np.bincount(flat, weights=xx, minlength=k + 1)[1:] / cnt
    pix = frame.reshape(-1, frame.shape[-1]).astype(np.float64)
    col = np.stack([np.bincount(flat, weights=pix[:, ch], minlength=k + 1)[1:] / cnt
                    for ch in range(pix.shape[1])], axis=1)
    return np.stack([cy, cx], 1), col


def _same_colour(a: np.ndarray, b: np.ndarray, cos_min: float) -> np.ndarray:
    """[ka,C] x [kb,C] -> bool [ka,kb]; single-channel colours always match."""
    if a.shape[1] == 1:
        return np.ones((len(a), len(b)), bool)
    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-6)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-6)
    return na @ nb.T >= cos_min


def track_video(labels: np.ndarray, video: np.ndarray, cfg: ConnCompConfig) -> np.ndarray:
    """Link per-frame components into tracks: [T,H,W] labels -> [T,H,W] ids stable over time."""
    T = labels.shape[0]
    out = np.zeros_like(labels)
    prev_ids = np.zeros(0, np.int32)
    prev_cent = np.zeros((0, 2))
    prev_col = np.zeros((0, video.shape[-1]))
    next_id = 1
    for t in range(T):
        cent, col = _component_stats(labels[t], video[t])
        k = len(cent)
        ids = np.zeros(k, np.int32)
        if k and len(prev_ids):
            d = np.linalg.norm(cent[:, None, :] - prev_cent[None, :, :], axis=-1)
            allowed = _same_colour(col, prev_col, cfg.colour_cos) & (d <= cfg.max_match_px)
            big = 1e9
            cost = np.where(allowed, d, big)
            r, c = linear_sum_assignment(cost)
            ok = allowed[r, c]
            ids[r[ok]] = prev_ids[c[ok]]
        for i in range(k):
            if ids[i] == 0:
                ids[i] = next_id
                next_id += 1
        lut = np.concatenate([[0], ids]).astype(np.int32)
        out[t] = lut[labels[t]]
        prev_ids, prev_cent, prev_col = ids, cent, col
    return out


@register_method("conncomp", kinds={"image", "video", "colour", "binary"}, config=ConnCompConfig, learned=False)
class ConnComp(Method):
    """Non-learned: colour connected components per frame, Hungarian linking over time."""

    def fit(self, train, val, ctx: FitContext) -> None:
        return None  # nothing to learn

    def predict(self, batch) -> Prediction:
        video = batch["video"]
        device = None
        if hasattr(video, "detach"):
            device = video.device
            video = video.detach().cpu().numpy()
        video = np.asarray(video)
        B, T, H, W, C = video.shape
        labels = segment_frames(video.reshape(B * T, H, W, C), self.config).reshape(B, T, H, W)
        masks = np.stack([track_video(labels[b], video[b], self.config) for b in range(B)])
        masks = masks.astype(np.int64)
        if device is not None:
            import torch

            masks = torch.from_numpy(masks).to(device)
        return Prediction(masks=masks)
