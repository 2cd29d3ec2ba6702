"""Box tracks: the input of the box entry points (``clear_mot_boxes``, ``hota_boxes``) and a reader
of MOTChallenge text files (docs/metrics.md §6).

A video is scored from, per frame, ground-truth ids and float boxes and predicted ids and boxes.
The box convention is never guessed: every scoring call names it (``box_format="xywh"`` for
``x, y, width, height`` or ``"x1y1x2y2"`` for the two corners), and a ``BoxTracks`` carries the
format it was made with, which must equal the call's (a ``x1y1x2y2`` table read as ``xywh`` is the
OCLF bug of docs/metrics.md §9).

One video of boxes is given as either

* a ``BoxTracks`` (flat rows: frame number, id, box; what ``read_motchallenge`` returns) or a
  mapping with the same three fields ``frames``/``ids``/``boxes``: the video's frames are the
  frame numbers that occur in its GT or its prediction (motmetrics ``compare_to_groundtruth``);
* a sequence over frames of ``(ids, boxes)`` pairs (``ids`` int ``[n]``, ``boxes`` float ``[n, 4]``;
  ``n`` may be 0): frame ``t`` is position ``t``, and the GT and the prediction need the same
  number of frames.

Both sides of a video must use the same form (a 1-based MOTChallenge table against a 0-based list
would silently shift the time axis). Ids are integers, unique within a frame; boxes are finite with
non-negative width and height. Within a frame the rows keep their given order, which is the order
motmetrics visits them (it decides its rare tie-breaks).

Box IoU is motmetrics' ``boxiou`` operation for operation (``max = min + size`` for ``xywh``,
sizes and overlaps clipped at 0, IoU 0 where the intersection is 0), so thresholds tie exactly as
in motmetrics.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BOX_FORMATS", "BoxTracks", "read_motchallenge", "box_iou"]

BOX_FORMATS = ("xywh", "x1y1x2y2")
_SPLIT = re.compile(r"[\s,]+")


def check_box_format(box_format: Any) -> str:
    if box_format not in BOX_FORMATS:
        raise ValueError(
            f"box_format: expected one of {BOX_FORMATS} (x, y, width, height or the corners x1, y1, "
            f"x2, y2), got {box_format!r}; the convention is never guessed"
        )
    return box_format


@dataclass(frozen=True)
class BoxTracks:
    """The boxes of one video as flat rows (one per object and frame).

    ``frames`` int64 ``[N]`` frame numbers, ``ids`` int64 ``[N]``, ``boxes`` float64 ``[N, 4]`` in
    ``box_format``; ``confidence`` float64 ``[N]`` (NaN when the source has none). Rows are kept in
    the order given.
    """

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    box_format: str
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_box_format(self.box_format)
        f = _int_array(self.frames, "BoxTracks.frames")
        i = _int_array(self.ids, "BoxTracks.ids")
        b = _box_array(self.boxes, "BoxTracks.boxes", self.box_format)
        if not (len(f) == len(i) == len(b)):
            raise ValueError(
                f"BoxTracks: frames, ids and boxes need the same number of rows, got {len(f)}, {len(i)} and {len(b)}"
            )
        c = None
        if self.confidence is not None:
            c = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
            if len(c) != len(f):
                raise ValueError(f"BoxTracks.confidence: {len(c)} values for {len(f)} rows")
        object.__setattr__(self, "frames", f)
        object.__setattr__(self, "ids", i)
        object.__setattr__(self, "boxes", b)
        object.__setattr__(self, "confidence", c)

    def __len__(self) -> int:
        return len(self.frames)


def _int_array(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of integers, got shape {a.shape}")
    if a.size and a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name}: expected integers, got non-integral values")
    elif a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _box_array(x: Any, name: str, box_format: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) or x.dtype.kind in "iuf" else None
    if a is None:
        raise TypeError(f"{name}: expected float boxes [n, 4], got dtype {x.dtype}")
    if a.size == 0:
        a = a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes [n, 4] ({box_format}), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: boxes contain NaN or inf")
    if box_format == "xywh":
        bad = (a[:, 2] < 0) | (a[:, 3] < 0)
        what = "negative width or height"
    else:
        bad = (a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1])
        what = "x2 < x1 or y2 < y1"
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: row {r} {a[r].tolist()} has {what} for box_format={box_format!r}; is the box format right?"
        )
    return a


def read_motchallenge(
    path: str | os.PathLike, *, min_confidence: float | None = None, matlab_coords: bool = True
) -> BoxTracks:
    """Read a MOTChallenge text file (``gt.txt`` or a tracker's output) into ``BoxTracks``.

    Each line is ``frame, id, x, y, w, h[, conf, ...]`` (commas or white space; MOT15-2D, MOT16/17/20
    and tracker files alike); boxes are ``xywh`` with ``x, y`` the top-left corner.
    ``matlab_coords=True`` subtracts 1 from ``x`` and ``y`` (MOTChallenge pixels are 1-based), as
    ``motmetrics.io.loadtxt`` does; IoUs do not depend on it. ``min_confidence``: keep rows with
    ``conf >= min_confidence`` (None keeps every row, as motmetrics' default of -1 does for these
    files; MOTChallenge GT marks rows to ignore with ``conf = 0``, so ``1`` drops them).
    Frame numbers are kept as written (1-based).
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    rows, lines = [], []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        parts = [p for p in _SPLIT.split(s) if p]
        if len(parts) < 6:
            raise ValueError(f"{path}:{n}: expected at least 6 fields 'frame, id, x, y, w, h', got {len(parts)}")
        try:
            vals = [float(p) for p in parts[:7]]
        except ValueError:
            raise ValueError(f"{path}:{n}: non-numeric field in {s!r}") from None
        rows.append(vals if len(vals) == 7 else vals + [math.nan])
        lines.append(n)
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    for col, what in ((0, "frame"), (1, "id")):
        v = a[:, col]
        if np.any(v != np.round(v)):
            r = int(np.flatnonzero(v != np.round(v))[0])
            raise ValueError(f"{path}:{lines[r]}: {what} {float(v[r])!r} is not an integer")
    if min_confidence is not None:
        a = a[a[:, 6] >= min_confidence]
    boxes = a[:, 2:6].copy()
    if matlab_coords:
        boxes[:, :2] -= 1.0
    return BoxTracks(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), boxes, "xywh", a[:, 6].copy())


def _corners(b: np.ndarray, box_format: str) -> tuple[np.ndarray, np.ndarray]:
    if box_format == "xywh":
        lo = b[..., :2]
        return lo, lo + b[..., 2:]  # motmetrics rect_min_max
    return b[..., :2], b[..., 2:]


def box_iou(a: np.ndarray, b: np.ndarray, box_format: str) -> np.ndarray:
    """IoU ``[..., n, m]`` of boxes ``a [..., n, 4]`` and ``b [..., m, 4]`` (motmetrics ``boxiou``)."""
    check_box_format(box_format)
    a_min, a_max = _corners(np.asarray(a, np.float64)[..., :, None, :], box_format)
    b_min, b_max = _corners(np.asarray(b, np.float64)[..., None, :, :], box_format)
    i_size = np.maximum(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0)
    i_vol = i_size[..., 0] * i_size[..., 1]
    a_size = np.maximum(a_max - a_min, 0)
    b_size = np.maximum(b_max - b_min, 0)
    u_vol = a_size[..., 0] * a_size[..., 1] + b_size[..., 0] * b_size[..., 1] - i_vol
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = i_vol / u_vol
    return np.where(i_vol == 0, 0.0, iou)


# --------------------------------------------------------------------------------------------
# one video of boxes -> padded per-frame slots
# --------------------------------------------------------------------------------------------
@dataclass
class FrameSlots:
    """Rows of one side of a video, padded per frame: slot ``s`` of frame ``t`` is row
    ``rows[t, s]`` (``valid[t, s]``), with label ``lab[t, s]`` (index into ``ids``) and box
    ``boxes[t, s]``."""

    valid: np.ndarray  # bool [T, S]
    lab: np.ndarray  # int64 [T, S]
    boxes: np.ndarray  # float64 [T, S, 4]
    ids: np.ndarray  # int64 [n_labels] original ids


def _rows_of(x: Any, name: str, box_format: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(form, frames, ids, boxes) of one video in either accepted form."""
    if isinstance(x, BoxTracks):
        if x.box_format != box_format:
            raise ValueError(
                f"{name}: BoxTracks in box_format={x.box_format!r} but the call says "
                f"box_format={box_format!r}; convert the boxes or pass the matching box_format"
            )
        return "rows", x.frames, x.ids, x.boxes
    if isinstance(x, Mapping):
        missing = [k for k in ("frames", "ids", "boxes") if k not in x]
        if missing:
            raise ValueError(f"{name}: a mapping of rows needs keys 'frames', 'ids', 'boxes'; missing {missing}")
        if "box_format" in x and x["box_format"] != box_format:
            raise ValueError(
                f"{name}: rows in box_format={x['box_format']!r} but the call says box_format={box_format!r}"
            )
        f = _int_array(x["frames"], f"{name}['frames']")
        i = _int_array(x["ids"], f"{name}['ids']")
        b = _box_array(x["boxes"], f"{name}['boxes']", box_format)
        if not (len(f) == len(i) == len(b)):
            raise ValueError(
                f"{name}: frames, ids and boxes need the same number of rows, got {len(f)}, {len(i)}, {len(b)}"
            )
        return "rows", f, i, b
    if isinstance(x, (str, bytes, np.ndarray)) or not isinstance(x, Sequence):
        raise TypeError(
            f"{name}: expected BoxTracks, a mapping of rows or a sequence of per-frame (ids, boxes), "
            f"got {type(x).__name__}"
        )
    fs, ids, boxes = [], [], []
    for t, fr in enumerate(x):
        if not (isinstance(fr, (tuple, list)) and len(fr) == 2):
            raise TypeError(f"{name}[{t}]: expected an (ids, boxes) pair, got {type(fr).__name__}")
        i = _int_array(fr[0], f"{name}[{t}] ids")
        b = _box_array(fr[1], f"{name}[{t}] boxes", box_format)
        if len(i) != len(b):
            raise ValueError(f"{name}[{t}]: {len(i)} ids but {len(b)} boxes")
        fs.append(np.full(len(i), t, np.int64))
        ids.append(i)
        boxes.append(b)
    if not fs:
        return "frames:0", np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4))
    return f"frames:{len(fs)}", np.concatenate(fs), np.concatenate(ids), np.concatenate(boxes)


def _slots(
    fidx: np.ndarray, ids: np.ndarray, boxes: np.ndarray, T: int, name: str, frame_names: np.ndarray
) -> FrameSlots:
    order = np.argsort(fidx, kind="stable")
    f, i, b = fidx[order], ids[order], boxes[order]
    counts = np.bincount(f, minlength=T)
    S = int(counts.max()) if T and len(f) else 0
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]) if T else np.zeros(0, np.int64)
    pos = np.arange(len(f)) - start[f]
    # ids unique within a frame
    if len(f) > 1:
        key = np.lexsort((i, f))
        dup = (f[key][1:] == f[key][:-1]) & (i[key][1:] == i[key][:-1])
        if dup.any():
            k = key[1:][dup][0]
            raise ValueError(
                f"{name}: id {int(i[k])} occurs twice in frame {int(frame_names[f[k]])}; ids must be "
                f"unique within a frame"
            )
    uid, lab = np.unique(i, return_inverse=True)
    valid = np.zeros((T, S), bool)
    labs = np.zeros((T, S), np.int64)
    bx = np.zeros((T, S, 4), np.float64)
    valid[f, pos] = True
    labs[f, pos] = lab.reshape(-1)
    bx[f, pos] = b
    return FrameSlots(valid, labs, bx, uid.astype(np.int64))


def video_slots(true_video: Any, pred_video: Any, box_format: str, i: int) -> tuple[FrameSlots, FrameSlots, np.ndarray]:
    """Validated padded slots of one (GT, prediction) video and its frame numbers."""
    tn, pn = f"true_videos[{i}]", f"pred_videos[{i}]"
    tf, tfr, tid, tbx = _rows_of(true_video, tn, box_format)
    pf, pfr, pid, pbx = _rows_of(pred_video, pn, box_format)
    if (tf == "rows") != (pf == "rows"):
        raise TypeError(
            f"{pn}: the GT and the prediction of a video must use the same form (both rows with frame "
            f"numbers, or both per-frame lists); got {'rows' if tf == 'rows' else 'a per-frame list'} "
            f"and {'rows' if pf == 'rows' else 'a per-frame list'}"
        )
    if tf != "rows":
        T = int(tf.split(":")[1])
        if T != int(pf.split(":")[1]):
            raise ValueError(f"{pn}: {pf.split(':')[1]} frames but {tn} has {T}; expected videos of the same length")
        names = np.arange(T)
        tidx, pidx = tfr, pfr
    else:
        names = np.unique(np.concatenate([tfr, pfr]))
        T = len(names)
        tidx, pidx = np.searchsorted(names, tfr), np.searchsorted(names, pfr)
    return _slots(tidx, tid, tbx, T, tn, names), _slots(pidx, pid, pbx, T, pn, names), names
