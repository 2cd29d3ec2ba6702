"""Score a method (or a file of predictions) on a split with every applicable metric.

What is reported, and under which name, label, unit and direction, is the metric catalogue
(``metrics/catalogue.py``): :class:`SplitScorer` feeds the accumulators a split needs, then loops
over the catalogue rows whose inputs the split and the method provide and stores each value with
the row's identity. A row without a producer here is an error, not a silent gap.

Inputs: ``masks`` always; ``video`` for video datasets (per-frame ARI, CLEAR-MOT, IDF1, HOTA); ``recon`` when the
method returns it (MSE, sum-MSE, LPIPS); ``classes`` when the method returns ``Prediction.classes``
and the dataset has ground-truth object classes (:data:`CLASS_FIELDS`): semantic accuracy, mACC and
mIoU over pixels (ocbench's and DTI-Sprites' conventions) and clustering accuracy over objects. Video
datasets longer than a clip length L also get ``by_length[metric][L]`` on the first L frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

import metrics as M
from metrics import catalogue
from metrics.perceptual import MIN_SIZE


class ClassField(NamedTuple):
    """Where a dataset keeps each object's ground-truth class: ``objects/<field>`` ``[N, K_max]``.

    The class of object id k (k >= 1) is ``field[k - 1] + offset``, and 0 is the background, so the
    classes are ``0 .. num_classes - 1`` (Tetrominoes' shape codes 1..19 give 20 classes, as
    DTI-Sprites counts them; 0-based labels take ``offset = 1``).
    """

    field: str
    offset: int
    num_classes: int | None  # None: as many as the labels seen


#: Ground-truth classes of the built-in datasets. Any other split holding ``objects/class`` (0-based
#: class per object) gets :data:`GENERIC_CLASS_FIELD`; a dataset with neither has no class scores.
CLASS_FIELDS: dict[str, ClassField] = {
    "tetrominoes": ClassField("shape", 0, 20),  # shape codes 1..19
    "multi_dsprites": ClassField("shape", 0, 4),  # 1 square, 2 ellipse, 3 heart
    "scattered_mnist": ClassField("label", 1, 11),  # digits 0..9
    "scattered_shapes": ClassField("label", 1, 31),  # 5 shapes x 6 colours
}
GENERIC_CLASS_FIELD = ClassField("class", 1, None)


def class_field(ds) -> ClassField | None:
    """The :class:`ClassField` of a loaded split, or None when it has no ground-truth classes."""
    cf = CLASS_FIELDS.get(getattr(ds, "dataset", None))
    if cf is None and GENERIC_CLASS_FIELD.field in getattr(ds, "objects", {}):
        cf = GENERIC_CLASS_FIELD
    return cf if cf is not None and cf.field in getattr(ds, "objects", {}) else None


def true_classes(ds, lo: int, hi: int, true_ids: np.ndarray) -> np.ndarray | None:
    """Per-pixel ground-truth class ``[B,T,H,W]`` (0 = background) of samples ``lo:hi``, or None."""
    cf = class_field(ds)
    if cf is None:
        return None
    obj = np.asarray(ds.objects[cf.field][lo:hi]).astype(np.int64)
    if obj.ndim != 2:
        raise ValueError(f"{ds.dataset}: objects/{cf.field} has shape {obj.shape}; expected [N, K_max] classes")
    lut = np.concatenate([np.zeros((len(obj), 1), np.int64), obj + cf.offset], axis=1)
    ids = np.asarray(true_ids).astype(np.int64)
    if ids.size and ids.max() >= lut.shape[1]:
        raise ValueError(
            f"{ds.dataset}: mask id {int(ids.max())} has no row in objects/{cf.field} (K_max = {lut.shape[1] - 1})"
        )
    B = ids.shape[0]
    return np.take_along_axis(lut, ids.reshape(B, -1), axis=1).reshape(ids.shape)


def pixel_classes(classes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-pixel predicted class ``[B,T,H,W]``: ``classes[b, id]`` (or ``classes[b, t, id]``) of each pixel's id."""
    B, T = masks.shape[:2]
    if classes.ndim == 2:
        return np.take_along_axis(classes, masks.reshape(B, -1), axis=1).reshape(masks.shape)
    return np.take_along_axis(classes, masks.reshape(B, T, -1), axis=2).reshape(masks.shape)


class PredictionError(ValueError):
    """A method's output breaks the contract (shape, dtype, NaN)."""


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach()
        if x.dtype.is_floating_point and x.dtype != _torch().float64:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def _torch():
    import torch

    return torch


class Checked(NamedTuple):
    masks: np.ndarray  # int64 [B,T,H,W]
    recon: np.ndarray | None  # float32 [B,T,H,W,C]
    classes: np.ndarray | None  # int64 [B,K] or [B,T,K]


def check_prediction(pred, B: int, T: int, H: int, W: int, C: int) -> Checked:
    """Validate a Prediction; return masks int64 [B,T,H,W], recon float32 [B,T,H,W,C] and classes int64
    [B,K] or [B,T,K] (K > every segment id), the last two None when the method returned none."""
    masks = _to_numpy(pred.masks)
    if masks.shape != (B, T, H, W):
        raise PredictionError(
            f"predict() returned masks of shape {tuple(masks.shape)}; expected [B,T,H,W] = {(B, T, H, W)}"
        )
    if not np.issubdtype(masks.dtype, np.integer):
        if np.issubdtype(masks.dtype, np.floating) and not np.isfinite(masks).all():
            raise PredictionError("predict() returned masks with NaN or inf")
        raise PredictionError(f"predict() returned masks of dtype {masks.dtype}; expected an integer dtype")
    if masks.size and masks.min() < 0:
        raise PredictionError(f"predict() returned negative segment ids (min {masks.min()})")
    recon = None
    if pred.recon is not None:
        recon = _to_numpy(pred.recon).astype(np.float32, copy=False)
        if recon.shape != (B, T, H, W, C):
            raise PredictionError(
                f"predict() returned recon of shape {tuple(recon.shape)}; expected [B,T,H,W,C] = {(B, T, H, W, C)}"
            )
        if not np.isfinite(recon).all():
            raise PredictionError("predict() returned recon with NaN or inf")
    classes = None
    if getattr(pred, "classes", None) is not None:
        classes = _check_classes(_to_numpy(pred.classes), masks, B, T)
    return Checked(masks.astype(np.int64, copy=False), recon, classes)


def _check_classes(c: np.ndarray, masks: np.ndarray, B: int, T: int) -> np.ndarray:
    if not ((c.ndim == 2 and c.shape[0] == B) or (c.ndim == 3 and c.shape[:2] == (B, T))):
        raise PredictionError(
            f"predict() returned classes of shape {tuple(c.shape)}; expected [B,K] (a class per "
            f"segment id) or [B,T,K] (per frame) with B = {B}, T = {T}"
        )
    if not np.issubdtype(c.dtype, np.integer):
        raise PredictionError(f"predict() returned classes of dtype {c.dtype}; expected integer class ids")
    if c.size and c.min() < 0:
        raise PredictionError(f"predict() returned a negative class id (min {c.min()}); expected ids >= 0")
    top = int(masks.max()) if masks.size else 0
    if c.shape[-1] <= top:
        raise PredictionError(
            f"predict() returned classes for {c.shape[-1]} segment ids, but masks use id {top}; "
            f"expected a class for every id 0..{top} (classes[..., id])"
        )
    return c.astype(np.int64, copy=False)


def predict_batch(model, video, device: str):
    """Call ``model.predict``; image methods see videos folded into frames ([B*T,1,...])."""
    torch = _torch()
    B, T, H, W, C = video.shape
    v = torch.as_tensor(video).to(device)
    fold = getattr(model, "frame_by_frame", False) and T > 1
    with torch.no_grad():
        pred = model.predict({"video": v.reshape(B * T, 1, H, W, C) if fold else v})
    if fold:  # back to videos; a wrong size is left as it is for check_prediction to report
        for name, shape in (("masks", (B, T, H, W)), ("recon", (B, T, H, W, C))):
            a = getattr(pred, name)
            if a is not None:
                a = _to_numpy(a)
                setattr(pred, name, a.reshape(shape) if a.size == math.prod(shape) else a)
        c = getattr(pred, "classes", None)
        if c is not None:  # [B*T, K] per frame -> [B, T, K]
            c = _to_numpy(c)
            pred.classes = c.reshape(B, T, -1) if c.ndim == 2 and c.shape[0] == B * T else c
    return pred


class SplitScorer:
    """Scores a split batch by batch with the streaming accumulators of ``metrics``, then reports every
    catalogue row whose inputs were given.

    ``recon`` and ``classes`` must come with every batch or with none (a mean over some batches would
    be stored as if it were the split's). ``num_classes``: the dataset's ground-truth class count
    (:class:`ClassField`), so the semantic matrix has a row for each class even if one never shows.
    """

    def __init__(
        self, kind: str, T: int, lengths: Iterable[int] = (), device: str = "cpu", num_classes: int | None = None
    ):
        self.kind = kind
        self.device = device  # where LPIPS runs (its trunk is the only heavy part of scoring)
        self.lengths = [L for L in lengths if kind == "video" and L < T]
        base = {"masks", "video"} if kind == "video" else {"masks"}
        rows = catalogue.applicable(base)
        self.seg = M.SegmentationAccumulator(tuple(m.key for m in rows if m.family == "segmentation"))
        # CLEAR-MOT, IDF1 and HOTA from one set of per-video IoU tables (docs/metrics.md §6)
        self.track = M.TrackingAccumulator(hota=True) if kind == "video" else None
        self.mse = {r: M.MSEAccumulator(r) for r in ("mean", "sum")}
        self.lpips_nets = tuple(
            m.key.removeprefix("lpips_") for m in catalogue.CATALOGUE.values() if m.family == "perceptual"
        )
        self.lpips_vals: dict[str, list[np.ndarray]] = {}
        self.lpips_missing: dict[str, str] = {}
        self.sem = M.SemanticAccumulator(num_classes=num_classes)
        self.obj_true: list[np.ndarray] = []
        self.obj_pred: list[np.ndarray] = []
        seg_len = tuple(m.key for m in rows if m.by_length and m.family == "segmentation")
        self.by_len = {L: (M.SegmentationAccumulator(seg_len), M.MSEAccumulator()) for L in self.lengths}
        self.n = 0
        self.inputs: set[str] | None = None  # fixed by the first batch

    def update(
        self,
        true_ids: np.ndarray,
        pred_ids: np.ndarray,
        video: np.ndarray | None = None,
        recon: np.ndarray | None = None,
        background_ids: tuple = (),
        true_cls: np.ndarray | None = None,
        pred_cls: np.ndarray | None = None,
    ) -> None:
        """One batch: ids ``[B,T,H,W]``; ``video`` uint8 and ``recon`` in [0,1] ``[B,T,H,W,C]``;
        ``true_cls``/``pred_cls`` per-pixel classes ``[B,T,H,W]`` (:func:`true_classes`, :func:`pixel_classes`)."""
        inputs = {"masks", "video"} if self.kind == "video" else {"masks"}
        if recon is not None and video is not None:
            inputs.add("recon")
        if true_cls is not None and pred_cls is not None:
            inputs.add("classes")
        if self.inputs is None:
            self.inputs = inputs
        elif inputs != self.inputs:
            raise PredictionError(
                f"this batch gives {sorted(inputs)} but the first gave {sorted(self.inputs)}; "
                f"a method returns recon and classes for every batch or for none"
            )
        self.n += true_ids.shape[0]
        self.seg.update(true_ids, pred_ids)
        if self.track is not None:
            self.track.update(true_ids, pred_ids, background_ids=tuple(background_ids))
        x = None
        if "recon" in inputs:
            x = np.asarray(video, np.float32) / 255.0
            for acc in self.mse.values():
                acc.update(x, recon)
            self._lpips(x, recon)
        if "classes" in inputs:
            self.sem.update(true_cls, pred_cls)
            self._objects(true_ids, true_cls, pred_cls)
        for L, (seg, mse) in self.by_len.items():
            seg.update(true_ids[:, :L], pred_ids[:, :L])
            if x is not None:
                mse.update(x[:, :L], recon[:, :L])

    def _lpips(self, x: np.ndarray, recon: np.ndarray) -> None:
        for net in self.lpips_nets:
            if net in self.lpips_missing:
                continue
            if min(x.shape[2:4]) < MIN_SIZE[net]:  # the trunk's last tap would be empty
                self.lpips_missing[net] = f"not applicable: frames smaller than {MIN_SIZE[net]} px"
                continue
            try:
                if self.device != "cpu":
                    torch = _torch()
                    xa, ya = torch.from_numpy(x).to(self.device), torch.from_numpy(recon).to(self.device)
                else:
                    xa, ya = x, recon
                v = M.lpips(xa, ya, net=net, input_range="[0,1]")
                self.lpips_vals.setdefault(net, []).append(np.asarray(_to_numpy(v), np.float64).reshape(-1))
            except M.LPIPSWeightsMissing as e:  # reported as missing, never computed with a random trunk
                self.lpips_missing[net] = str(e).splitlines()[0]

    def _objects(self, true_ids: np.ndarray, true_cls: np.ndarray, pred_cls: np.ndarray) -> None:
        """One point per GT object of each sample: its class and the predicted class of most of its pixels
        (ties: the lowest class id)."""
        B = true_ids.shape[0]
        for b in range(B):
            g = np.asarray(true_ids[b]).reshape(-1)
            fg = g > 0
            if not fg.any():
                continue
            ids, first, gi = np.unique(g[fg], return_index=True, return_inverse=True)
            pc, pi = np.unique(np.asarray(pred_cls[b]).reshape(-1)[fg], return_inverse=True)
            counts = np.bincount(gi * len(pc) + pi, minlength=len(ids) * len(pc)).reshape(len(ids), len(pc))
            self.obj_true.append(np.asarray(true_cls[b]).reshape(-1)[fg][first])
            self.obj_pred.append(pc[counts.argmax(1)])

    def _produced(self) -> dict[str, dict]:
        """Every value the accumulators can give, by catalogue key (entries without identity yet)."""
        out: dict[str, dict] = dict(self.seg.compute())
        if self.track is not None:
            mot = self.track.compute()
            for k, v in mot["summary"].items():
                if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                    # a value undefined although the split's status is ok (LocA with no HOTA match at any
                    # threshold) says why itself
                    status = mot["status"] if mot["status"] != "ok" or math.isfinite(v) else "no_detections"
                    out[k] = {"value": float(v), "n": mot["n"], "n_skipped": mot["n_skipped"], "status": status}
        if "recon" in self.inputs:
            for acc in self.mse.values():
                out.update(acc.compute())
            for net, parts in self.lpips_vals.items():
                out[f"lpips_{net}"] = M.summarize(np.concatenate(parts))
            for net, why in self.lpips_missing.items():
                status = "not_applicable" if why.startswith("not applicable") else "lpips_weights_missing"
                out[f"lpips_{net}"] = {"value": None, "n": 0, "n_skipped": self.n, "status": status, "error": why}
        if "classes" in self.inputs:
            out.update(self._semantic())
            out.update(self._clustering())
        return out

    def _semantic(self) -> dict[str, dict]:
        # rows: the dataset's classes (declared, else those seen); DTI's mean counts a class without pixels
        # as 0 where ours leaves it out. (DTI's matrix is square because its clusters are its classes.)
        h = self.sem.hist
        own = M.semantic_from_confusion(h, mode="nanmean")
        dti = M.semantic_from_confusion(h, mode="dti")
        extra = {"n_pixels": int(h.sum()), "num_classes": int(h.shape[0]), "num_clusters": int(h.shape[1])}
        vals = {
            "semantic_acc": own["global_acc"],
            "semantic_macc": own["macc"],
            "semantic_miou": own["miou"],
            "semantic_macc_dti": dti["macc"],
            "semantic_miou_dti": dti["miou"],
        }
        return {k: _entry(v, self.n, **extra) for k, v in vals.items()}

    def _clustering(self) -> dict[str, dict]:
        if not self.obj_true:
            return {k: _entry(math.nan, 0, n_objects=0) for k in ("cluster_accuracy", "cluster_accuracy_m2o")}
        t, p = np.concatenate(self.obj_true), np.concatenate(self.obj_pred)
        out = {}
        for key, mapping in (("cluster_accuracy", "hungarian"), ("cluster_accuracy_m2o", "many_to_one")):
            r = M.cluster_accuracy(t, p, mapping=mapping)
            out[key] = _entry(
                r["acc"],
                self.n,
                n_objects=r["n"],
                mapping=mapping,
                num_classes=r["num_classes"],
                num_clusters=r["num_clusters"],
            )
        return out

    def compute(self) -> dict[str, Any]:
        """``{"metrics": {key: entry}, "by_length": {key: {L: value}}, "n_samples"}``; each entry carries
        the catalogue row's identity (version, label, unit, higher_is_better, family)."""
        if self.inputs is None:
            raise ValueError("SplitScorer.compute: no batches were scored (call update first)")
        produced = self._produced()
        out: dict[str, dict] = {}
        for row in catalogue.applicable(self.inputs):
            if row.key not in produced:
                raise RuntimeError(
                    f"metric {row.key!r} is in the catalogue and applies here (needs "
                    f"{sorted(row.needs)}), but benchmark/scoring.py produced no value for it; "
                    f"add its producer"
                )
            out[row.key] = {**produced[row.key], **row.identity()}
        by_length: dict[str, dict[str, float]] = {}
        for L, (seg, mse) in self.by_len.items():
            res = dict(seg.compute())
            if "recon" in self.inputs:
                res.update(mse.compute())
            for m, r in res.items():
                if catalogue.metric(m).by_length:
                    by_length.setdefault(m, {})[str(L)] = r["value"]
        return {"metrics": out, "by_length": by_length, "n_samples": self.n}


def _entry(value: float, n: int, **extra) -> dict:
    """A split-level value (one confusion matrix or one point set for the whole split)."""
    ok = value is not None and math.isfinite(value)
    return {"value": float(value), "n": int(n), "n_skipped": 0, "status": "ok" if ok else "no_valid_samples", **extra}


def score_split(
    model, ds, device: str, limit: int | None = None, lengths: Iterable[int] = (), batch_frames: int = 256
) -> dict:
    """Predict and score the first ``limit`` samples of a split (all when None)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    T, H, W, C = ds.shape
    bs = getattr(model, "eval_batch_size", None) or max(1, batch_frames // T)
    cf = class_field(ds)
    scorer = SplitScorer(ds.kind, T, lengths, device=device, num_classes=cf.num_classes if cf else None)
    for lo in range(0, n, bs):
        idx = np.arange(lo, min(n, lo + bs))
        video = np.array(ds.video[lo : lo + len(idx)])  # a writable copy in memory (the split is a read-only memmap)
        pred = predict_batch(model, video, device)
        got = check_prediction(pred, len(idx), T, H, W, C)
        # ground truth in its stored dtype (uint8): the contingency tables read a quarter of the bytes
        true_ids = np.asarray(ds.masks[lo : lo + len(idx)])
        tc = pc = None
        if got.classes is not None and cf is not None:
            tc, pc = true_classes(ds, lo, lo + len(idx), true_ids), pixel_classes(got.classes, got.masks)
        scorer.update(
            true_ids,
            got.masks,
            video=video,
            recon=got.recon,
            background_ids=tuple(pred.background_ids or ()),
            true_cls=tc,
            pred_cls=pc,
        )
    return scorer.compute()
