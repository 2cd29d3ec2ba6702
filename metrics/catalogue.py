"""The metric catalogue: one row per key a run record reports, and everything else about it.

A key's identity used to be spread over the scorer, the versions table and the leaderboard's guesses
from name tokens; here it is written once. ``benchmark.scoring`` loops over :func:`applicable` rows
and stores :meth:`Metric.identity` beside each value, so a record says by itself what a number is
(label, unit, direction, family, convention); the leaderboard reads that and imports nothing.

Adding a metric is one function in ``metrics/`` and one :class:`Metric` row below (its producer in
``benchmark/scoring.py`` when it needs a new accumulator); ``tests/test_catalogue.py`` fails while a
row has no producer or the scorer emits a key without a row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .versions import VERSIONS

__all__ = ["Metric", "CATALOGUE", "FAMILIES", "INPUTS", "UNITS", "metric", "applicable", "add"]

FAMILIES = ("segmentation", "tracking", "reconstruction", "perceptual", "semantic", "clustering")
#: what a row needs: predicted ``masks`` (always), a ``video`` dataset (T > 1 frames per sample), the
#: method's ``recon``, the method's ``classes`` (a class per predicted segment, ``Prediction.classes``)
INPUTS = frozenset({"masks", "video", "recon", "classes"})
#: unit of the stored value: ``fraction`` (a share, at most 1; shown in %), ``count`` (summed events),
#: ``squared error`` (of intensities in [0,1]), ``distance`` (LPIPS)
UNITS = ("fraction", "count", "squared error", "distance")


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str
    version: str  # convention string (metrics/versions.py), stored with every value
    label: str  # what a reader sees, without the unit
    unit: str  # one of UNITS
    higher_is_better: bool | None  # None: a plain count without a direction (GT objects)
    family: str  # one of FAMILIES
    needs: frozenset  # subset of INPUTS
    aggregation: str  # how per-sample values become the one reported
    by_length: bool = False  # also reported on the first L frames of long videos (``by_length``)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"metric {self.key!r}: family {self.family!r} is not one of {FAMILIES}")
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.key!r}: unit {self.unit!r} is not one of {UNITS}")
        if not self.needs <= INPUTS or "masks" not in self.needs:
            raise ValueError(
                f"metric {self.key!r}: needs {sorted(self.needs)} must hold 'masks' and only {sorted(INPUTS)}"
            )
        if self.higher_is_better not in (True, False, None):
            raise ValueError(f"metric {self.key!r}: higher_is_better must be True, False or None")

    def identity(self) -> dict:
        """The fields a record stores beside the value, so readers need not know this package."""
        return {
            "version": self.version,
            "label": self.label,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "family": self.family,
        }


_PER_SAMPLE = "mean over samples of one value per sample (video: one set of T·H·W voxels)"
_PER_FRAME = "mean over samples of the per-frame mean"
_PER_IMAGE_MSE = "per frame over C·H·W, mean over frames, then over samples"
_TRACK = "event counts summed over videos (motmetrics OVERALL), then the ratio"
_COUNT = "summed over videos"
_IDENTITY = (
    "one trajectory matching per video; IDTP, GT and predicted detections summed over videos "
    "(motmetrics OVERALL, TrackEval combine_sequences), then the ratio: not a mean of per-video scores"
)
_HOTA = (
    "one assignment per frame; per threshold alpha in 0.05..0.95 (19): TP/FN/FP summed over videos, "
    "per-video AssA/LocA weighted by TP (TrackEval combine_sequences); then the mean over the 19 thresholds"
)
_SEMANTIC = "one confusion matrix [GT class, predicted class] over the split's pixels, Hungarian class mapping"
_CLUSTER = "one point per GT object and sample (its majority predicted class), Hungarian or many-to-one mapping"


def _m(key, version, label, unit, hib, family, needs, aggregation, by_length=False) -> Metric:
    return Metric(key, VERSIONS[version], label, unit, hib, family, frozenset(needs), aggregation, by_length)


_ROWS = [
    _m("ari", "ari", "ARI", "fraction", True, "segmentation", {"masks"}, _PER_SAMPLE, True),
    _m("fg_ari", "fg_ari", "FG-ARI", "fraction", True, "segmentation", {"masks"}, _PER_SAMPLE, True),
    _m("miou", "miou", "mIoU", "fraction", True, "segmentation", {"masks"}, _PER_SAMPLE),
    _m("mbo", "mbo", "mBO", "fraction", True, "segmentation", {"masks"}, _PER_SAMPLE),
    _m("ari_frame", "ari_frame", "ARI per frame", "fraction", True, "segmentation", {"masks", "video"}, _PER_FRAME),
    _m(
        "fg_ari_frame",
        "fg_ari_frame",
        "FG-ARI per frame",
        "fraction",
        True,
        "segmentation",
        {"masks", "video"},
        _PER_FRAME,
    ),
    _m("mota", "mot", "MOTA", "fraction", True, "tracking", {"masks", "video"}, _TRACK),
    _m(
        "motp_iou",
        "mot",
        "MOTP (IoU)",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "mean IoU of the matched pairs of all videos",
    ),
    _m("num_objects", "mot", "GT objects", "count", None, "tracking", {"masks", "video"}, _COUNT),
    _m("num_matches", "mot", "matches", "count", True, "tracking", {"masks", "video"}, _COUNT),
    _m("num_switches", "mot", "ID switches", "count", False, "tracking", {"masks", "video"}, _COUNT),
    _m("num_misses", "mot", "misses", "count", False, "tracking", {"masks", "video"}, _COUNT),
    _m("num_false_positives", "mot", "false positives", "count", False, "tracking", {"masks", "video"}, _COUNT),
    _m("mostly_tracked", "mot", "mostly tracked", "count", True, "tracking", {"masks", "video"}, _COUNT),
    _m("partially_tracked", "mot", "partially tracked", "count", None, "tracking", {"masks", "video"}, _COUNT),
    _m("mostly_lost", "mot", "mostly lost", "count", False, "tracking", {"masks", "video"}, _COUNT),
    _m(
        "num_fragmentations",
        "mot",
        "fragmentations",
        "count",
        False,
        "tracking",
        {"masks", "video"},
        _COUNT + " (per track: tracked -> missed -> tracked interruptions)",
    ),
    _m(
        "idf1",
        "idf1",
        "IDF1",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "2·ΣIDTP / (ΣGT + Σpredicted detections); " + _IDENTITY,
    ),
    _m(
        "idp",
        "idp",
        "IDP",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "ΣIDTP / Σpredicted detections; " + _IDENTITY,
    ),
    _m("idr", "idr", "IDR", "fraction", True, "tracking", {"masks", "video"}, "ΣIDTP / ΣGT detections; " + _IDENTITY),
    _m(
        "hota",
        "hota",
        "HOTA",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "sqrt(DetA·AssA) per threshold; " + _HOTA,
    ),
    _m(
        "deta",
        "deta",
        "DetA",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "TP / (TP + FN + FP) per threshold; " + _HOTA,
    ),
    _m(
        "assa",
        "assa",
        "AssA",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "mean association IoU of the TPs per threshold; " + _HOTA,
    ),
    _m(
        "loca",
        "loca",
        "LocA",
        "fraction",
        True,
        "tracking",
        {"masks", "video"},
        "mean IoU of the TPs per threshold; " + _HOTA,
    ),
    _m("mse", "mse", "MSE", "squared error", False, "reconstruction", {"masks", "recon"}, _PER_IMAGE_MSE, True),
    _m(
        "mse_sum",
        "mse_sum",
        "MSE (sum over C·H·W)",
        "squared error",
        False,
        "reconstruction",
        {"masks", "recon"},
        _PER_IMAGE_MSE,
    ),
    _m(
        "lpips_vgg",
        "lpips_vgg",
        "LPIPS (VGG)",
        "distance",
        False,
        "perceptual",
        {"masks", "recon"},
        "per frame, mean over frames, then over samples",
    ),
    _m(
        "semantic_acc",
        "semantic",
        "semantic accuracy",
        "fraction",
        True,
        "semantic",
        {"masks", "classes"},
        _SEMANTIC + "; correct pixels / all pixels",
    ),
    _m(
        "semantic_macc",
        "semantic",
        "semantic mACC",
        "fraction",
        True,
        "semantic",
        {"masks", "classes"},
        _SEMANTIC + "; mean over classes present, background included",
    ),
    _m(
        "semantic_miou",
        "semantic",
        "semantic mIoU",
        "fraction",
        True,
        "semantic",
        {"masks", "classes"},
        _SEMANTIC + "; mean over classes with a union, background included",
    ),
    _m(
        "semantic_macc_dti",
        "semantic_dti",
        "semantic mACC (DTI)",
        "fraction",
        True,
        "semantic",
        {"masks", "classes"},
        _SEMANTIC + "; classes without pixels count 0 (DTI-Sprites SegmentationScores)",
    ),
    _m(
        "semantic_miou_dti",
        "semantic_dti",
        "semantic mIoU (DTI)",
        "fraction",
        True,
        "semantic",
        {"masks", "classes"},
        _SEMANTIC + "; classes without pixels count 0 (DTI-Sprites SegmentationScores)",
    ),
    _m(
        "cluster_accuracy",
        "cluster_objects",
        "clustering ACC",
        "fraction",
        True,
        "clustering",
        {"masks", "classes"},
        _CLUSTER + " (Hungarian: IIC/SCAN, DTI-Sprites Scores)",
    ),
    _m(
        "cluster_accuracy_m2o",
        "cluster_objects_m2o",
        "clustering ACC (many-to-one)",
        "fraction",
        True,
        "clustering",
        {"masks", "classes"},
        _CLUSTER + " (many-to-one: DTI-Sprites Scores with more clusters than classes)",
    ),
]

#: every reported key, in table order
CATALOGUE: dict[str, Metric] = {}


def add(row: Metric) -> Metric:
    """Register a row (a key may be added once; the scorer must then produce it)."""
    if row.key in CATALOGUE:
        raise ValueError(f"metric {row.key!r} is already in the catalogue")
    CATALOGUE[row.key] = row
    return row


for _row in _ROWS:
    add(_row)


def metric(key: str) -> Metric:
    """The row of ``key`` (KeyError naming the catalogue's keys otherwise)."""
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(
            f"metric {key!r} is not in the catalogue (metrics/catalogue.py); known: {sorted(CATALOGUE)}"
        ) from None


def applicable(inputs: Iterable[str]) -> list[Metric]:
    """Rows whose needs ``inputs`` (e.g. ``{"masks", "video", "recon"}``) satisfy, in catalogue order."""
    have = frozenset(inputs)
    unknown = have - INPUTS
    if unknown:
        raise ValueError(f"inputs: unknown {sorted(unknown)}; expected names from {sorted(INPUTS)}")
    return [m for m in CATALOGUE.values() if m.needs <= have]
