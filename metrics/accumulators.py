"""Streaming accumulators: score a whole split batch by batch (``update``/``compute``).

Each keeps only per-sample values (one float per sample and metric) or a confusion matrix, never
the masks. ``compute()`` returns ``{name: {"value", "std", "n", "n_skipped", "version", "status"}}``
where ``value`` is the mean over non-skipped samples, ``std`` their sample standard deviation
(ddof = 1), ``n`` their number and ``n_skipped`` the number of NaN (undefined) samples;
``status`` is ``"ok"`` or ``"no_valid_samples"`` (then ``value`` is NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._checks import check_table_size
from .clustering import MAPPINGS, MODES, confusion_matrix, semantic_from_confusion
from .image import mse
from .segmentation import SEGMENTATION_METRICS, segmentation_metrics
from .tracking import TrackingAccumulator
from .versions import VERSIONS

__all__ = ["summarize", "SegmentationAccumulator", "TrackingAccumulator", "SemanticAccumulator", "MSEAccumulator"]


def summarize(values: Any, version: str | None = None) -> dict:
    """``{"value": mean over non-NaN, "std", "n": non-NaN count, "n_skipped": NaN count, "status"}``
    (+ ``"version"`` when given) of per-sample values (numpy or torch, any shape)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    ok = ~np.isnan(v)
    n = int(ok.sum())
    out = {
        "value": float(v[ok].mean()) if n else math.nan,
        "std": float(v[ok].std(ddof=1)) if n > 1 else math.nan,
        "n": n,
        "n_skipped": int(v.size - n),
        "status": "ok" if n else "no_valid_samples",
    }
    if version is not None:
        out["version"] = version
    return out


class _PerSample:
    """Per-sample value lists of several metrics."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = tuple(names)
        self.reset()

    def reset(self) -> None:
        self._vals: dict[str, list[np.ndarray]] = {m: [] for m in self.names}

    def _add(self, name: str, v: Any) -> None:
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        self._vals[name].append(np.asarray(v, np.float64).reshape(-1))

    def values(self, name: str) -> np.ndarray:
        """All per-sample values of ``name`` so far (NaN = skipped), e.g. for bootstrap intervals."""
        parts = self._vals[name]
        return np.concatenate(parts) if parts else np.zeros(0)

    def compute(self) -> dict[str, dict]:
        return {m: summarize(self.values(m), VERSIONS[m]) for m in self.names}


class SegmentationAccumulator(_PerSample):
    """ARI / FG-ARI / mIoU / mBO (and the other names of ``SEGMENTATION_METRICS``) over a split.

    ``update(true_ids, pred_ids)`` takes a batch ``[B,T,H,W]`` (predictions may be soft masks) and
    computes every metric from one contingency pass.
    """

    def __init__(
        self, metrics: tuple[str, ...] = ("ari", "fg_ari", "miou", "mbo"), *, skip_empty_fg: bool = False
    ) -> None:
        unknown = [m for m in metrics if m not in SEGMENTATION_METRICS]
        if unknown or not metrics:
            raise ValueError(f"metrics: unknown {unknown or '(empty)'}; expected names from {SEGMENTATION_METRICS}")
        self.skip_empty_fg = skip_empty_fg
        super().__init__(tuple(metrics))

    def update(self, true_ids: Any, pred_ids: Any) -> None:
        res = segmentation_metrics(true_ids, pred_ids, self.names, skip_empty_fg=self.skip_empty_fg)
        for m, v in res.items():
            self._add(m, v)


class MSEAccumulator(_PerSample):
    """Per-sample MSE (``reduction="mean"``, reported as ``mse``) or sum-MSE (``mse_sum``)."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        super().__init__(("mse" if reduction == "mean" else "mse_sum",))

    def update(self, x: Any, y: Any) -> None:
        self._add(self.names[0], mse(x, y, reduction=self.reduction))


class SemanticAccumulator:
    """Global confusion matrix ``hist[gt_class, pred_cluster]`` over batches, then ``semantic_scores``.

    With ``num_classes``/``num_clusters`` None the matrix grows to the largest label seen.
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        num_clusters: int | None = None,
        mapping: str = "hungarian",
        mode: str = "nanmean",
    ) -> None:
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping: expected one of {MAPPINGS}, got {mapping!r}")
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.num_classes, self.num_clusters = num_classes, num_clusters
        self.mapping, self.mode = mapping, mode
        self.reset()

    def reset(self) -> None:
        self.hist = np.zeros((self.num_classes or 0, self.num_clusters or 0), dtype=np.int64)

    def update(self, true_cls: Any, pred_clusters: Any) -> None:
        h = confusion_matrix(true_cls, pred_clusters, num_classes=self.num_classes, num_clusters=self.num_clusters)
        r, c = max(h.shape[0], self.hist.shape[0]), max(h.shape[1], self.hist.shape[1])
        if (r, c) != self.hist.shape:
            check_table_size(
                (r, c),
                "SemanticAccumulator.update",
                ": the confusion matrix would grow past it "
                "(relabel classes and clusters to compact ranges); the matrix so far is unchanged",
            )
            grown = np.zeros((r, c), dtype=np.int64)
            grown[: self.hist.shape[0], : self.hist.shape[1]] = self.hist
            self.hist = grown
        self.hist[: h.shape[0], : h.shape[1]] += h

    def compute(self) -> dict:
        """``semantic_from_confusion`` of the matrix, plus ``version`` and ``status``."""
        if self.hist.sum() == 0:
            raise ValueError("SemanticAccumulator.compute: no pixels were added (call update first)")
        out = semantic_from_confusion(self.hist, mapping=self.mapping, mode=self.mode)
        out["version"] = VERSIONS["semantic_dti" if self.mode == "dti" else "semantic"]
        out["status"] = "ok"
        return out
