"""Dataset-level scores with a cluster-to-class mapping (docs/metrics.md §4, §5).

* ``semantic_scores``: per-pixel GT classes vs predicted clusters, one global confusion matrix over
  the evaluation set, Hungarian mapping, global accuracy, mACC and mIoU with and without the
  background class (DTI-Sprites App. A; ``mode="dti"`` reproduces its ``SegmentationScores``).
* ``cluster_accuracy`` (alias ``clustering_accuracy``): Hungarian or many-to-one clustering
  accuracy from ``np.unique`` labels (IIC/SCAN ``_hungarian_match``, DTI ``Scores``).

Both take all labels at once (numpy or torch, any shape; flattened). ``SemanticAccumulator`` in
``metrics.accumulators`` builds the same confusion matrix batch by batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from . import _checks
from ._checks import check_table_size, to_numpy

__all__ = [
    "semantic_scores",
    "semantic_from_confusion",
    "confusion_matrix",
    "cluster_accuracy",
    "clustering_accuracy",
    "MAPPINGS",
    "MODES",
]

MAPPINGS = ("hungarian", "many_to_one")
MODES = ("nanmean", "dti")


def _labels(x: Any, name: str, *, nonneg: bool) -> np.ndarray:
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name}: expected a numpy array or a torch tensor of integer labels, got {type(x).__name__}")
    a = to_numpy(x)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise TypeError(f"{name}: expected integer labels, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name}: empty input; expected at least one label")
    a = a.reshape(-1)
    if nonneg and a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.unsignedinteger) and a.min() < 0:
        raise ValueError(f"{name}: negative label {int(a.min())}; expected labels >= 0")
    if nonneg and a.dtype == np.uint64 and int(a.max()) > np.iinfo(np.int64).max:
        raise ValueError(
            f"{name}: label {int(a.max())} exceeds the int64 range (labels must be <= 2**63 - 1); "
            f"relabel to a compact range, e.g. with np.unique(labels, return_inverse=True)"
        )
    return a


def _check_options(mapping: str, mode: str) -> None:
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping: expected one of {MAPPINGS}, got {mapping!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


def confusion_matrix(
    true_cls: Any, pred_clusters: Any, *, num_classes: int | None = None, num_clusters: int | None = None
) -> np.ndarray:
    """int64 ``hist[gt, pred]`` by ``bincount(n_clusters·gt + pred)`` (§4 step 1)."""
    t = _labels(true_cls, "true_cls", nonneg=True)
    p = _labels(pred_clusters, "pred_clusters", nonneg=True)
    if t.shape != p.shape:
        raise ValueError(f"pred_clusters: {p.size} labels do not match true_cls ({t.size}); expected the same shape")
    tmax, pmax = int(t.max()), int(p.max())
    nc = tmax + 1 if num_classes is None else int(num_classes)
    nk = pmax + 1 if num_clusters is None else int(num_clusters)
    if tmax >= nc:
        raise ValueError(f"true_cls: label {tmax} >= num_classes={nc}; expected labels in [0, num_classes)")
    if pmax >= nk:
        raise ValueError(f"pred_clusters: label {pmax} >= num_clusters={nk}; expected labels in [0, num_clusters)")
    check_table_size((nc, nk), "confusion_matrix", _DENSE_HINT)
    key = t.astype(np.int64) * nk + p
    return np.bincount(key, minlength=nc * nk).reshape(nc, nk)


_DENSE_HINT = (
    "; the Hungarian mapping needs the dense [classes, clusters] matrix: relabel classes and "
    "clusters to compact ranges (e.g. np.unique(labels, return_inverse=True)) or use fewer"
)


def _map_columns(h: np.ndarray, mapping: str) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Columns of ``h`` [classes, clusters] merged onto classes, ``Mh[:, k]`` = pixels of the clusters
    mapped to class k, as its diagonal and column sums [classes] (the [classes, classes] matrix
    itself is never built: 10^5 classes would make it 74.5 GiB). Hungarian is run on ``-h`` exactly
    as DTI does (same tie-breaks); with more clusters than classes the leftover clusters map
    nowhere, so their pixels are wrong."""
    nc, nk = h.shape
    if mapping == "hungarian":
        r, c = linear_sum_assignment(-h)
        diag = np.zeros(nc)
        cols = np.zeros(nc)
        diag[r] = h[r, c]
        cols[r] = h[:, c].sum(0)
        assign = {int(k): int(t) for t, k in zip(r, c)}
    else:  # many_to_one: each cluster to its argmax class (§5)
        best = np.argmax(h, axis=0)
        diag = np.bincount(best, weights=h[best, np.arange(nk)], minlength=nc)
        cols = np.bincount(best, weights=h.sum(0), minlength=nc)
        assign = {int(k): int(t) for k, t in enumerate(best)}
    return diag, cols, assign


def _mean(x: np.ndarray, mode: str) -> float:
    if mode == "dti":
        return float(np.mean(np.nan_to_num(x)))  # DTI: absent classes count as 0
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def _scores(h: np.ndarray, mapping: str, mode: str) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    diag, cols, assign = _map_columns(h, mapping)
    rows = h.sum(1)  # all pixels of each class, also those in unmapped clusters
    with np.errstate(invalid="ignore", divide="ignore"):
        total = h.sum()
        acc = diag / rows
        iou = diag / (rows + cols - diag)
        glob = diag.sum() / total if total > 0 else float("nan")
    return {"global_acc": float(glob), "macc": _mean(acc, mode), "miou": _mean(iou, mode)}, acc, iou, assign


def semantic_from_confusion(hist: np.ndarray, *, mapping: str = "hungarian", mode: str = "nanmean") -> dict:
    """Scores from a confusion matrix ``hist[gt_class, pred_cluster]`` (§4 steps 2-3).

    Background (class 0) included in ``global_acc``/``macc``/``miou``; the ``*_nobkg`` values drop
    row and column 0 *before* matching. ``mode="nanmean"`` averages over classes where the value is
    defined (acc: the class occurs; IoU: union > 0); ``mode="dti"`` counts them as 0.
    """
    _check_options(mapping, mode)
    h = np.asarray(hist, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] < 1 or h.shape[1] < 1:
        raise ValueError(f"hist: expected a 2-D [num_classes, num_clusters] matrix, got shape {h.shape}")
    out: dict[str, Any] = {}
    if h.shape[0] > 1 and h.shape[1] > 1:
        nob, _, _, _ = _scores(h[1:, 1:], mapping, mode)
    else:
        nob = {"global_acc": float("nan"), "macc": float("nan"), "miou": float("nan")}
    full, acc, iou, assign = _scores(h, mapping, mode)
    out.update(full)
    out.update({f"{k}_nobkg": v for k, v in nob.items()})
    out.update(
        acc_per_class=acc.tolist(),
        iou_per_class=iou.tolist(),
        cluster_to_class=assign,
        mapping=mapping,
        mode=mode,
        num_classes=int(h.shape[0]),
        num_clusters=int(h.shape[1]),
        n=int(h.sum()),
    )
    return out


def semantic_scores(
    true_cls: Any,
    pred_clusters: Any,
    *,
    mapping: str = "hungarian",
    mode: str = "nanmean",
    num_classes: int | None = None,
    num_clusters: int | None = None,
) -> dict:
    """Semantic global accuracy, mACC and mIoU (with and without background) of a whole set (§4).

    Args:
        true_cls: per-pixel GT class, int >= 0, 0 = background (any shape, e.g. [B,T,H,W]).
        pred_clusters: per-pixel predicted cluster, int >= 0, same shape.
        mapping: ``"hungarian"`` (default) or ``"many_to_one"`` cluster-to-class mapping (§5).
        mode: ``"nanmean"`` (default) or ``"dti"`` (DTI-Sprites ``SegmentationScores`` exactly: pass
            ``num_classes = num_clusters = n`` as DTI's square matrix does).
        num_classes / num_clusters: matrix size; default the largest label + 1. A matrix above
            ``_checks.MAX_TABLE_CELLS`` cells raises ValueError (the Hungarian mapping needs it dense).

    Returns a dict with ``global_acc, macc, miou`` and ``*_nobkg``, per-class lists, the mapping
    used (``cluster_to_class``), ``mapping``, ``mode`` and ``n`` (pixels).
    """
    _check_options(mapping, mode)
    hist = confusion_matrix(true_cls, pred_clusters, num_classes=num_classes, num_clusters=num_clusters)
    return semantic_from_confusion(hist, mapping=mapping, mode=mode)


def cluster_accuracy(
    true: Any, pred: Any, *, mapping: str = "hungarian", mode: str = "nanmean", classes: Sequence[int] | None = None
) -> dict:
    """Clustering accuracy with a Hungarian or many-to-one cluster-to-class mapping (§5).

    ``C[p, t]`` counts (cluster p, class t) over all inputs, built from ``np.unique`` of each
    (labels need not be contiguous or non-negative). ``hungarian``: one-to-one,
    ``ACC = Σ C[r, c] / N`` (points of leftover clusters are wrong); ``many_to_one``: each cluster to
    its majority class, ``ACC = Σ_p max_t C[p, t] / N`` (>= the Hungarian value). ``macc`` is the mean
    per-class recall after mapping; ``classes`` adds labels that may be absent (recall undefined:
    dropped under ``mode="nanmean"``, 0 under ``mode="dti"``).

    Returns ``{"acc", "macc", "mapping", "cluster_to_class", "n", "num_classes", "num_clusters"}``.
    When ``clusters x classes`` exceeds ``_checks.MAX_TABLE_CELLS``, ``many_to_one`` is computed from
    the non-zero counts (same result) and ``hungarian`` raises ValueError stating the limit.
    """
    _check_options(mapping, mode)
    t = _labels(true, "true", nonneg=False)
    p = _labels(pred, "pred", nonneg=False)
    if t.shape != p.shape:
        raise ValueError(f"pred: {p.size} labels do not match true ({t.size}); expected the same number")
    cls, ti = np.unique(t, return_inverse=True)
    if classes is not None:
        allc = np.union1d(cls, np.asarray(list(classes), dtype=cls.dtype))
        ti = np.searchsorted(allc, cls)[ti]
        cls = allc
    clu, pi = np.unique(p, return_inverse=True)
    if len(clu) * len(cls) > _checks.MAX_TABLE_CELLS:
        if mapping == "hungarian":
            check_table_size((len(clu), len(cls)), "cluster_accuracy", _DENSE_HINT + ", or mapping='many_to_one'")
        return _many_to_one_sparse(ti.reshape(-1), pi.reshape(-1), cls, clu, mode)
    C = np.bincount(pi.reshape(-1) * len(cls) + ti.reshape(-1), minlength=len(clu) * len(cls))
    C = C.reshape(len(clu), len(cls))
    N = t.size
    correct = np.zeros(len(cls), dtype=np.int64)
    if mapping == "hungarian":
        r, c = linear_sum_assignment(C, maximize=True)
        correct[c] = C[r, c]
        assign = {clu[i].item(): cls[j].item() for i, j in zip(r, c)}
    else:
        best = C.argmax(1)
        np.add.at(correct, best, C[np.arange(len(clu)), best])
        assign = {clu[i].item(): cls[j].item() for i, j in enumerate(best)}
    support = C.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = correct / support
    return {
        "acc": float(correct.sum() / N),
        "macc": _mean(recall, mode),
        "mapping": mapping,
        "cluster_to_class": assign,
        "n": int(N),
        "num_classes": int(len(cls)),
        "num_clusters": int(len(clu)),
    }


def _many_to_one_sparse(ti: np.ndarray, pi: np.ndarray, cls: np.ndarray, clu: np.ndarray, mode: str) -> dict:
    """``cluster_accuracy(mapping="many_to_one")`` from the non-zero (cluster, class) counts only,
    for label sets whose dense matrix is too large; the same values and mapping (ties go to the
    lowest class, as ``argmax``)."""
    nc = len(cls)
    u, cnt = np.unique(pi.astype(np.int64) * nc + ti, return_counts=True)
    p_of, t_of = np.divmod(u, nc)
    order = np.lexsort((t_of, -cnt, p_of))  # per cluster: largest count first, lowest class on ties
    first = order[np.r_[True, p_of[order][1:] != p_of[order][:-1]]]
    correct = np.bincount(t_of[first], weights=cnt[first], minlength=nc).astype(np.int64)
    support = np.bincount(ti, minlength=nc)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = correct / support
    assign = {clu[k].item(): cls[j].item() for k, j in zip(p_of[first], t_of[first])}
    N = ti.size
    return {
        "acc": float(correct.sum() / N),
        "macc": _mean(recall, mode),
        "mapping": "many_to_one",
        "cluster_to_class": assign,
        "n": int(N),
        "num_classes": int(nc),
        "num_clusters": int(len(clu)),
    }


clustering_accuracy = cluster_accuracy
