"""CLEAR-MOT tracking metrics from per-frame id maps (metrics.md §6).

Per video and frame: the GT objects are the ids > 0 with at least ``min_pixels`` pixels, the
hypotheses the predicted ids with a non-empty mask, less the ids the method declares background
and the segments whose IoU with the GT background exceeds ``exclude_bg_iou`` (OCRB's
``--exclude_bg`` rule). Distances are ``1 − IoU`` (exact mask IoU, or box IoU with
``geometry="box"``), forbidden (NaN) where ``IoU < iou_threshold``. The IoUs of all (gt, pred)
pairs of all frames of a video come from one ``bincount`` of ``(frame, gt, pred)`` keys.

Event generation reimplements ``motmetrics.MOTAccumulator.update`` of py-motmetrics 1.4.0
(``max_switch_time = inf``) in plain numpy/scipy, to the tie-breaks:

1. continuity: for each object (ascending id) with a *last match ever* ``m[o]`` whose hypothesis is
   present, not yet taken, at a finite distance: MATCH;
2. the rest: ``scipy.optimize.linear_sum_assignment`` on the full distance matrix where taken rows
   and columns and forbidden pairs are replaced by motmetrics' constant ``2·r·c + 1``
   (``r = min(shape)``, ``c = max|finite| + 1``): maximum cardinality, then minimum distance; pairs at
   a forbidden entry are dropped; a pair is a SWITCH when ``o`` was matched before to another id;
3. unmatched objects are MISSes, unmatched hypotheses FPs.

One accumulator per video (object ``o`` of video v is its own object); the dataset value sums
the counts (motmetrics' ``OVERALL`` row): ``mota = 1 − (misses + switches + fp) / num_objects``,
``motp = Σ distance / (matches + switches)``, ``motp_iou = 1 − motp``. MOTA is NaN with
``status="no_gt_objects"`` when there are no GT objects at all (never silently 0 or −inf).

``ocrb_compat=True`` reproduces ``ecker-lab/object-centric-representation-benchmark``
``ocrb/eval/eval_mot.py``: frames ``[2, 10)``, masks of <= 5 pixels dropped (GT and predictions),
``dist > iou_threshold`` forbidden, the background exclusion applied to the last GT row (the
background), and **one accumulator over the whole dataset** (pairings carry across videos);
it adds OCRB's reported numbers (``ocrb_*``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from . import _checks
from ._checks import check_table_size, prepare_pair
from .versions import VERSIONS

__all__ = ["clear_mot", "mot", "TrackingAccumulator", "frame_inputs", "COUNT_KEYS"]

COUNT_KEYS = ("num_frames", "num_objects", "num_matches", "num_switches", "num_misses", "num_false_positives")
_GEOMETRIES = ("mask", "box")
_OCRB_MIN_PIXELS = 6  # OCRB keeps a mask when mask.sum() > 5


@dataclass
class _Options:
    iou_threshold: float = 0.5
    min_pixels: int = 1
    exclude_bg_iou: float | None = 0.2
    geometry: str = "mask"
    ocrb_compat: bool = False
    ocrb_frames: tuple[int, int] = (2, 10)

    def check(self) -> None:
        if not (isinstance(self.iou_threshold, (int, float)) and 0.0 <= self.iou_threshold <= 1.0):
            raise ValueError(f"iou_threshold: expected a number in [0, 1], got {self.iou_threshold!r}")
        if not (isinstance(self.min_pixels, (int, np.integer)) and self.min_pixels >= 1):
            raise ValueError(f"min_pixels: expected an int >= 1, got {self.min_pixels!r}")
        if self.exclude_bg_iou is not None and not (0.0 <= float(self.exclude_bg_iou) <= 1.0):
            raise ValueError(f"exclude_bg_iou: expected None or a number in [0, 1], got {self.exclude_bg_iou!r}")
        if self.geometry not in _GEOMETRIES:
            raise ValueError(f"geometry: expected one of {_GEOMETRIES}, got {self.geometry!r}")
        a, b = self.ocrb_frames
        if not (0 <= a < b):
            raise ValueError(f"ocrb_frames: expected (start, stop) with 0 <= start < stop, got {self.ocrb_frames!r}")


# --------------------------------------------------------------------------------------------
# per-video tables
# --------------------------------------------------------------------------------------------
def _video_pair(true_video: Any, pred_video: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (GT, prediction) video: int [T,H,W] and int [T,H,W] or soft [T,K,H,W]."""
    tn, pn = f"true_videos[{i}]", f"pred_videos[{i}]"
    for x, name in ((true_video, tn), (pred_video, pn)):
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{name}: expected a numpy array or torch tensor [T,H,W], got {type(x).__name__}")
    if true_video.ndim != 3:
        raise ValueError(f"{tn}: expected integer ids [T,H,W], got shape {tuple(true_video.shape)}")
    if pred_video.ndim not in (3, 4):
        raise ValueError(f"{pn}: expected integer ids [T,H,W] or soft masks [T,K,H,W], got shape "
                         f"{tuple(pred_video.shape)}")
    if pred_video.shape[0] != true_video.shape[0]:
        raise ValueError(f"{pn}: {pred_video.shape[0]} frames but {tn} has {true_video.shape[0]}; expected videos "
                         f"of the same length")
    ids = prepare_pair(true_video[None], pred_video[None], true_name=tn, pred_name=pn)
    t, p = ids.true[0], ids.pred[0]
    if isinstance(t, torch.Tensor):
        t, p = t.cpu().numpy(), p.cpu().numpy()
    return t, p


def _dense(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dense ids, labels) from the distinct values; labels[k] is the original id of dense id k,
    and id 0 stays 0 (the GT background)."""
    u, inv = np.unique(x, return_inverse=True)
    if u[0] != 0:
        u = np.concatenate([[0], u])
        inv = inv + 1
    return inv.reshape(x.shape), u


@dataclass
class _VideoTables:
    inter: np.ndarray  # int64 [T, Kt, Kp] pixel counts of (gt id, pred id) per frame
    t_labels: np.ndarray  # original GT id of each row
    p_labels: np.ndarray  # original predicted id of each column
    boxes_t: np.ndarray | None = None  # int [T, Kt, 4] (r0, c0, r1, c1) inclusive, box geometry only
    boxes_p: np.ndarray | None = None


def _boxes(x: np.ndarray, k: int) -> np.ndarray:
    """Inclusive bounding boxes [T, k, 4] of every id per frame (garbage for absent ids)."""
    T, H, W = x.shape
    f = np.arange(T)[:, None, None]
    rkey = (f * k + x) * H + np.arange(H)[None, :, None]
    ckey = (f * k + x) * W + np.arange(W)[None, None, :]
    rows = np.bincount(rkey.ravel(), minlength=T * k * H).reshape(T, k, H) > 0
    cols = np.bincount(ckey.ravel(), minlength=T * k * W).reshape(T, k, W) > 0
    r0 = rows.argmax(2)
    r1 = H - 1 - rows[:, :, ::-1].argmax(2)
    c0 = cols.argmax(2)
    c1 = W - 1 - cols[:, :, ::-1].argmax(2)
    return np.stack([r0, c0, r1, c1], axis=-1)


# Largest dense (frame, gt, pred) table before ids are remapped to their distinct values.
_MAX_TABLE = 1 << 22


def _check_tables(t: np.ndarray, p: np.ndarray, geometry: str, i: int) -> None:
    """ValueError before any video is scored when video ``i``'s (frame, gt, pred) table, after
    the remap of ``_tables``, or its box histograms would exceed ``MAX_TABLE_CELLS``: every frame's
    IoU table is dense (one row per GT id, one column per predicted id of the video)."""
    T, H, W = t.shape
    kt, kp = int(t.max()) + 1, int(p.max()) + 1
    if T * kt * kp > _MAX_TABLE:
        ut, up = np.unique(t), np.unique(p)
        kt, kp = len(ut) + int(ut[0] != 0), len(up) + int(up[0] != 0)  # as _dense: id 0 kept
    hint = (f" for video {i} ({kt} GT ids x {kp} predicted ids over {T} frames); CLEAR-MOT needs dense "
            f"per-frame IoU tables, so relabel the ids per video or score fewer segments")
    check_table_size((T, kt, kp), f"clear_mot: true_videos[{i}]", hint)
    # the box histograms [T, k, H] and [T, k, W] (k ids): refused only when larger than the video too
    if geometry == "box" and T * max(kt, kp) * max(H, W) > max(_checks.MAX_TABLE_CELLS, T * H * W):
        raise ValueError(f"clear_mot: true_videos[{i}] (geometry='box'): {max(kt, kp)} ids over {T} frames of "
                         f"{H}x{W} need box histograms of {T * max(kt, kp) * max(H, W)} cells, above the limit of "
                         f"max({_checks.MAX_TABLE_CELLS}, T*H*W) cells; use geometry='mask' or fewer ids")


def _tables(t: np.ndarray, p: np.ndarray, geometry: str) -> _VideoTables:
    """Per-frame tables of one video (sizes checked by ``_check_tables``)."""
    T = t.shape[0]
    kt, kp = int(t.max()) + 1, int(p.max()) + 1
    if T * kt * kp <= _MAX_TABLE:
        td, tl, pd, pl = t, np.arange(kt), p, np.arange(kp)
    else:
        (td, tl), (pd, pl) = _dense(t), _dense(p)
        kt, kp = len(tl), len(pl)
    key = (np.arange(T, dtype=np.int64)[:, None, None] * kt + td) * kp + pd
    inter = np.bincount(key.ravel(), minlength=T * kt * kp).reshape(T, kt, kp)
    vt = _VideoTables(inter, tl, pl)
    if geometry == "box":
        vt.boxes_t = _boxes(td, kt)
        vt.boxes_p = _boxes(pd, kp)
    return vt


def _box_iou(bt: np.ndarray, bp: np.ndarray) -> np.ndarray:
    """IoU of pixel-inclusive boxes [..., n, 4] x [..., m, 4] -> [..., n, m] (box areas in pixels)."""
    a, b = bt[..., :, None, :], bp[..., None, :, :]
    ih = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    iw = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = np.clip(ih, 0, None) * np.clip(iw, 0, None)
    at = (bt[..., 2] - bt[..., 0] + 1) * (bt[..., 3] - bt[..., 1] + 1)
    ap = (bp[..., 2] - bp[..., 0] + 1) * (bp[..., 3] - bp[..., 1] + 1)
    return inter / (at[..., :, None] + ap[..., None, :] - inter)


def _frames(vt: _VideoTables, opts: _Options, background_ids: Sequence[int]) -> Iterator[tuple[list, list, np.ndarray]]:
    """(oids, hids, dists) per evaluated frame: the exact inputs of ``MOTAccumulator.update``.

    The IoUs, the object/hypothesis filters and the background exclusion are computed for all
    frames of the video at once; the loop only picks each frame's rows and columns.
    """
    inter = vt.inter
    T = inter.shape[0]
    at = inter.sum(2)
    bp = inter.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mask_iou = inter / (at[:, :, None] + bp[:, None, :] - inter)  # NaN only for pairs of empty masks
    iou = _box_iou(vt.boxes_t, vt.boxes_p) if opts.geometry == "box" else mask_iou
    declared = np.isin(vt.p_labels, np.asarray(list(background_ids), dtype=np.int64)) if len(background_ids) else None
    tl, pl = vt.t_labels, vt.p_labels
    if opts.ocrb_compat:
        yield from _frames_ocrb(vt, opts, declared, at, bp, iou, mask_iou)
        return
    obj = at >= opts.min_pixels
    obj[:, 0] = False
    hyp = bp > 0
    if declared is not None:
        hyp &= ~declared[None, :]
    if opts.exclude_bg_iou is not None:
        # mask IoU of each predicted segment with the GT background; 0 when there is no background
        hyp &= ~(mask_iou[:, 0, :] > opts.exclude_bg_iou)  # NaN (no background, empty segment): kept
    dist = 1.0 - iou
    dist[~(iou >= opts.iou_threshold)] = np.nan
    fo, ro = np.nonzero(obj)
    fh, ch = np.nonzero(hyp)
    ob = np.searchsorted(fo, np.arange(T + 1)).tolist()
    hb = np.searchsorted(fh, np.arange(T + 1)).tolist()
    o_lab, h_lab = tl[ro].tolist(), pl[ch].tolist()
    for f in range(T):
        r, c = ro[ob[f]:ob[f + 1]], ch[hb[f]:hb[f + 1]]
        yield o_lab[ob[f]:ob[f + 1]], h_lab[hb[f]:hb[f + 1]], dist[f, r[:, None], c]


def _frames_ocrb(vt: _VideoTables, opts: _Options, declared: np.ndarray | None, at: np.ndarray, bp: np.ndarray,
                 iou: np.ndarray, mask_iou: np.ndarray) -> Iterator[tuple[list, list, np.ndarray]]:
    """OCRB ``compute_dists_per_frame`` on frames [start, stop): masks of > 5 pixels, the GT
    background appended as the last row, predictions with IoU > ``exclude_bg_iou`` to it removed,
    then the last row deleted, and ``dist > iou_threshold`` forbidden."""
    T = at.shape[0]
    lo, hi = opts.ocrb_frames
    if T < hi:
        raise ValueError(f"ocrb_compat: videos need at least {hi} frames (OCRB scores frames [{lo}, {hi})), "
                         f"got T={T}; set ocrb_frames=(start, stop)")
    use_bg = opts.exclude_bg_iou is not None
    for f in range(lo, hi):
        rows = np.flatnonzero(at[f] >= _OCRB_MIN_PIXELS)
        rows = rows[rows > 0]
        hyp = bp[f] >= _OCRB_MIN_PIXELS
        if declared is not None:
            hyp &= ~declared
        cols = np.flatnonzero(hyp)
        # If the background itself was filtered out (<= 5 pixels), OCRB deletes the last object
        # row instead; that quirk is kept. (With no GT row at all OCRB would crash; skipped.)
        grow = np.concatenate([rows, [0]]) if (use_bg and at[f, 0] >= _OCRB_MIN_PIXELS) else rows
        m = iou[f][grow][:, cols]
        if use_bg and len(grow) > 0:
            if len(cols) > 0:
                keep = ~(mask_iou[f, grow[-1], cols] > opts.exclude_bg_iou)
                cols, m = cols[keep], m[:, keep]
            grow, m = grow[:-1], m[:-1]
        dist = 1.0 - m
        dist[dist > opts.iou_threshold] = np.nan
        yield vt.t_labels[grow].tolist(), vt.p_labels[cols].tolist(), dist


def frame_inputs(true_video: Any, pred_video: Any, *, iou_threshold: float = 0.5, min_pixels: int = 1,
                 exclude_bg_iou: float | None = 0.2, background_ids: Sequence[int] = (),
                 geometry: str = "mask", ocrb_compat: bool = False,
                 ocrb_frames: tuple[int, int] = (2, 10)) -> list[tuple[list[int], list[int], np.ndarray]]:
    """The per-frame ``(object ids, hypothesis ids, distances)`` that ``clear_mot`` feeds its
    accumulator for one video (ascending ids; NaN = may not pair). For tests and for feeding
    ``motmetrics.MOTAccumulator.update`` as a reference."""
    opts = _Options(iou_threshold, min_pixels, exclude_bg_iou, geometry, ocrb_compat, tuple(ocrb_frames))
    opts.check()
    t, p = _video_pair(true_video, pred_video, 0)
    _check_tables(t, p, opts.geometry, 0)
    return list(_frames(_tables(t, p, geometry), opts, background_ids))


# --------------------------------------------------------------------------------------------
# event generation (motmetrics 1.4.0 semantics)
# --------------------------------------------------------------------------------------------
@dataclass
class _State:
    """Pairings and per-object tallies of one motmetrics accumulator."""

    m: dict = field(default_factory=dict)  # object id -> last matched hypothesis id (ever)
    # object id -> [frames present, frames not missed (MATCH or SWITCH), frames with MATCH]
    objects: dict = field(default_factory=dict)


def _assign(dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """motmetrics ``lsa_solve_scipy``: NaN -> 2·r·c + 1, solve, drop pairs at forbidden entries."""
    valid = np.isfinite(dists)
    if not valid.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if valid.all():
        costs = dists
    else:
        r = min(dists.shape)
        c = np.abs(dists[valid]).max() + 1
        costs = np.where(valid, dists, 2 * r * c + 1)
    rids, cids = linear_sum_assignment(costs)
    keep = valid[rids, cids]
    return rids[keep], cids[keep]


def _update(state: _State, oids: list, hids: list, dists: np.ndarray, counts: list) -> float:
    """One ``MOTAccumulator.update``; adds [frames, objects, matches, switches, misses, fp] to
    ``counts`` and returns the sum of matched distances.

    Small frames are handled in plain Python on ``dists.tolist()`` (numpy's per-element indexing
    costs more than the work); the solver only runs when the allowed pairs are not disjoint.
    """
    no, nh = len(oids), len(hids)
    dsum = 0.0
    n_match = n_switch = 0
    m = state.m
    matched_as: dict[int, bool] = {}  # row -> is_switch
    if no and nh:
        dl = dists.tolist()
        o_done = [False] * no
        h_done = [False] * nh
        hpos = {h: j for j, h in enumerate(hids)}
        # 1. continuity with the last match ever (objects in the given order, as motmetrics)
        for i, o in enumerate(oids):
            h = m.get(o)
            if h is None:
                continue
            j = hpos.get(h)
            if j is None or h_done[j]:
                continue
            d = dl[i][j]
            if d == d:  # finite (NaN marks forbidden pairs; distances are never inf)
                o_done[i] = h_done[j] = True
                n_match += 1
                dsum += d
                matched_as[i] = False
        # 2. Hungarian on the rest
        rows = [i for i in range(no) if not o_done[i]]
        cols = [j for j in range(nh) if not h_done[j]]
        pairs = [(i, j) for i in rows for j in cols if dl[i][j] == dl[i][j]]
        if len({i for i, _ in pairs}) < len(pairs) or len({j for _, j in pairs}) < len(pairs):
            rest = dists.copy()
            rest[[i for i in range(no) if o_done[i]], :] = np.nan
            rest[:, [j for j in range(nh) if h_done[j]]] = np.nan
            pairs = list(zip(*(x.tolist() for x in _assign(rest))))
        # else the allowed pairs are disjoint: the only maximum-cardinality matching, which is
        # what the solver returns with motmetrics' large constant for forbidden pairs
        for i, j in pairs:
            o, h = oids[i], hids[j]
            prev = m.get(o)
            sw = prev is not None and prev != h
            m[o] = h
            dsum += dl[i][j]
            matched_as[i] = sw
            if sw:
                n_switch += 1
            else:
                n_match += 1
    # 3./4. misses and false positives; per-object tallies for mostly tracked / lost
    objs = state.objects
    for i, o in enumerate(oids):
        rec = objs.get(o)
        if rec is None:
            rec = objs[o] = [0, 0, 0]
        rec[0] += 1
        sw = matched_as.get(i)
        if sw is not None:
            rec[1] += 1
            if not sw:
                rec[2] += 1
    counts[0] += 1
    counts[1] += no
    counts[2] += n_match
    counts[3] += n_switch
    counts[4] += no - n_match - n_switch
    counts[5] += nh - n_match - n_switch
    return dsum


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def _as_video_list(x: Any, name: str) -> list:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if x.ndim not in (4, 5):
            raise ValueError(f"{name}: expected videos [B,T,H,W] (or soft [B,T,K,H,W]) or a sequence of [T,H,W], "
                             f"got shape {tuple(x.shape)}")
        return [x[i] for i in range(x.shape[0])]
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        raise TypeError(f"{name}: expected an array [B,T,H,W] or an iterable of [T,H,W] videos, got {type(x).__name__}")
    return list(x)


def _bg_per_video(background_ids: Any, n: int) -> list[tuple]:
    """One tuple per video: a flat tuple of ints applies to all, a sequence of tuples is per video."""
    bg = list(background_ids) if background_ids is not None else []
    if bg and all(isinstance(b, (list, tuple, np.ndarray)) for b in bg):
        if len(bg) != n:
            raise ValueError(f"background_ids: {len(bg)} per-video entries for {n} videos; expected one per video "
                             f"or a single tuple of ids")
        return [tuple(int(v) for v in b) for b in bg]
    if any(isinstance(b, (list, tuple, np.ndarray)) for b in bg):
        raise TypeError("background_ids: expected a tuple of ints or one tuple per video")
    return [tuple(int(v) for v in bg)] * n


class TrackingAccumulator:
    """Streaming CLEAR-MOT: ``update(true_videos, pred_videos)`` per batch of videos, then ``compute()``.

    Options as ``clear_mot``. Each video gets a fresh accumulator state (one motmetrics
    accumulator per video), except under ``ocrb_compat`` where one state spans all updates.
    """

    def __init__(self, *, iou_threshold: float = 0.5, min_pixels: int = 1, exclude_bg_iou: float | None = 0.2,
                 background_ids: Any = (), geometry: str = "mask", ocrb_compat: bool = False,
                 ocrb_frames: tuple[int, int] = (2, 10)) -> None:
        self.options = _Options(iou_threshold, min_pixels, exclude_bg_iou, geometry, ocrb_compat, tuple(ocrb_frames))
        self.options.check()
        self.background_ids = background_ids
        self.reset()

    def reset(self) -> None:
        self._counts: list[np.ndarray] = []  # per video [frames, objects, matches, switches, misses, fp]
        self._dsum: list[float] = []
        self._mt: list[tuple[int, int, int]] = []  # per video mostly tracked / partially / lost
        self._shared = _State()  # the one accumulator of ocrb_compat

    def update(self, true_videos: Any, pred_videos: Any, background_ids: Any = None) -> None:
        """Add videos (an array [B,T,H,W] or an iterable of [T,H,W]; predictions may be soft masks).
        ``background_ids`` (per call) overrides the accumulator's: a tuple, or one tuple per video."""
        tv = _as_video_list(true_videos, "true_videos")
        pv = _as_video_list(pred_videos, "pred_videos")
        if len(tv) != len(pv):
            raise ValueError(f"pred_videos: {len(pv)} videos but true_videos has {len(tv)}; expected the same number")
        if not tv:
            raise ValueError("true_videos: empty; expected at least one video")
        bgs = _bg_per_video(self.background_ids if background_ids is None else background_ids, len(tv))
        opts = self.options
        pairs = [_video_pair(t, p, i) for i, (t, p) in enumerate(zip(tv, pv))]  # all checked before any is added
        for i, (t, p) in enumerate(pairs):
            _check_tables(t, p, opts.geometry, i)
        for i, (t, p) in enumerate(pairs):
            vt = _tables(t, p, opts.geometry)
            state = self._shared if opts.ocrb_compat else _State()
            counts = [0] * 6
            dsum = 0.0
            for oids, hids, dists in _frames(vt, opts, bgs[i]):
                dsum += _update(state, oids, hids, dists, counts)
            self._counts.append(np.asarray(counts, np.int64))
            self._dsum.append(dsum)
            if not opts.ocrb_compat:
                self._mt.append(_track_classes(state.objects.values()))

    def compute(self) -> dict:
        """Summary (counts summed over videos, MOTA, MOTP, MT/PT/ML, % of objects), per-video
        counts, status, ``n`` (videos), ``n_skipped`` (videos without GT objects), version."""
        opts = self.options
        if not self._counts:
            raise ValueError("TrackingAccumulator.compute: no videos were added (call update first)")
        per = np.stack(self._counts)
        tot = per.sum(0)
        frames, objects, matches, switches, misses, fps = (int(v) for v in tot)
        dsum = float(np.sum(self._dsum))
        det = matches + switches
        if opts.ocrb_compat:
            mt, pt, ml = _track_classes(self._shared.objects.values())
            n_unique = len(self._shared.objects)
        else:
            mt, pt, ml = (int(v) for v in np.sum(self._mt, axis=0))
            n_unique = mt + pt + ml
        mota = 1.0 - (misses + switches + fps) / objects if objects else math.nan
        motp = dsum / det if det else math.nan
        status = "ok" if objects else "no_gt_objects"
        if objects and not det:
            status = "no_detections"

        def pct(v: int) -> float:
            return 100.0 * v / objects if objects else math.nan

        summary = {"mota": mota, "motp": motp, "motp_iou": 1.0 - motp, "num_frames": frames,
                   "num_objects": objects, "num_unique_objects": n_unique, "num_matches": matches,
                   "num_switches": switches, "num_misses": misses, "num_false_positives": fps,
                   "num_detections": det, "mostly_tracked": mt, "partially_tracked": pt, "mostly_lost": ml,
                   "num_matches_pct": pct(matches), "num_switches_pct": pct(switches),
                   "num_misses_pct": pct(misses), "num_false_positives_pct": pct(fps)}
        if opts.ocrb_compat:
            summary.update(_ocrb_numbers(self._shared.objects.values(), mota, motp))
        with np.errstate(invalid="ignore", divide="ignore"):
            v_obj = per[:, 1].astype(np.float64)
            v_mota = np.where(v_obj > 0, 1.0 - (per[:, 4] + per[:, 3] + per[:, 5]) / np.maximum(v_obj, 1), np.nan)
        per_video = {k: per[:, i].copy() for i, k in enumerate(COUNT_KEYS)}
        per_video["mota"] = v_mota  # for inspection only: per-video MOTA is never averaged (§6)
        per_video["distance_sum"] = np.asarray(self._dsum)
        return {"summary": summary, "status": status, "per_video": per_video, "n": int(per.shape[0]),
                "n_skipped": int((per[:, 1] == 0).sum()),
                "version": VERSIONS["mot_ocrb" if opts.ocrb_compat else "mot"],
                "options": {"iou_threshold": opts.iou_threshold, "min_pixels": opts.min_pixels,
                            "exclude_bg_iou": opts.exclude_bg_iou, "geometry": opts.geometry,
                            "ocrb_compat": opts.ocrb_compat,
                            **({"ocrb_frames": list(opts.ocrb_frames)} if opts.ocrb_compat else {})}}


def _track_classes(records: Iterable[list[int]]) -> tuple[int, int, int]:
    """motmetrics mostly tracked (ratio >= 0.8), partially tracked, mostly lost (< 0.2), where
    ratio = frames not missed / frames present (plain Python: a handful of objects per video)."""
    mt = pt = ml = 0
    for present, tracked, _ in records:
        r = tracked / present
        if r >= 0.8:
            mt += 1
        elif r >= 0.2:
            pt += 1
        else:
            ml += 1
    return mt, pt, ml


def _ocrb_numbers(records: Iterable[list[int]], mota: float, motp: float) -> dict:
    """OCRB ``compute_mot_metrics``: mostly tracked counts MATCH events only, mostly detected all
    non-MISS events (both ratio >= 0.8, % of unique object ids); MOTA and 1 − MOTP in %."""
    r = np.array(list(records), dtype=np.float64).reshape(-1, 3)
    n = r.shape[0]
    tracked = (r[:, 2] / r[:, 0] >= 0.8).sum() if n else 0
    detected = (r[:, 1] / r[:, 0] >= 0.8).sum() if n else 0
    return {"ocrb_mota": 100.0 * mota, "ocrb_motp": 100.0 * (1.0 - motp),
            "ocrb_mostly_tracked": 100.0 * tracked / n if n else math.nan,
            "ocrb_mostly_detected": 100.0 * detected / n if n else math.nan}


def clear_mot(true_videos: Any, pred_videos: Any, *, iou_threshold: float = 0.5, min_pixels: int = 1,
              exclude_bg_iou: float | None = 0.2, background_ids: Any = (), geometry: str = "mask",
              ocrb_compat: bool = False, ocrb_frames: tuple[int, int] = (2, 10)) -> dict:
    """CLEAR-MOT over a set of videos (metrics.md §6).

    Args:
        true_videos: int ``[B,T,H,W]`` or an iterable of int ``[T,H,W]`` GT ids (0 = background).
        pred_videos: the same for predicted ids (``[T,K,H,W]`` soft masks are argmaxed).
        iou_threshold: pairs with ``IoU < iou_threshold`` may not match (0.5 matches exactly).
        min_pixels: a GT object counts in a frame from this many pixels on.
        exclude_bg_iou: drop predicted segments whose IoU with the GT background is above this
            (None: keep all).
        background_ids: predicted ids the method declares background (a tuple, or one per video).
        geometry: ``"mask"`` (exact mask IoU) or ``"box"`` (IoU of the masks' bounding boxes).
        ocrb_compat: reproduce OCRB's ``eval_mot.py`` (module docstring); ``ocrb_frames`` are its
            ``--start_step``/``--stop_step``.

    Returns ``{"summary": {mota, motp, motp_iou, counts, mostly_tracked, ..., *_pct}, "status",
    "per_video": {count: int array [V]}, "n", "n_skipped", "version", "options"}``.
    """
    acc = TrackingAccumulator(iou_threshold=iou_threshold, min_pixels=min_pixels, exclude_bg_iou=exclude_bg_iou,
                              background_ids=background_ids, geometry=geometry, ocrb_compat=ocrb_compat,
                              ocrb_frames=ocrb_frames)
    acc.update(true_videos, pred_videos)
    return acc.compute()


mot = clear_mot
