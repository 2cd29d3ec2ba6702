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
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .base import FitContext, Method, Prediction, config_for, register_method


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
    def for_dataset(cls, dataset: str, variant: str | None = None) -> ConnCompConfig:
        """The config :data:`DATASET_SETTINGS` gives (dataset, variant)."""
        return config_for(cls, DATASET_SETTINGS, dataset, variant)


# Per-dataset thresholds (ocbench's, set from each renderer; the SILOT supplement gives none).
DATASET_SETTINGS = {
    # digit strokes are grey-level alpha: a higher threshold drops the faint rim that would glue neighbouring
    # digits together, and 8-connectivity keeps thin diagonal strokes whole
    "scattered_mnist": {"fg_threshold": 0.25, "connectivity": 8, "min_pixels": 4},
    # supersampled shape edges are blends with black: same hue, lower value (cosine ~1)
    "scattered_shapes": {"connectivity": 8},
    # binary rasterisation, flat colours; the background is a random grey, so the colour test is what
    # separates a desaturated sprite from it
    "multi_dsprites": {"fg_threshold": 0.02, "colour_cos": 0.999},
}


def _frame_background(frames: np.ndarray) -> np.ndarray:
    """Most frequent colour of each frame: [F,H,W,C] uint8 -> [F,C] (ties: the smallest colour code)."""
    F, H, W, C = frames.shape
    P = H * W
    if C == 1:  # one bincount over (frame, level) pairs
        counts = np.bincount((np.arange(F)[:, None] * 256 + frames.reshape(F, P)).ravel(), minlength=F * 256)
        return counts.reshape(F, 256).argmax(1)[:, None]
    flat = frames.reshape(F, P, C).astype(np.uint32)
    codes = np.zeros((F, P), np.uint32)
    for c in range(C):
        codes = (codes << 8) | flat[..., c]
    s = np.sort(codes, axis=1)
    # runs of equal codes in the flattened sorted rows; every row starts a run
    change = np.ones((F, P), bool)
    change[:, 1:] = s[:, 1:] != s[:, :-1]
    starts = np.flatnonzero(change.ravel())
    lengths = np.diff(np.append(starts, F * P))
    row = starts // P
    # longest run per row: order runs by (row, -length, start) and take each row's first
    order = np.lexsort((starts, -lengths, row))
    first = order[np.searchsorted(row[order], np.arange(F))]
    code = s.ravel()[starts[first]].astype(np.int64)
    return np.stack([(code >> (8 * (C - 1 - c))) & 255 for c in range(C)], axis=1)


def segment_frames(frames: np.ndarray, cfg: ConnCompConfig) -> np.ndarray:
    """Label the connected same-colour components of each frame: [F,H,W,C] uint8 -> int32 [F,H,W].

    Labels are 1..n per frame in raster order of their first pixel; 0 = background.
    """
    F, H, W, C = frames.shape
    if cfg.connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {cfg.connectivity}")
    bg = _frame_background(frames).astype(np.int16)
    fg = (np.abs(frames.astype(np.int16) - bg[:, None, None, :]) > cfg.fg_threshold * 255.0).any(-1)  # [F,H,W]
    n = F * H * W
    if C == 1:
        # one colour: plain connected components of the foreground, every frame in one C call (the
        # structure has no links along the frame axis)
        st = np.zeros((3, 3, 3), bool)
        st[1] = ndimage.generate_binary_structure(2, 1 if cfg.connectivity == 4 else 2)
        comp, _ = ndimage.label(fg, structure=st)
        comp = comp.reshape(-1)
    else:
        # a graph over the foreground pixels only (most pixels are background): neighbours join when
        # both are foreground and their colours' cosine similarity is at least colour_cos
        fg_flat = fg.reshape(-1)
        m = int(fg_flat.sum())
        node = np.full(n, -1, np.int64)
        node[fg_flat] = np.arange(m)
        node = node.reshape(F, H, W)
        pix = frames.reshape(n, C)[fg_flat].astype(np.float32)
        unit = pix / np.maximum(np.linalg.norm(pix, axis=1, keepdims=True), 1e-6)
        offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if cfg.connectivity == 8 else [])
        rows, cols = [], []
        for dy, dx in offsets:
            ys, yd = slice(0, H - dy), slice(dy, H)
            xs, xd = slice(max(0, -dx), W - max(0, dx)), slice(max(0, dx), W + min(0, dx))
            ok = fg[:, ys, xs] & fg[:, yd, xd]
            a, b = node[:, ys, xs][ok], node[:, yd, xd][ok]
            same = np.einsum("ij,ij->i", unit[a], unit[b]) >= cfg.colour_cos
            rows.append(a[same])
            cols.append(b[same])
        r, c = np.concatenate(rows), np.concatenate(cols)
        graph = csr_matrix((np.ones(len(r), np.int8), (r, c)), shape=(m, m))
        _, fg_comp = connected_components(graph, directed=False)
        comp = np.zeros(n, np.int64)
        comp[fg_flat] = fg_comp + 1  # background pixels are no component
    # keep components of at least min_pixels; number them 1..k per frame by their first pixel
    size = np.bincount(comp)
    first = np.full(len(size), n, np.int64)
    np.minimum.at(first, comp, np.arange(n))
    keep = size >= cfg.min_pixels
    keep[0] = False
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(first[kept], kind="stable")]
    frame_of = first[kept] // (H * W)
    rank = np.arange(len(kept)) - np.searchsorted(frame_of, frame_of, side="left") + 1
    lut = np.zeros(len(size), np.int32)
    lut[kept] = rank
    return lut[comp].reshape(F, H, W)


def _component_stats(labels: np.ndarray, frames: np.ndarray):
    """Per frame and component: counts [F,K+1], centroids [F,K+1,2] (row, col), mean colours [F,K+1,C].

    One weighted bincount over (frame, label) pairs for the whole batch; row 0 is the background.
    """
    F, H, W = labels.shape
    C = frames.shape[-1]
    k1 = int(labels.max()) + 1
    key = (np.arange(F)[:, None] * k1 + labels.reshape(F, H * W)).ravel()
    size = F * k1
    cnt = np.bincount(key, minlength=size).astype(np.float64)
    den = np.maximum(cnt, 1.0)
    yy, xx = np.divmod(np.arange(H * W), W)
    cy = np.bincount(key, weights=np.tile(yy, F), minlength=size) / den
    cx = np.bincount(key, weights=np.tile(xx, F), minlength=size) / den
    pix = frames.reshape(F * H * W, C).astype(np.float64)
    col = np.stack([np.bincount(key, weights=pix[:, ch], minlength=size) / den for ch in range(C)], axis=1)
    return cnt.reshape(F, k1), np.stack([cy, cx], 1).reshape(F, k1, 2), col.reshape(F, k1, C)


def _same_colour(a: np.ndarray, b: np.ndarray, cos_min: float) -> np.ndarray:
    """[ka,C] x [kb,C] -> bool [ka,kb]; single-channel colours always match."""
    if a.shape[1] == 1:
        return np.ones((len(a), len(b)), bool)
    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-6)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-6)
    return na @ nb.T >= cos_min


def track_video(labels: np.ndarray, video: np.ndarray, cfg: ConnCompConfig, stats=None) -> np.ndarray:
    """Link per-frame components into tracks: [T,H,W] labels -> [T,H,W] ids stable over time.

    Components of consecutive frames are matched by Hungarian assignment on centroid distance; pairs
    whose mean colours differ (or that jumped more than ``max_match_px``) cannot match. Unmatched
    components start new tracks.
    """
    T = labels.shape[0]
    cnt, cent_all, col_all = stats if stats is not None else _component_stats(labels, video)
    out = np.zeros_like(labels)
    prev_ids = np.zeros(0, np.int32)
    prev_cent = np.zeros((0, 2))
    prev_col = np.zeros((0, video.shape[-1]))
    next_id = 1
    for t in range(T):
        k = int((cnt[t, 1:] > 0).sum())  # labels are 1..k per frame
        cent, col = cent_all[t, 1 : k + 1], col_all[t, 1 : k + 1]
        ids = np.zeros(k, np.int32)
        if k and len(prev_ids):
            d = np.linalg.norm(cent[:, None, :] - prev_cent[None, :, :], axis=-1)
            allowed = _same_colour(col, prev_col, cfg.colour_cos) & (d <= cfg.max_match_px)
            r, c = linear_sum_assignment(np.where(allowed, d, 1e9))
            ok = allowed[r, c]
            ids[r[ok]] = prev_ids[c[ok]]
        new = ids == 0
        ids[new] = np.arange(next_id, next_id + int(new.sum()), dtype=np.int32)
        next_id += int(new.sum())
        out[t] = np.concatenate([[0], ids]).astype(np.int32)[labels[t]]
        prev_ids, prev_cent, prev_col = ids, cent, col
    return out


@register_method("conncomp", kinds={"image", "video", "colour", "binary"}, config=ConnCompConfig, learned=False)
class ConnComp(Method):
    """Non-learned: colour connected components per frame, Hungarian linking over time."""

    dataset_settings = DATASET_SETTINGS

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
        frames = video.reshape(B * T, H, W, C)
        flat = segment_frames(frames, self.config)
        if T == 1:  # images: nothing to link
            masks = flat.reshape(B, T, H, W).astype(np.int64)
        else:
            cnt, cent, col = _component_stats(flat, frames)
            labels = flat.reshape(B, T, H, W)
            masks = np.stack(
                [
                    track_video(
                        labels[b],
                        video[b],
                        self.config,
                        (cnt[b * T : (b + 1) * T], cent[b * T : (b + 1) * T], col[b * T : (b + 1) * T]),
                    )
                    for b in range(B)
                ]
            ).astype(np.int64)
        if device is not None:
            import torch

            masks = torch.from_numpy(masks).to(device)
        return Prediction(masks=masks)
