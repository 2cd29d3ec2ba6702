"""Tracking metrics (docs/metrics.md §6): CLEAR-MOT, IDF1/IDP/IDR and fragmentations (motmetrics
1.4.0), HOTA/DetA/AssA/LocA (TrackEval 1.3.0), from per-frame id maps or from float boxes.

Entry points: ``clear_mot`` / ``hota`` (id maps), ``clear_mot_boxes`` / ``hota_boxes`` (per video,
per frame, ids and float boxes with a required ``box_format``; ``read_motchallenge`` reads
MOTChallenge files), their streaming forms ``TrackingAccumulator`` / ``BoxTrackingAccumulator``
(``hota=True`` adds HOTA to the CLEAR-MOT summary from the same IoU tables). Every path builds the
same per-video tables (evaluated objects and hypotheses per frame, their IoUs and CLEAR-MOT
distances) and feeds one event engine (below), ``metrics.identity`` and ``metrics.hota_trackeval``.

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
Fragmentations (motmetrics ``num_fragmentations``): per object, the runs of MISS frames between
its first and its last tracked (MATCH or SWITCH) frame. IDF1/IDP/IDR: ``metrics.identity``, over
the pairs CLEAR-MOT may match.

Boxes: motmetrics ``boxiou`` and ``iou_matrix``: ``dist = 1 − IoU``, forbidden where
``dist > 1 − iou_threshold`` (``distth``); rows keep their given order within a frame (the order
motmetrics visits them). Id maps: the videos of one length are scored as one padded batch (every
step but the event loop and the per-frame assignments runs on all of them at once).

``ocrb_compat=True`` reproduces ``ecker-lab/object-centric-representation-benchmark``
``ocrb/eval/eval_mot.py``: frames ``[2, 10)``, masks of <= 5 pixels dropped (GT and predictions),
``dist > iou_threshold`` forbidden, the background exclusion applied to the last GT row (the
background), and **one accumulator over the whole dataset** (pairings carry across videos);
it adds OCRB's reported numbers (``ocrb_*``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from . import _checks
from . import motchallenge as _mc
from ._checks import check_table_size, prepare_pair
from .hota_trackeval import ALPHAS, ARRAY_FIELDS, hota_combine, hota_stacked, hota_summary, hota_videos
from .identity import identity_scores, max_matching, max_matchings, per_label_sum
from .versions import VERSIONS

__all__ = [
    "clear_mot",
    "mot",
    "clear_mot_boxes",
    "hota",
    "hota_boxes",
    "TrackingAccumulator",
    "BoxTrackingAccumulator",
    "frame_inputs",
    "box_frame_inputs",
    "COUNT_KEYS",
]

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
def _video_pair(true_video: Any, pred_video: Any, i: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Validate one (GT, prediction) video: int [T,H,W] and int [T,H,W] or soft [T,K,H,W].
    Returns the numpy id maps and their largest ids + 1."""
    tn, pn = f"true_videos[{i}]", f"pred_videos[{i}]"
    for x, name in ((true_video, tn), (pred_video, pn)):
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{name}: expected a numpy array or torch tensor [T,H,W], got {type(x).__name__}")
    if true_video.ndim != 3:
        raise ValueError(f"{tn}: expected integer ids [T,H,W], got shape {tuple(true_video.shape)}")
    if pred_video.ndim not in (3, 4):
        raise ValueError(
            f"{pn}: expected integer ids [T,H,W] or soft masks [T,K,H,W], got shape {tuple(pred_video.shape)}"
        )
    if pred_video.shape[0] != true_video.shape[0]:
        raise ValueError(
            f"{pn}: {pred_video.shape[0]} frames but {tn} has {true_video.shape[0]}; expected videos of the same length"
        )
    if (
        isinstance(true_video, np.ndarray)
        and isinstance(pred_video, np.ndarray)
        and _checks._CPU_BACKEND == "numpy"
        and true_video.dtype.kind in "iub"
        and pred_video.dtype.kind in "iub"
        and true_video.shape == pred_video.shape
        and true_video.size
    ):
        # the common case, checked as prepare_pair would (ids >= 0 and within int64), without its set-up
        return true_video, pred_video, _checks.id_range(true_video, tn), _checks.id_range(pred_video, pn)
    ids = prepare_pair(true_video[None], pred_video[None], true_name=tn, pred_name=pn)
    t, p = ids.true[0], ids.pred[0]
    if isinstance(t, torch.Tensor):
        t, p = t.cpu().numpy(), p.cpu().numpy()
    return t, p, ids.true_max + 1, ids.pred_max + 1


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


def _check_tables(t: np.ndarray, p: np.ndarray, geometry: str, i: int, kt: int, kp: int) -> None:
    """ValueError before any video is scored when video ``i``'s (frame, gt, pred) table, after
    the remap of ``_tables``, or its box histograms would exceed ``MAX_TABLE_CELLS``: every frame's
    IoU table is dense (one row per GT id, one column per predicted id of the video); ``kt``, ``kp``:
    the largest ids + 1."""
    T, H, W = t.shape
    if T * kt * kp > _MAX_TABLE:
        ut, up = np.unique(t), np.unique(p)
        kt, kp = len(ut) + int(ut[0] != 0), len(up) + int(up[0] != 0)  # as _dense: id 0 kept
    hint = (
        f" for video {i} ({kt} GT ids x {kp} predicted ids over {T} frames); CLEAR-MOT needs dense "
        f"per-frame IoU tables, so relabel the ids per video or score fewer segments"
    )
    check_table_size((T, kt, kp), f"clear_mot: true_videos[{i}]", hint)
    # the box histograms [T, k, H] and [T, k, W] (k ids): refused only when larger than the video too
    if geometry == "box" and T * max(kt, kp) * max(H, W) > max(_checks.MAX_TABLE_CELLS, T * H * W):
        raise ValueError(
            f"clear_mot: true_videos[{i}] (geometry='box'): {max(kt, kp)} ids over {T} frames of "
            f"{H}x{W} need box histograms of {T * max(kt, kp) * max(H, W)} cells, above the limit of "
            f"max({_checks.MAX_TABLE_CELLS}, T*H*W) cells; use geometry='mask' or fewer ids"
        )


def _tables(t: np.ndarray, p: np.ndarray, geometry: str, kt: int, kp: int) -> _VideoTables:
    """Per-frame tables of one video (sizes checked by ``_check_tables``; ``kt``, ``kp``: the
    largest ids + 1)."""
    T = t.shape[0]
    if T * kt * kp <= _MAX_TABLE:
        td, tl, pd, pl = t, np.arange(kt), p, np.arange(kp)
    else:
        (td, tl), (pd, pl) = _dense(t), _dense(p)
        kt, kp = len(tl), len(pl)
    # one int64 buffer, updated in place: frame·kt·kp + gt·kp + pred
    if td.dtype == np.int64:
        key = td * kp
    else:
        key = td.astype(np.int64)
        key *= kp
    key += pd
    key += (np.arange(T, dtype=np.int64) * (kt * kp))[:, None, None]
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


@dataclass
class _Video:
    """One video as padded per-frame slots (masks: slot = dense id; boxes: rows in given order).

    ``iou[t, a, b]`` is the similarity of GT slot ``a`` and predicted slot ``b`` in frame ``t``,
    ``dist`` the CLEAR-MOT distance ``1 − IoU`` (NaN: may not pair); ``ovalid``/``hvalid`` say which
    slots are evaluated objects/hypotheses; ``olab``/``hlab`` give each slot's label (index into
    ``o_ids``/``h_ids``, the original ids), None when slot ``a`` is label ``a``.
    """

    iou: np.ndarray  # float64 [T, A, B]
    dist: np.ndarray | None  # float64 [T, A, B] (None when only HOTA is computed)
    ovalid: np.ndarray  # bool [T, A]
    hvalid: np.ndarray  # bool [T, B]
    o_ids: np.ndarray  # int [n_o]
    h_ids: np.ndarray  # int [n_h]
    olab: np.ndarray | None = None  # int64 [T, A]
    hlab: np.ndarray | None = None  # int64 [T, B]


@dataclass
class _Batch:
    """Videos of the same length, padded to common slots: ``[n, T, A, B]`` arrays (see ``_Video``;
    slot = label) and one ``_Video`` view per video."""

    iou: np.ndarray
    dist: np.ndarray | None
    ovalid: np.ndarray  # bool [n, T, A]
    hvalid: np.ndarray  # bool [n, T, B]
    videos: list


def _mask_batch(
    vts: list[_VideoTables], opts: _Options, bgs: Sequence[Sequence[int]], need_dist: bool = True
) -> _Batch:
    """The evaluated objects, hypotheses and distances of videos of id maps of one length (not OCRB).

    The tables are padded to the largest id ranges and every step runs on all videos at once: the
    object and hypothesis filters, the background exclusion, then the IoUs of the ids evaluated in
    at least one frame (each video's kept ids first, in ascending order). ``need_dist=False`` (HOTA
    only) leaves ``dist`` None.
    """
    n, T = len(vts), vts[0].inter.shape[0]
    KT = max(vt.inter.shape[1] for vt in vts)
    KP = max(vt.inter.shape[2] for vt in vts)
    inter = np.zeros((n, T, KT, KP), np.int64)
    tl = np.full((n, KT), -1, np.int64)
    pl = np.full((n, KP), -1, np.int64)
    box = opts.geometry == "box"
    if box:
        bt = np.zeros((n, T, KT, 4), np.int64)
        bp_ = np.zeros((n, T, KP, 4), np.int64)
    for i, vt in enumerate(vts):
        kt, kp = vt.inter.shape[1:]
        inter[i, :, :kt, :kp] = vt.inter
        tl[i, :kt] = vt.t_labels
        pl[i, :kp] = vt.p_labels
        if box:
            bt[i, :, :kt] = vt.boxes_t
            bp_[i, :, :kp] = vt.boxes_p
    at = inter.sum(3)
    bp = inter.sum(2)
    obj = at >= opts.min_pixels
    obj[:, :, 0] = False  # id 0: the GT background
    hyp = bp > 0
    for i, bg in enumerate(bgs):
        if len(bg):
            hyp[i] &= ~np.isin(pl[i], np.asarray(list(bg), dtype=np.int64))[None, :]
    if opts.exclude_bg_iou is not None:
        # mask IoU of each predicted segment with the GT background; 0 when there is no background
        with np.errstate(invalid="ignore", divide="ignore"):
            bg_iou = inter[:, :, 0, :] / (at[:, :, :1] + bp - inter[:, :, 0, :])
        hyp &= ~(bg_iou > opts.exclude_bg_iou)  # NaN (no background, empty segment): kept
    ur, uc = obj.any(1), hyp.any(1)
    A, B = int(ur.sum(1).max()), int(uc.sum(1).max())
    ro = np.argsort(~ur, axis=1, kind="stable")[:, :A]  # kept ids first, ascending
    co = np.argsort(~uc, axis=1, kind="stable")[:, :B]
    iv = np.arange(n)[:, None, None]
    if box:
        iou = _box_iou(
            np.take_along_axis(bt, ro[:, None, :, None], 2), np.take_along_axis(bp_, co[:, None, :, None], 2)
        )
    else:
        sub = inter[iv, :, ro[:, :, None], co[:, None, :]].transpose(0, 3, 1, 2)  # [n, T, A, B]
        a_t = np.take_along_axis(at, ro[:, None, :], 2)
        b_p = np.take_along_axis(bp, co[:, None, :], 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = sub / (a_t[..., None] + b_p[..., None, :] - sub)  # NaN only for pairs of empty masks
    dist = None
    if need_dist:
        dist = 1.0 - iou
        dist[~(iou >= opts.iou_threshold)] = np.nan
    ov = np.take_along_axis(obj, ro[:, None, :], 2)
    hv = np.take_along_axis(hyp, co[:, None, :], 2)
    o_ids = np.take_along_axis(tl, ro, 1)
    h_ids = np.take_along_axis(pl, co, 1)
    videos = [_Video(iou[i], None if dist is None else dist[i], ov[i], hv[i], o_ids[i], h_ids[i]) for i in range(n)]
    return _Batch(iou, dist, ov, hv, videos)


def _mask_video(vt: _VideoTables, opts: _Options, background_ids: Sequence[int], need_dist: bool = True) -> _Video:
    """``_mask_batch`` of one video."""
    return _mask_batch([vt], opts, [background_ids], need_dist).videos[0]


def _frame_iter(v: _Video, similarity: bool = False) -> Iterator[tuple[list, list, np.ndarray]]:
    """(oids, hids, dists) per frame: the exact inputs of ``MOTAccumulator.update`` (``similarity``:
    the IoUs instead of the distances)."""
    T = v.ovalid.shape[0]
    fo, ro = np.nonzero(v.ovalid)
    fh, ch = np.nonzero(v.hvalid)
    ob = np.searchsorted(fo, np.arange(T + 1)).tolist()
    hb = np.searchsorted(fh, np.arange(T + 1)).tolist()
    o_lab = (v.o_ids[ro] if v.olab is None else v.o_ids[v.olab[fo, ro]]).tolist()
    h_lab = (v.h_ids[ch] if v.hlab is None else v.h_ids[v.hlab[fh, ch]]).tolist()
    dist = v.iou if similarity else v.dist
    for f in range(T):
        r, c = ro[ob[f] : ob[f + 1]], ch[hb[f] : hb[f + 1]]
        yield o_lab[ob[f] : ob[f + 1]], h_lab[hb[f] : hb[f + 1]], dist[f, r[:, None], c]


def _frames(vt: _VideoTables, opts: _Options, background_ids: Sequence[int]) -> Iterator[tuple[list, list, np.ndarray]]:
    """(oids, hids, dists) per evaluated frame of one video of id maps."""
    if opts.ocrb_compat:
        inter = vt.inter
        at = inter.sum(2)
        bp = inter.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mask_iou = inter / (at[:, :, None] + bp[:, None, :] - inter)
        iou = _box_iou(vt.boxes_t, vt.boxes_p) if opts.geometry == "box" else mask_iou
        declared = (
            np.isin(vt.p_labels, np.asarray(list(background_ids), dtype=np.int64)) if len(background_ids) else None
        )
        yield from _frames_ocrb(vt, opts, declared, at, bp, iou, mask_iou)
        return
    yield from _frame_iter(_mask_video(vt, opts, background_ids))


def _box_video(true_video: Any, pred_video: Any, box_format: str, max_dist: float, i: int) -> _Video:
    """One video of boxes as slots: motmetrics box IoU, ``dist = 1 − IoU`` forbidden above ``max_dist``."""
    gs, ps, _ = _mc.video_slots(true_video, pred_video, box_format, i)
    iou = _mc.box_iou(gs.boxes, ps.boxes, box_format)
    dist = 1.0 - iou
    dist[dist > max_dist] = np.nan  # motmetrics iou_matrix(max_iou=max_dist)
    return _Video(iou, dist, gs.valid, ps.valid, gs.ids, ps.ids, gs.lab, ps.lab)


def _frames_ocrb(
    vt: _VideoTables,
    opts: _Options,
    declared: np.ndarray | None,
    at: np.ndarray,
    bp: np.ndarray,
    iou: np.ndarray,
    mask_iou: np.ndarray,
) -> Iterator[tuple[list, list, np.ndarray]]:
    """OCRB ``compute_dists_per_frame`` on frames [start, stop): masks of > 5 pixels, the GT
    background appended as the last row, predictions with IoU > ``exclude_bg_iou`` to it removed,
    then the last row deleted, and ``dist > iou_threshold`` forbidden."""
    T = at.shape[0]
    lo, hi = opts.ocrb_frames
    if T < hi:
        raise ValueError(
            f"ocrb_compat: videos need at least {hi} frames (OCRB scores frames [{lo}, {hi})), "
            f"got T={T}; set ocrb_frames=(start, stop)"
        )
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


def frame_inputs(
    true_video: Any,
    pred_video: Any,
    *,
    iou_threshold: float = 0.5,
    min_pixels: int = 1,
    exclude_bg_iou: float | None = 0.2,
    background_ids: Sequence[int] = (),
    geometry: str = "mask",
    ocrb_compat: bool = False,
    ocrb_frames: tuple[int, int] = (2, 10),
    similarity: bool = False,
) -> list[tuple[list[int], list[int], np.ndarray]]:
    """The per-frame ``(object ids, hypothesis ids, distances)`` that ``clear_mot`` feeds its
    accumulator for one video (ascending ids; NaN = may not pair). For tests and for feeding
    ``motmetrics.MOTAccumulator.update`` as a reference. ``similarity=True``: the IoU matrices
    instead (what HOTA matches on; the input of TrackEval's metrics)."""
    opts = _Options(iou_threshold, min_pixels, exclude_bg_iou, geometry, ocrb_compat, tuple(ocrb_frames))
    opts.check()
    if similarity and ocrb_compat:
        raise ValueError("frame_inputs: similarity=True is not defined under ocrb_compat")
    t, p, kt, kp = _video_pair(true_video, pred_video, 0)
    _check_tables(t, p, opts.geometry, 0, kt, kp)
    vt = _tables(t, p, geometry, kt, kp)
    if similarity:
        return list(_frame_iter(_mask_video(vt, opts, background_ids), similarity=True))
    return list(_frames(vt, opts, background_ids))


# --------------------------------------------------------------------------------------------
# event generation (motmetrics 1.4.0 semantics)
# --------------------------------------------------------------------------------------------
@dataclass
class _State:
    """Pairings and per-object tallies of one motmetrics accumulator."""

    m: dict = field(default_factory=dict)  # object id -> last matched hypothesis id (ever)
    # object id -> [frames present, frames not missed (MATCH or SWITCH), frames with MATCH,
    #               track state (0 never tracked, 1 tracked, 2 missed after being tracked), fragmentations]
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
    # 3./4. misses and false positives; per-object tallies for mostly tracked / lost and for
    # fragmentations (motmetrics: MISS runs between the first and the last non-MISS frame)
    objs = state.objects
    for i, o in enumerate(oids):
        rec = objs.get(o)
        if rec is None:
            rec = objs[o] = [0, 0, 0, 0, 0]
        rec[0] += 1
        sw = matched_as.get(i)
        if sw is not None:
            rec[1] += 1
            if not sw:
                rec[2] += 1
            if rec[3] == 2:
                rec[4] += 1
            rec[3] = 1
        elif rec[3] == 1:
            rec[3] = 2
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
            raise ValueError(
                f"{name}: expected videos [B,T,H,W] (or soft [B,T,K,H,W]) or a sequence of [T,H,W], "
                f"got shape {tuple(x.shape)}"
            )
        return [x[i] for i in range(x.shape[0])]
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        raise TypeError(f"{name}: expected an array [B,T,H,W] or an iterable of [T,H,W] videos, got {type(x).__name__}")
    return list(x)


def _bg_per_video(background_ids: Any, n: int) -> list[tuple]:
    """One tuple per video: a flat tuple of ints applies to all, a sequence of tuples is per video."""
    bg = list(background_ids) if background_ids is not None else []
    if bg and all(isinstance(b, (list, tuple, np.ndarray)) for b in bg):
        if len(bg) != n:
            raise ValueError(
                f"background_ids: {len(bg)} per-video entries for {n} videos; expected one per video "
                f"or a single tuple of ids"
            )
        return [tuple(int(v) for v in b) for b in bg]
    if any(isinstance(b, (list, tuple, np.ndarray)) for b in bg):
        raise TypeError("background_ids: expected a tuple of ints or one tuple per video")
    return [tuple(int(v) for v in bg)] * n


class _TrackScores:
    """Per-video results of the tracking metrics and their dataset values (shared by the mask and
    box accumulators). ``clear``: CLEAR-MOT events, identity (IDF1) and fragmentations;
    ``hota``: HOTA and its family."""

    _ocrb = False

    def __init__(self, clear: bool, hota: bool) -> None:
        self._want_clear, self._want_hota = bool(clear), bool(hota)
        self.reset()

    def reset(self) -> None:
        self._counts: list[np.ndarray] = []  # per video [frames, objects, matches, switches, misses, fp]
        self._dsum: list[float] = []
        self._mt: list[tuple[int, int, int]] = []  # per video mostly tracked / partially / lost
        self._frag: list[int] = []
        self._idtp: list[int] = []
        self._ndet: list[tuple[int, int, int]] = []  # per video (frames, GT detections, predicted detections)
        self._hota: list[dict] = []  # per update: {field: [V, alphas]}
        self._pending: list[tuple] = []
        self._shared = _State()  # the one accumulator of ocrb_compat

    def _clear_video(self, v: _Video) -> None:
        """CLEAR-MOT events of one video (a fresh motmetrics accumulator)."""
        state = _State()
        counts = [0] * 6
        dsum = 0.0
        for oids, hids, dists in _frame_iter(v):
            dsum += _update(state, oids, hids, dists, counts)
        self._counts.append(np.asarray(counts, np.int64))
        self._dsum.append(dsum)
        recs = state.objects.values()
        self._mt.append(_track_classes(recs))
        self._frag.append(sum(r[4] for r in recs))

    def _add(self, v: _Video) -> None:
        """Score one video (boxes: slots with their own labels)."""
        n_o, n_h = len(v.o_ids), len(v.h_ids)
        self._ndet.append((int(v.ovalid.shape[0]), int(v.ovalid.sum()), int(v.hvalid.sum())))
        if self._want_clear:
            self._clear_video(v)
            allowed = ~np.isnan(v.dist)
            allowed &= v.ovalid[:, :, None]
            allowed &= v.hvalid[:, None, :]
            self._idtp.append(int(max_matching(per_label_sum(allowed, v.olab, v.hlab, n_o, n_h))))
        if self._want_hota:
            self._pending.append((v.iou, v.ovalid, v.hvalid, v.olab, v.hlab, n_o, n_h))

    def _add_batch(self, b: _Batch) -> None:
        """Score videos of one length (slot = label): identity and HOTA for all of them at once."""
        n, T, A, B = b.iou.shape
        self._ndet.extend(zip([T] * n, b.ovalid.sum((1, 2)).tolist(), b.hvalid.sum((1, 2)).tolist()))
        if self._want_clear:
            for v in b.videos:
                self._clear_video(v)
            allowed = ~np.isnan(b.dist)
            allowed &= b.ovalid[..., None]
            allowed &= b.hvalid[..., None, :]
            self._idtp.extend(max_matchings(allowed.sum(1)))
        if self._want_hota:
            self._flush()  # keep the videos in order
            self._hota.append(
                hota_stacked(
                    b.iou.reshape(n * T, A, B),
                    b.ovalid.reshape(n * T, A),
                    b.hvalid.reshape(n * T, B),
                    None,
                    None,
                    np.full(n, T),
                    np.full(n, A),
                    np.full(n, B),
                )
            )

    def _flush(self) -> None:
        """HOTA of the videos added since the last flush, all at once (``hota_videos``)."""
        if self._pending:
            self._hota.append(hota_videos(self._pending))
            self._pending = []

    def _result(self, version: str, options: dict) -> dict:
        if not self._ndet:
            raise ValueError(f"{type(self).__name__}.compute: no videos were added (call update first)")
        nd = np.asarray(self._ndet, np.int64).reshape(-1, 3)
        n_gt, n_pred = int(nd[:, 1].sum()), int(nd[:, 2].sum())
        summary: dict = {}
        per_video: dict = {}
        versions: dict = {}
        status = "ok" if n_gt else "no_gt_objects"
        if self._want_clear:
            versions["mot"] = version
            versions["identity"] = VERSIONS["identity"]
            status = self._clear(summary, per_video, nd)
        else:
            per_video["num_objects"] = nd[:, 1].copy()
            per_video["num_predictions"] = nd[:, 2].copy()
            summary.update(num_frames=int(nd[:, 0].sum()), num_objects=n_gt, num_predictions=n_pred)
        out = {
            "summary": summary,
            "status": status,
            "per_video": per_video,
            "n": int(nd.shape[0]),
            "n_skipped": int((nd[:, 1] == 0).sum()),
        }
        if self._want_hota:
            versions["hota"] = VERSIONS["hota"]
            per_hota = {k: np.concatenate([b[k] for b in self._hota]) for k in self._hota[0]}
            comb = hota_combine(per_hota)
            hs = hota_summary(comb)
            if n_gt + n_pred == 0:  # nothing to score (TrackEval reports 0)
                hs = {k: math.nan for k in hs}
            elif float(np.sum(comb["HOTA_TP"])) == 0:  # no match at any threshold: no localisation
                hs["loca"] = hs["loca_0"] = hs["hotaloca_0"] = math.nan
            summary.update(hs)
            out["hota"] = {
                "alphas": ALPHAS.copy(),
                **{k.lower(): np.asarray(comb[k], np.float64).copy() for k in ARRAY_FIELDS},
                "tp": comb["HOTA_TP"].astype(np.int64),
                "fn": comb["HOTA_FN"].astype(np.int64),
                "fp": comb["HOTA_FP"].astype(np.int64),
            }
            for k in ("HOTA", "DetA", "AssA", "LocA"):
                per_video[k.lower()] = per_hota[k].mean(1)
        out["version"] = version if self._want_clear else VERSIONS["hota"]
        out["versions"] = versions
        out["options"] = options
        return out

    def _clear(self, summary: dict, per_video: dict, nd: np.ndarray) -> str:
        """CLEAR-MOT (+ identity unless OCRB) into ``summary``/``per_video``; returns the status."""
        per = np.stack(self._counts) if self._counts else np.zeros((0, 6), np.int64)
        tot = per.sum(0)
        frames, objects, matches, switches, misses, fps = (int(v) for v in tot)
        dsum = float(np.sum(self._dsum))
        det = matches + switches
        if self._ocrb:
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

        summary.update(
            {
                "mota": mota,
                "motp": motp,
                "motp_iou": 1.0 - motp,
                "num_frames": frames,
                "num_objects": objects,
                "num_unique_objects": n_unique,
                "num_matches": matches,
                "num_switches": switches,
                "num_misses": misses,
                "num_false_positives": fps,
                "num_detections": det,
                "mostly_tracked": mt,
                "partially_tracked": pt,
                "mostly_lost": ml,
                "num_matches_pct": pct(matches),
                "num_switches_pct": pct(switches),
                "num_misses_pct": pct(misses),
                "num_false_positives_pct": pct(fps),
            }
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            v_obj = per[:, 1].astype(np.float64)
            v_mota = np.where(v_obj > 0, 1.0 - (per[:, 4] + per[:, 3] + per[:, 5]) / np.maximum(v_obj, 1), np.nan)
        per_video.update({k: per[:, i].copy() for i, k in enumerate(COUNT_KEYS)})
        per_video["mota"] = v_mota  # for inspection only: per-video MOTA is never averaged (§6)
        per_video["distance_sum"] = np.asarray(self._dsum)
        if self._ocrb:
            return status
        n_pred = int(nd[:, 2].sum())
        idtp = int(np.sum(self._idtp))
        summary["num_predictions"] = n_pred
        summary["recall"] = det / objects if objects else math.nan
        summary["precision"] = det / n_pred if n_pred else math.nan
        summary.update(identity_scores(idtp, objects, n_pred))
        summary["num_fragmentations"] = int(np.sum(self._frag))
        per_video["num_predictions"] = nd[:, 2].copy()
        per_video["idtp"] = np.asarray(self._idtp, np.int64)
        per_video["num_fragmentations"] = np.asarray(self._frag, np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_video["idf1"] = 2.0 * per_video["idtp"] / (per[:, 1] + nd[:, 2])
        return status


# Largest padded [videos, frames, GT ids, predicted ids] table of one batch of ``_mask_batch``.
_MAX_BATCH = 1 << 20


def _runs(pairs: list) -> Iterator[tuple[int, int]]:
    """Consecutive runs of videos of one length whose padded tables stay under ``_MAX_BATCH``."""
    lo = 0
    while lo < len(pairs):
        T = pairs[lo][0].shape[0]
        kt, kp = pairs[lo][2], pairs[lo][3]
        hi = lo + 1
        while hi < len(pairs) and pairs[hi][0].shape[0] == T:
            a, b = max(kt, pairs[hi][2]), max(kp, pairs[hi][3])
            if (hi + 1 - lo) * T * a * b > _MAX_BATCH:
                break
            kt, kp, hi = a, b, hi + 1
        yield lo, hi
        lo = hi


class TrackingAccumulator(_TrackScores):
    """Streaming tracking metrics of id maps: ``update(true_videos, pred_videos)`` per batch of
    videos, then ``compute()``.

    Options as ``clear_mot``; ``hota=True`` adds HOTA and its family (from the same IoU tables).
    Each video gets a fresh accumulator state (one motmetrics accumulator per video), except under
    ``ocrb_compat`` where one state spans all updates (CLEAR-MOT only: OCRB reports neither IDF1
    nor HOTA).
    """

    def __init__(
        self,
        *,
        iou_threshold: float = 0.5,
        min_pixels: int = 1,
        exclude_bg_iou: float | None = 0.2,
        background_ids: Any = (),
        geometry: str = "mask",
        ocrb_compat: bool = False,
        ocrb_frames: tuple[int, int] = (2, 10),
        hota: bool = False,
        clear: bool = True,
    ) -> None:
        self.options = _Options(iou_threshold, min_pixels, exclude_bg_iou, geometry, ocrb_compat, tuple(ocrb_frames))
        self.options.check()
        if ocrb_compat and (hota or not clear):
            raise ValueError("ocrb_compat: OCRB's protocol is CLEAR-MOT only; use hota=False, clear=True")
        if not (clear or hota):
            raise ValueError("TrackingAccumulator: nothing to compute (clear=False and hota=False)")
        self.background_ids = background_ids
        self._ocrb = ocrb_compat
        super().__init__(clear, hota)

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
        for i, (t, p, kt, kp) in enumerate(pairs):
            _check_tables(t, p, opts.geometry, i, kt, kp)
        if not opts.ocrb_compat:
            for lo, hi in _runs(pairs):
                vts = [_tables(t, p, opts.geometry, kt, kp) for t, p, kt, kp in pairs[lo:hi]]
                self._add_batch(_mask_batch(vts, opts, bgs[lo:hi], need_dist=self._want_clear))
            return
        for i, (t, p, kt, kp) in enumerate(pairs):
            vt = _tables(t, p, opts.geometry, kt, kp)
            counts = [0] * 6
            dsum = 0.0
            n_obj = n_hyp = n_frames = 0
            for oids, hids, dists in _frames(vt, opts, bgs[i]):
                dsum += _update(self._shared, oids, hids, dists, counts)
                n_obj, n_hyp, n_frames = n_obj + len(oids), n_hyp + len(hids), n_frames + 1
            self._counts.append(np.asarray(counts, np.int64))
            self._dsum.append(dsum)
            self._ndet.append((n_frames, n_obj, n_hyp))
        self._flush()

    def compute(self) -> dict:
        """Summary (counts summed over videos, MOTA, MOTP, MT/PT/ML, % of objects, IDF1/IDP/IDR,
        fragmentations; HOTA family when enabled), per-video values, status, ``n`` (videos),
        ``n_skipped`` (videos without GT objects), version(s), options."""
        opts = self.options
        if not self._ndet:
            raise ValueError("TrackingAccumulator.compute: no videos were added (call update first)")
        out = self._result(
            VERSIONS["mot_ocrb" if opts.ocrb_compat else "mot"],
            {
                "iou_threshold": opts.iou_threshold,
                "min_pixels": opts.min_pixels,
                "exclude_bg_iou": opts.exclude_bg_iou,
                "geometry": opts.geometry,
                "ocrb_compat": opts.ocrb_compat,
                **({"ocrb_frames": list(opts.ocrb_frames)} if opts.ocrb_compat else {}),
            },
        )
        if opts.ocrb_compat:
            s = out["summary"]
            out["summary"].update(_ocrb_numbers(self._shared.objects.values(), s["mota"], s["motp"]))
        return out


def _as_box_video_list(x: Any, name: str) -> list:
    if isinstance(x, (_mc.BoxTracks, Mapping, str, bytes, np.ndarray, torch.Tensor)) or not isinstance(x, Iterable):
        raise TypeError(
            f"{name}: expected a sequence of videos (each BoxTracks, a mapping of rows or a per-frame "
            f"list of (ids, boxes)), got {type(x).__name__}; wrap a single video in a list"
        )
    return list(x)


class BoxTrackingAccumulator(_TrackScores):
    """Streaming tracking metrics of float boxes: ``update(true_videos, pred_videos)``, ``compute()``.

    ``box_format`` (required): ``"xywh"`` or ``"x1y1x2y2"`` (``metrics.motchallenge``). CLEAR-MOT as
    motmetrics ``compare_to_groundtruth(gt, dt, "iou", distth=1 - iou_threshold)``: ``dist = 1 − IoU``,
    forbidden where ``dist > 1 − iou_threshold``; one motmetrics accumulator per video. IDF1 and
    fragmentations as motmetrics; ``hota=True`` adds the HOTA family (TrackEval).
    """

    def __init__(self, *, box_format: str, iou_threshold: float = 0.5, hota: bool = False, clear: bool = True) -> None:
        self.box_format = _mc.check_box_format(box_format)
        if not (isinstance(iou_threshold, (int, float)) and 0.0 <= iou_threshold <= 1.0):
            raise ValueError(f"iou_threshold: expected a number in [0, 1], got {iou_threshold!r}")
        if not (clear or hota):
            raise ValueError("BoxTrackingAccumulator: nothing to compute (clear=False and hota=False)")
        self.iou_threshold = float(iou_threshold)
        super().__init__(clear, hota)

    def update(self, true_videos: Any, pred_videos: Any) -> None:
        """Add videos: sequences of per-video boxes (``metrics.motchallenge``), GT and prediction."""
        tv = _as_box_video_list(true_videos, "true_videos")
        pv = _as_box_video_list(pred_videos, "pred_videos")
        if len(tv) != len(pv):
            raise ValueError(f"pred_videos: {len(pv)} videos but true_videos has {len(tv)}; expected the same number")
        if not tv:
            raise ValueError("true_videos: empty; expected at least one video")
        max_dist = 1.0 - self.iou_threshold
        vids = [_box_video(t, p, self.box_format, max_dist, i) for i, (t, p) in enumerate(zip(tv, pv))]
        for v in vids:  # all checked before any is added
            self._add(v)
        self._flush()

    def compute(self) -> dict:
        """As ``TrackingAccumulator.compute``."""
        return self._result(
            VERSIONS["mot_boxes"],
            {"iou_threshold": self.iou_threshold, "box_format": self.box_format, "input": "boxes"},
        )


def _track_classes(records: Iterable[list[int]]) -> tuple[int, int, int]:
    """motmetrics mostly tracked (ratio >= 0.8), partially tracked, mostly lost (< 0.2), where
    ratio = frames not missed / frames present (plain Python: a handful of objects per video)."""
    mt = pt = ml = 0
    for present, tracked, *_ in records:
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
    r = np.array([rec[:3] for rec in records], dtype=np.float64).reshape(-1, 3)
    n = r.shape[0]
    tracked = (r[:, 2] / r[:, 0] >= 0.8).sum() if n else 0
    detected = (r[:, 1] / r[:, 0] >= 0.8).sum() if n else 0
    return {
        "ocrb_mota": 100.0 * mota,
        "ocrb_motp": 100.0 * (1.0 - motp),
        "ocrb_mostly_tracked": 100.0 * tracked / n if n else math.nan,
        "ocrb_mostly_detected": 100.0 * detected / n if n else math.nan,
    }


def clear_mot(
    true_videos: Any,
    pred_videos: Any,
    *,
    iou_threshold: float = 0.5,
    min_pixels: int = 1,
    exclude_bg_iou: float | None = 0.2,
    background_ids: Any = (),
    geometry: str = "mask",
    ocrb_compat: bool = False,
    ocrb_frames: tuple[int, int] = (2, 10),
    hota: bool = False,
) -> dict:
    """CLEAR-MOT over a set of videos (docs/metrics.md §6).

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
        hota: add the HOTA family (as ``hota``, from the same IoU tables) to the summary.

    Returns ``{"summary": {mota, motp, motp_iou, counts, mostly_tracked, ..., *_pct, idf1, idp, idr,
    idtp, idfn, idfp, num_predictions, recall, precision, num_fragmentations}, "status",
    "per_video": {count: int array [V], idf1, ...}, "n", "n_skipped", "version", "versions",
    "options"}`` (no identity values under ``ocrb_compat``).
    """
    acc = TrackingAccumulator(
        iou_threshold=iou_threshold,
        min_pixels=min_pixels,
        exclude_bg_iou=exclude_bg_iou,
        background_ids=background_ids,
        geometry=geometry,
        ocrb_compat=ocrb_compat,
        ocrb_frames=ocrb_frames,
        hota=hota,
    )
    acc.update(true_videos, pred_videos)
    return acc.compute()


mot = clear_mot


def clear_mot_boxes(
    true_videos: Any, pred_videos: Any, *, box_format: str, iou_threshold: float = 0.5, hota: bool = False
) -> dict:
    """CLEAR-MOT, IDF1/IDP/IDR and fragmentations of float boxes (motmetrics 1.4.0 semantics).

    Args:
        true_videos, pred_videos: one entry per video, each ``BoxTracks`` (e.g. from
            ``read_motchallenge``), a mapping ``{"frames", "ids", "boxes"}`` of rows, or a per-frame
            list of ``(ids [n], boxes [n, 4])``; both sides of a video in the same form.
        box_format: ``"xywh"`` (x, y, width, height) or ``"x1y1x2y2"`` (corners); required.
        iou_threshold: pairs may match when ``1 − IoU <= 1 − iou_threshold`` (motmetrics'
            ``distth = 1 − iou_threshold``; 0.5 is the MOTChallenge setting).
        hota: add the HOTA family (as ``hota_boxes``) to the summary.

    Returns the dict of ``clear_mot`` (``options``: iou_threshold, box_format).
    """
    acc = BoxTrackingAccumulator(box_format=box_format, iou_threshold=iou_threshold, hota=hota)
    acc.update(true_videos, pred_videos)
    return acc.compute()


def hota(
    true_videos: Any,
    pred_videos: Any,
    *,
    min_pixels: int = 1,
    exclude_bg_iou: float | None = 0.2,
    background_ids: Any = (),
    geometry: str = "mask",
) -> dict:
    """HOTA, DetA, AssA, LocA (and DetRe, DetPr, AssRe, AssPr, OWTA) of id maps (``metrics.hota_trackeval``).

    The GT objects and the hypotheses of each frame are those of ``clear_mot`` (same options);
    the similarity is the mask IoU (``geometry="box"``: the IoU of the masks' bounding boxes).

    Returns ``{"summary": {hota, deta, assa, loca, detre, detpr, assre, asspr, owta, hota_0,
    loca_0, hotaloca_0, num_objects, num_predictions, num_frames}, "hota": {alphas, per-α arrays,
    tp, fn, fp}, "per_video": {hota, deta, assa, loca, ...}, "status", "n", "n_skipped", "version",
    "versions", "options"}``. HOTA values are NaN when there is no GT and no predicted detection at
    all, LocA when no pair matches at any threshold (TrackEval reports 0 and 1 there).
    """
    acc = TrackingAccumulator(
        min_pixels=min_pixels,
        exclude_bg_iou=exclude_bg_iou,
        background_ids=background_ids,
        geometry=geometry,
        hota=True,
        clear=False,
    )
    acc.update(true_videos, pred_videos)
    return acc.compute()


def hota_boxes(true_videos: Any, pred_videos: Any, *, box_format: str) -> dict:
    """HOTA and its family of float boxes (inputs as ``clear_mot_boxes``; returns as ``hota``)."""
    acc = BoxTrackingAccumulator(box_format=box_format, hota=True, clear=False)
    acc.update(true_videos, pred_videos)
    return acc.compute()


def box_frame_inputs(
    true_video: Any, pred_video: Any, *, box_format: str, iou_threshold: float = 0.5, similarity: bool = False
) -> list[tuple[list[int], list[int], np.ndarray]]:
    """The per-frame ``(object ids, hypothesis ids, distances)`` that ``clear_mot_boxes`` feeds its
    accumulator for one video (rows in the given order; NaN = may not pair); ``similarity=True``:
    the IoU matrices."""
    _mc.check_box_format(box_format)
    v = _box_video(true_video, pred_video, box_format, 1.0 - float(iou_threshold), 0)
    return list(_frame_iter(v, similarity=similarity))
