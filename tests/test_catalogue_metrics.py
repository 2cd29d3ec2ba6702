"""Every row of the metric catalogue through one shared tester.

For each key of ``metrics.CATALOGUE`` a :class:`Case` says how to compute the split's value with the
``metrics`` function behind it (``direct``: numpy or torch inputs) and with an independent reference
(``reference``: numpy only). The tester then checks, on one fixed set of five videos that gives every row
its inputs (masks, video, recon, classes):

(a) reference: ``SplitScorer`` (the run's path) == ``direct`` on numpy == ``reference``;
(b) batch split: the set scored in one batch == the set scored in two uneven batches;
(c) device: ``direct`` on torch tensors (CPU; CUDA when there is one) == ``direct`` on numpy.

The references are those the unit tests already trust (``tests/test_metrics_*.py``): scikit-learn's
``adjusted_rand_score``, brute-force mIoU/mBO and cluster accuracy, motmetrics 1.4.0 for CLEAR-MOT, the
port of DTI-Sprites' ``SegmentationScores``, the restatement of the LPIPS formula; MSE and the semantic
scores of ours (absent classes left out of the mean) are computed here by hand and by enumeration.
A catalogue row without a case fails :func:`test_every_row_has_a_case` and every test of its key.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import metrics as M
from benchmark.scoring import SplitScorer, pixel_classes
from metrics.catalogue import CATALOGUE
from tests.test_metrics_clustering import brute_acc, dti_port
from tests.test_metrics_idf1 import mm_overall, trackeval_data
from tests.test_metrics_segmentation import brute_mbo, brute_miou, sk_per_sample
from tests.test_metrics_tracking import oracle as motmetrics_oracle
from tests.test_metrics_tracking import random_video

N, T, S = 5, 3, 16  # five videos of 3 frames, 16x16 (LPIPS-VGG's smallest size)
NUM_CLASSES = 5  # 0 background, objects of classes 1..3, class 4 never shown (absent class)
SPLITS = {"one": [slice(0, N)], "two": [slice(0, 2), slice(2, N)]}


def _object_points(true: np.ndarray, true_cls: np.ndarray, pred_cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One point per GT object of each video: its class, and the predicted class of most of its pixels
    (ties: the lowest class), by plain loops."""
    t, p = [], []
    for b in range(len(true)):
        for k in sorted(set(np.unique(true[b]).tolist()) - {0}):
            on = true[b] == k
            t.append(int(true_cls[b][on][0]))
            p.append(int(np.bincount(pred_cls[b][on]).argmax()))
    return np.array(t), np.array(p)


@functools.lru_cache(maxsize=1)
def dataset() -> dict[str, np.ndarray]:
    """The fixed set: GT ids persisting in time; predictions a relabelling with switches, merges and noise
    (the CLEAR-MOT tests' generator); frames coloured by GT id plus noise; recon = frames plus noise."""
    rng = np.random.default_rng(2026)
    vids = [random_video(rng, T=T, cells=4, cs=S // 4, kt=5, kp=6) for _ in range(N)]
    true = np.stack([v[0] for v in vids]).astype(np.int64)
    pred = np.stack([v[1] for v in vids]).astype(np.int64)
    palette = rng.integers(0, 256, (N, 5, 3))
    video = np.clip(
        palette[np.arange(N)[:, None, None, None], true] + rng.normal(0, 20, true.shape + (3,)), 0, 255
    ).astype(np.uint8)
    x = video.astype(np.float32) / 255.0
    recon = np.clip(x + rng.normal(0, 0.15, x.shape), 0, 1).astype(np.float32)
    lut = np.concatenate([np.zeros((N, 1), np.int64), rng.integers(1, 4, (N, 4))], axis=1)  # id -> class 1..3
    true_cls = np.take_along_axis(lut, true.reshape(N, -1), axis=1).reshape(true.shape)
    seg_cls = rng.integers(0, 4, (N, 6))  # the method's class per predicted id: clusters 0..3
    pred_cls = pixel_classes(seg_cls, pred)
    obj_true, obj_pred = _object_points(true, true_cls, pred_cls)
    d = dict(
        true=true,
        pred=pred,
        video=video,
        x=x,
        recon=recon,
        true_cls=true_cls,
        pred_cls=pred_cls,
        obj_true=obj_true,
        obj_pred=obj_pred,
    )
    for v in d.values():
        v.setflags(write=False)
    return d


@functools.cache
def scored(how: str) -> dict[str, dict]:
    """The catalogue entries ``SplitScorer`` reports for the set, fed in one or two batches."""
    d = dataset()
    sc = SplitScorer("video", T, num_classes=NUM_CLASSES)
    for sl in SPLITS[how]:
        sc.update(
            d["true"][sl],
            d["pred"][sl],
            video=d["video"][sl],
            recon=d["recon"][sl],
            true_cls=d["true_cls"][sl],
            pred_cls=d["pred_cls"][sl],
        )
    return sc.compute()["metrics"]


# ----------------------------------------------------------------------------------------- references


def _value(v: Any) -> float:
    """A per-sample array (numpy or torch) -> its mean over defined samples, as the accumulators report."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    v = np.asarray(v, np.float64).reshape(-1)
    return float(v[~np.isnan(v)].mean())


def _frames(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1, *a.shape[2:])


@functools.lru_cache(maxsize=1)
def _motmetrics() -> dict:
    """motmetrics 1.4.0 on the per-frame (objects, hypotheses, distances) of ``M.frame_inputs``: CLEAR-MOT
    (``test_metrics_tracking.oracle``), identity scores and fragmentations (``test_metrics_idf1.mm_overall``)."""
    d = dataset()
    videos = list(zip(d["true"], d["pred"]))
    out = motmetrics_oracle(videos)
    row = mm_overall(videos).loc["OVERALL"]
    out.update(
        idf1=float(row["idf1"]),
        idp=float(row["idp"]),
        idr=float(row["idr"]),
        num_fragmentations=int(row["num_fragmentations"]),
    )
    return out


@functools.lru_cache(maxsize=1)
def _trackeval_hota() -> dict:
    """TrackEval's HOTA (``eval_sequence`` + ``combine_sequences``) on the IoU tables HOTA matches on
    (``M.frame_inputs(similarity=True)``, the background exclusion of the scorer's defaults included),
    as ``tests/test_metrics_hota.py`` feeds it; mean over the 19 thresholds."""
    te = pytest.importorskip("trackeval")
    d = dataset()
    datas = []
    for g, p in zip(d["true"], d["pred"]):
        frames = M.frame_inputs(g, p, similarity=True)
        datas.append(trackeval_data([f[0] for f in frames], [f[1] for f in frames], [f[2] for f in frames]))
    hota = te.metrics.HOTA()
    h = hota.combine_sequences({str(i): hota.eval_sequence(x) for i, x in enumerate(datas)})
    return {
        k: float(np.mean(h[name]))
        for k, name in (("hota", "HOTA"), ("deta", "DetA"), ("assa", "AssA"), ("loca", "LocA"))
    }


def _brute_semantic(mode: str) -> dict[str, float]:
    """Best one-to-one cluster -> class map by enumeration, then per-class accuracy and IoU from the pixels;
    ``nanmean`` leaves out classes where they are undefined, ``dti`` counts them 0."""
    d = dataset()
    t, p = d["true_cls"].ravel(), d["pred_cls"].ravel()
    nk = int(p.max()) + 1
    hist = np.zeros((NUM_CLASSES, nk), np.int64)
    np.add.at(hist, (t, p), 1)
    best = max(itertools.permutations(range(NUM_CLASSES), nk), key=lambda m: sum(hist[c, k] for k, c in enumerate(m)))
    mapped = np.array(best)[p]
    acc, iou = [], []
    for c in range(NUM_CLASSES):
        inter, gt, union = ((t == c) & (mapped == c)).sum(), (t == c).sum(), ((t == c) | (mapped == c)).sum()
        acc.append(inter / gt if gt else np.nan)
        iou.append(inter / union if union else np.nan)
    mean = np.nanmean if mode == "nanmean" else (lambda a: np.mean(np.nan_to_num(a)))
    return {"acc": float((mapped == t).mean()), "macc": float(mean(acc)), "miou": float(mean(iou))}


def _dti(i: int) -> float:
    d = dataset()
    return float(dti_port(d["true_cls"].ravel(), d["pred_cls"].ravel(), NUM_CLASSES)[i])


def _many_to_one(t: np.ndarray, p: np.ndarray) -> float:
    return sum(np.bincount(t[p == k]).max() for k in np.unique(p)) / t.size


def _lpips_reference(x: np.ndarray, y: np.ndarray) -> float:
    """tests/test_lpips.py's restatement of lpips.LPIPS.forward (v0.1, VGG): taps, normalize_tensor, the
    linear heads as 1x1 convs, spatial average; per frame, then the mean over frames and videos."""
    L = importlib.import_module(M.lpips.__module__)  # the module behind the lazily loaded function
    try:
        m = L.LPIPS("vgg")
    except L.LPIPSWeightsMissing as e:
        pytest.skip(f"LPIPS weights missing: {str(e).splitlines()[0]}")
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(a):
        h = (torch.from_numpy(np.array(_frames(a)[:, 0])).permute(0, 3, 1, 2) * 2 - 1 - shift) / scale
        out = []
        for s, e in [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]:
            h = m.features[s:e](h)
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    with torch.no_grad():
        per_frame = sum(
            F.conv2d((a - b) ** 2, getattr(m, f"lin{k}").view(1, -1, 1, 1)).mean((2, 3)).view(-1)
            for k, (a, b) in enumerate(zip(feats(x), feats(y)))
        )
    return float(per_frame.double().numpy().reshape(N, T).mean(1).mean())


@dataclasses.dataclass(frozen=True)
class Case:
    direct: Callable[[dict], float]  # the metrics function on the whole set (numpy or torch inputs)
    reference: Callable[[dict], float]  # an independent value (numpy inputs)
    tol: float = 1e-12  # scorer vs direct vs reference, numpy vs torch, one vs two batches


def _seg(key: str, ref: Callable[[dict], float]) -> Case:
    return Case(lambda d: _value(getattr(M, key)(d["true"], d["pred"])), ref)


def _track(key: str, ref: Callable[[], float]) -> Case:
    return Case(
        lambda d: float(M.clear_mot(d["true"], d["pred"], hota=True)["summary"][key]),
        lambda d: ref(),
    )


def _semantic(field: str, mode: str, ref: Callable[[], float]) -> Case:
    return Case(
        lambda d: float(M.semantic_scores(d["true_cls"], d["pred_cls"], num_classes=NUM_CLASSES, mode=mode)[field]),
        lambda d: ref(),
    )


def _sq(d: dict) -> np.ndarray:
    return (d["x"].astype(np.float64) - d["recon"].astype(np.float64)) ** 2


_MOTMETRICS = (
    "num_objects",
    "num_matches",
    "num_switches",
    "num_misses",
    "num_false_positives",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_fragmentations",
    "idf1",
    "idp",
    "idr",
)

CASES: dict[str, Case] = {
    "ari": _seg("ari", lambda d: sk_per_sample(d["true"], d["pred"], fg=False).mean()),
    "fg_ari": _seg("fg_ari", lambda d: sk_per_sample(d["true"], d["pred"], fg=True).mean()),
    "ari_frame": _seg(
        "ari_frame",
        lambda d: sk_per_sample(_frames(d["true"]), _frames(d["pred"]), fg=False).reshape(N, T).mean(1).mean(),
    ),
    "fg_ari_frame": _seg(
        "fg_ari_frame",
        lambda d: sk_per_sample(_frames(d["true"]), _frames(d["pred"]), fg=True).reshape(N, T).mean(1).mean(),
    ),
    "miou": _seg("miou", lambda d: np.mean([brute_miou(t, p) for t, p in zip(d["true"], d["pred"])])),
    "mbo": _seg("mbo", lambda d: np.mean([brute_mbo(t, p) for t, p in zip(d["true"], d["pred"])])),
    "mota": _track("mota", lambda: _motmetrics()["mota"]),
    "motp_iou": _track("motp_iou", lambda: 1 - _motmetrics()["motp"]),
    **{k: _track(k, lambda k=k: _motmetrics()[k]) for k in _MOTMETRICS},
    **{k: _track(k, lambda k=k: _trackeval_hota()[k]) for k in ("hota", "deta", "assa", "loca")},
    "mse": Case(lambda d: _value(M.mse(d["x"], d["recon"])), lambda d: _sq(d).mean(axis=(2, 3, 4)).mean(1).mean()),
    "mse_sum": Case(
        lambda d: _value(M.mse_sum(d["x"], d["recon"])), lambda d: _sq(d).sum(axis=(2, 3, 4)).mean(1).mean(), tol=1e-9
    ),
    "lpips_vgg": Case(
        lambda d: _value(M.lpips(d["x"], d["recon"], net="vgg", input_range="[0,1]")),
        lambda d: _lpips_reference(d["x"], d["recon"]),
        tol=1e-6,  # float32 convolutions: batch composition and device change the last bits
    ),
    "semantic_acc": _semantic("global_acc", "nanmean", lambda: _brute_semantic("nanmean")["acc"]),
    "semantic_macc": _semantic("macc", "nanmean", lambda: _brute_semantic("nanmean")["macc"]),
    "semantic_miou": _semantic("miou", "nanmean", lambda: _brute_semantic("nanmean")["miou"]),
    "semantic_macc_dti": _semantic("macc", "dti", lambda: _dti(4)),
    "semantic_miou_dti": _semantic("miou", "dti", lambda: _dti(5)),
    "cluster_accuracy": Case(
        lambda d: M.cluster_accuracy(d["obj_true"], d["obj_pred"], mapping="hungarian")["acc"],
        lambda d: brute_acc(d["obj_true"], d["obj_pred"]),
    ),
    "cluster_accuracy_m2o": Case(
        lambda d: M.cluster_accuracy(d["obj_true"], d["obj_pred"], mapping="many_to_one")["acc"],
        lambda d: _many_to_one(d["obj_true"], d["obj_pred"]),
    ),
}

KEYS = list(CATALOGUE)
DEVICES = [
    pytest.param("cpu"),
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def _case(key: str) -> Case:
    case = CASES.get(key)
    if case is None:
        pytest.fail(
            f"catalogue row {key!r} has no tester case: add a Case (its metrics function and an independent "
            f"reference) to CASES in tests/test_catalogue_metrics.py"
        )
    return case


def _close(got: float, want: float, tol: float) -> bool:
    return math.isclose(got, want, rel_tol=tol, abs_tol=tol)


# ------------------------------------------------------------------------------------------- the tests


def test_every_row_has_a_case():
    assert set(CATALOGUE) - set(CASES) == set(), "catalogue rows without a tester case"
    assert set(CASES) - set(CATALOGUE) == set(), "tester cases for keys the catalogue no longer has"


def test_the_set_exercises_every_row():
    """The set gives every row its inputs, and the cases where conventions part are present in it."""
    d = dataset()
    assert set(scored("one")) == set(CATALOGUE)
    assert (d["true"] > 0).reshape(N * T, -1).any(1).all()  # every frame has GT objects (FG-ARI defined)
    assert not (d["true_cls"] == NUM_CLASSES - 1).any() and not (d["pred_cls"] == NUM_CLASSES - 1).any()
    one = scored("one")
    assert one["semantic_macc"]["value"] != one["semantic_macc_dti"]["value"]  # the absent class counts only in DTI
    assert one["cluster_accuracy"]["value"] <= one["cluster_accuracy_m2o"]["value"]
    assert 0 < _motmetrics()["num_switches"] and 0 < _motmetrics()["num_false_positives"]


@pytest.mark.parametrize("key", KEYS)
def test_reference(key):
    """The scorer's value == the metrics function's == an independent reference."""
    case = _case(key)
    e = scored("one")[key]
    if e["value"] is None:
        pytest.skip(f"{key}: {e['status']}: {e.get('error')}")
    d = dataset()
    direct = case.direct(d)
    assert _close(e["value"], direct, case.tol), (e["value"], direct)
    ref = float(case.reference(d))
    assert _close(direct, ref, case.tol), (direct, ref)


@pytest.mark.parametrize("key", KEYS)
def test_batch_split_invariance(key):
    """Scoring the set in one batch or in two (2 + 3 videos) through the streaming scorer gives the same entry."""
    case = _case(key)
    one, two = scored("one")[key], scored("two")[key]
    assert set(one) == set(two)
    for f, v in one.items():
        if f in ("value", "std") and v is not None and two[f] is not None:
            assert _close(two[f], v, case.tol) or (math.isnan(v) and math.isnan(two[f])), (f, v, two[f])
        else:
            assert two[f] == v, (f, v, two[f])
    assert {f: one[f] for f in CATALOGUE[key].identity()} == CATALOGUE[key].identity()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("key", KEYS)
def test_device(key, device):
    """The metrics function on torch tensors (on ``device``) equals it on numpy arrays."""
    case = _case(key)
    d = dataset()
    if key.startswith("lpips") and scored("one")[key]["value"] is None:
        pytest.skip(f"{key}: {scored('one')[key]['status']}")
    on = {k: torch.from_numpy(np.array(v)).to(device) for k, v in d.items()}
    got, want = case.direct(on), case.direct(d)
    assert _close(float(got), float(want), case.tol), (got, want)
