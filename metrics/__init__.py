"""ocbench metrics: pure functions on batched id maps / images, plus streaming accumulators.

Conventions: ``docs/metrics.md`` (cited as §n in the code). Inputs are numpy arrays or
torch tensors; per-sample results are float64 ``[B]`` of the same kind (torch on the input's
device). ``lpips`` and ``LPIPSWeightsMissing`` live in ``metrics.perceptual`` and are loaded lazily, so
``import metrics`` never builds or loads a network.
"""

from __future__ import annotations

import types
from typing import Any

from .accumulators import MSEAccumulator, SegmentationAccumulator, SemanticAccumulator, TrackingAccumulator, summarize
from .catalogue import CATALOGUE, Metric
from .clustering import (
    cluster_accuracy,
    clustering_accuracy,
    confusion_matrix,
    semantic_from_confusion,
    semantic_scores,
)
from .image import mse, mse_sum
from .motchallenge import BoxTracks, read_motchallenge
from .segmentation import (
    SEGMENTATION_METRICS,
    ari,
    ari_frame,
    contingency,
    fg_ari,
    fg_ari_frame,
    mbo,
    miou,
    miou_clevrtex,
    miou_clevrtex_fg,
    segmentation_metrics,
)
from .tracking import (
    BoxTrackingAccumulator,
    box_frame_inputs,
    clear_mot,
    clear_mot_boxes,
    frame_inputs,
    hota,
    hota_boxes,
    mot,
)
from .versions import VERSIONS, version

_LAZY = ("lpips", "LPIPSWeightsMissing")

__all__ = [
    # segmentation (§1-§3)
    "ari",
    "fg_ari",
    "ari_frame",
    "fg_ari_frame",
    "miou",
    "miou_clevrtex",
    "miou_clevrtex_fg",
    "mbo",
    "contingency",
    "segmentation_metrics",
    "SEGMENTATION_METRICS",
    # clustering (§4, §5)
    "semantic_scores",
    "semantic_from_confusion",
    "confusion_matrix",
    "cluster_accuracy",
    "clustering_accuracy",
    # tracking (§6): CLEAR-MOT, IDF1, HOTA of id maps and of float boxes
    "clear_mot",
    "mot",
    "frame_inputs",
    "hota",
    "clear_mot_boxes",
    "hota_boxes",
    "box_frame_inputs",
    "BoxTracks",
    "read_motchallenge",
    # images (§7, §8)
    "mse",
    "mse_sum",
    *_LAZY,
    # aggregation
    "summarize",
    "SegmentationAccumulator",
    "TrackingAccumulator",
    "BoxTrackingAccumulator",
    "SemanticAccumulator",
    "MSEAccumulator",
    "VERSIONS",
    "version",
    "CATALOGUE",
    "Metric",
]


def _load_lpips() -> types.ModuleType:
    import importlib

    return importlib.import_module(f"{__name__}.perceptual")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = _load_lpips()
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
