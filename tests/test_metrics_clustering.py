"""Clustering accuracy and semantic scores (docs/metrics.md §4, §5, §10)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment

import metrics as M

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def labels(draw, max_n=40, max_classes=4, max_clusters=5):
    n = draw(st.integers(1, max_n))
    t = draw(arrays(np.int64, n, elements=st.integers(0, max_classes - 1)))
    p = draw(arrays(np.int64, n, elements=st.integers(0, max_clusters - 1)))
    return t, p


def brute_acc(t: np.ndarray, p: np.ndarray) -> float:
    """Best one-to-one cluster -> class map by enumerating all injective maps."""
    cls, clu = np.unique(t), np.unique(p)
    best = 0
    targets = list(cls) + [None] * len(clu)  # None: the cluster maps to no class (its points are wrong)
    for perm in itertools.permutations(targets, len(clu)):
        used = [x for x in perm if x is not None]
        if len(used) != len(set(used)):
            continue
        best = max(best, sum(int(((p == k) & (t == c)).sum()) for k, c in zip(clu, perm) if c is not None))
    return best / t.size


# ---------------------------------------------------------------------------------------------
# cluster accuracy (§5)
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(labels(), st.randoms(use_true_random=False))
@example((np.array([0]), np.array([7])), random.Random(0))
@example((np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3])), random.Random(0))  # more clusters than classes
@example((np.array([0, 1, 2, 3]), np.array([0, 0, 0, 0])), random.Random(0))  # fewer clusters than classes
def test_cluster_accuracy_properties(lab, rnd):
    t, p = lab
    h = M.cluster_accuracy(t, p)
    m2o = M.cluster_accuracy(t, p, mapping="many_to_one")
    assert h["acc"] == pytest.approx(brute_acc(t, p), abs=0)
    assert m2o["acc"] >= h["acc"]
    C = np.array([[((p == k) & (t == c)).sum() for c in np.unique(t)] for k in np.unique(p)])
    assert m2o["acc"] == C.max(1).sum() / t.size
    assert h["acc"] >= C.max() / t.size
    assert h["mapping"] == "hungarian" and m2o["mapping"] == "many_to_one"
    # relabelling clusters (sparse, non-contiguous, negative) changes nothing
    perm = np.array(rnd.sample(range(-50, 50), 10))
    assert M.cluster_accuracy(t, perm[p])["acc"] == h["acc"]
    assert M.clustering_accuracy(t, perm[p], mapping="many_to_one")["acc"] == m2o["acc"]
    # the mapping reproduces the accuracy
    mapped = np.array([h["cluster_to_class"].get(int(k), -(10**9)) for k in p])
    assert (mapped == t).mean() == h["acc"]


def test_cluster_accuracy_hand_computed():
    t = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    p = np.array([5, 5, 9, 9, 9, 7, 7, 5])
    # C (cluster x class): 5 -> [2,0,1], 7 -> [0,0,2], 9 -> [1,2,0]; Hungarian 5->0, 9->1, 7->2: 6/8
    r = M.cluster_accuracy(t, p)
    assert r["acc"] == 6 / 8 and r["cluster_to_class"] == {5: 0, 9: 1, 7: 2}
    assert r["macc"] == pytest.approx(np.mean([2 / 3, 2 / 2, 2 / 3]))
    # many-to-one with a split class: clusters 1 and 2 both map to class 0
    r2 = M.cluster_accuracy(np.array([0, 0, 0, 0, 1]), np.array([1, 1, 2, 2, 2]), mapping="many_to_one")
    assert r2["acc"] == 4 / 5 and r2["cluster_to_class"] == {1: 0, 2: 0}
    assert r2["macc"] == pytest.approx((1.0 + 0.0) / 2)


def test_cluster_accuracy_absent_classes_by_mode():
    t, p = np.array([0, 0, 1]), np.array([0, 0, 1])
    assert M.cluster_accuracy(t, p, classes=[0, 1, 2])["macc"] == 1.0  # nanmean: absent class dropped
    assert M.cluster_accuracy(t, p, classes=[0, 1, 2], mode="dti")["macc"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------
# semantic scores (§4)
# ---------------------------------------------------------------------------------------------
def labels_from_hist(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = [], []
    for i, j in itertools.product(range(h.shape[0]), range(h.shape[1])):
        t += [i] * int(h[i, j])
        p += [j] * int(h[i, j])
    return np.array(t), np.array(p)


def test_semantic_scores_hand_computed():
    # classes 0 (bkg), 1, 2; clusters 0, 1, 2. Hungarian maps cluster 2 -> class 1, cluster 1 -> class 2.
    h = np.array([[8, 1, 1], [0, 1, 4], [1, 3, 1]])
    t, p = labels_from_hist(h)
    r = M.semantic_scores(t, p)
    assert r["cluster_to_class"] == {0: 0, 2: 1, 1: 2}
    assert r["global_acc"] == pytest.approx((8 + 4 + 3) / 20)
    assert r["acc_per_class"] == pytest.approx([8 / 10, 4 / 5, 3 / 5])
    # IoU_c = diag / (row + mapped col - diag): bkg 8/(10+9-8), 1: 4/(5+6-4), 2: 3/(5+5-3)
    assert r["iou_per_class"] == pytest.approx([8 / 11, 4 / 7, 3 / 7])
    assert r["macc"] == pytest.approx(np.mean([0.8, 0.8, 0.6]))
    assert r["miou"] == pytest.approx(np.mean([8 / 11, 4 / 7, 3 / 7]))
    # without background: rows/cols 0 dropped before matching -> [[1,4],[3,1]] -> swap
    assert r["global_acc_nobkg"] == pytest.approx(7 / 9)
    assert r["macc_nobkg"] == pytest.approx(np.mean([4 / 5, 3 / 4]))
    assert r["miou_nobkg"] == pytest.approx(np.mean([4 / (5 + 5 - 4), 3 / (4 + 4 - 3)]))


def test_semantic_absent_class_nanmean_vs_dti():
    # class 3 never occurs and no cluster maps to it: undefined for nanmean, 0 for DTI
    h = np.array([[5, 0, 0, 0], [0, 3, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    t, p = labels_from_hist(h)
    a = M.semantic_scores(t, p, num_classes=4, num_clusters=4)
    d = M.semantic_scores(t, p, num_classes=4, num_clusters=4, mode="dti")
    assert a["macc"] == 1.0 and a["miou"] == 1.0
    assert d["macc"] == 0.75 and d["miou"] == 0.75
    assert a["global_acc"] == d["global_acc"] == 1.0


def dti_port(t: np.ndarray, p: np.ndarray, n: int) -> list[float]:
    """monniert/dti-sprites src/utils/metrics.py SegmentationScores.update + compute."""
    cm = np.zeros((n, n))
    cm += np.bincount(n * t.ravel() + p.ravel(), minlength=n**2).reshape(n, n)
    out = []
    for withbkg in (False, True):
        hist = cm[1:, 1:] if not withbkg else cm
        best = linear_sum_assignment(-hist)[1]
        hist = hist[:, best]
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.diag(hist) / hist.sum(axis=1)
            iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
            out += [np.diag(hist).sum() / hist.sum(), np.mean(np.nan_to_num(acc)), np.mean(np.nan_to_num(iu))]
    return out + list(iu)


@SETTINGS
@given(st.integers(2, 6), st.integers(0, 2**31), st.integers(1, 3))
def test_semantic_dti_mode_equals_port(n, seed, nbatch):
    rng = np.random.default_rng(seed)
    ts = [rng.integers(0, n, (2, 1, 4, 4)) for _ in range(nbatch)]
    ps = [np.where(rng.random(t.shape) < 0.6, (t + 1) % n, rng.integers(0, n, t.shape)) for t in ts]
    if n > 2:  # make one class absent now and then
        ts = [np.where(t == n - 1, 0, t) for t in ts]
    acc = M.SemanticAccumulator(num_classes=n, num_clusters=n, mode="dti")
    for t, p in zip(ts, ps):
        acc.update(t, p)
    r = acc.compute()
    ref = dti_port(np.concatenate([t.ravel() for t in ts]), np.concatenate([p.ravel() for p in ps]), n)
    got = [r["global_acc_nobkg"], r["macc_nobkg"], r["miou_nobkg"], r["global_acc"], r["macc"], r["miou"]]
    np.testing.assert_allclose(got, ref[:6], atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(r["iou_per_class"], ref[6:], atol=1e-12, equal_nan=True)
    assert r["version"] == M.VERSIONS["semantic_dti"]


@SETTINGS
@given(labels(max_classes=5, max_clusters=5))
def test_semantic_perfect_and_accumulated(lab):
    t, p = lab
    r = M.semantic_scores(t, t)
    assert r["global_acc"] == r["macc"] == r["miou"] == 1.0
    acc = M.SemanticAccumulator()
    half = len(t) // 2
    if half:
        acc.update(t[:half], p[:half])
    acc.update(torch.from_numpy(t[half:]), torch.from_numpy(p[half:]))
    whole = M.semantic_scores(t, p)
    got = acc.compute()
    for k in ("global_acc", "macc", "miou", "global_acc_nobkg", "macc_nobkg", "miou_nobkg"):
        np.testing.assert_allclose(got[k], whole[k], atol=1e-12, equal_nan=True)
    # many_to_one never does worse than hungarian on global accuracy
    m2o = M.semantic_scores(t, p, mapping="many_to_one")
    assert m2o["global_acc"] >= whole["global_acc"] - 1e-12


def test_semantic_more_clusters_than_classes():
    t = np.array([0, 0, 1, 1, 1, 1])
    p = np.array([0, 0, 1, 1, 2, 2])
    h = M.semantic_scores(t, p)
    assert h["global_acc"] == pytest.approx(4 / 6)  # the leftover cluster's pixels count as wrong
    m = M.semantic_scores(t, p, mapping="many_to_one")
    assert m["global_acc"] == 1.0 and m["cluster_to_class"] == {0: 0, 1: 1, 2: 1}


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: M.cluster_accuracy(np.array([0.5]), np.array([0])), TypeError, "true: expected integer labels"),
        (lambda: M.cluster_accuracy(np.array([0, 1]), np.array([0])), ValueError, "pred: 1 labels do not match"),
        (lambda: M.cluster_accuracy(np.array([], np.int64), np.array([], np.int64)), ValueError, "true: empty"),
        (lambda: M.cluster_accuracy(np.array([0]), np.array([0]), mapping="greedy"), ValueError, "mapping: expected"),
        (lambda: M.cluster_accuracy([0], [0]), TypeError, "true: expected a numpy array"),
        (lambda: M.semantic_scores(np.array([-1]), np.array([0])), ValueError, "true_cls: negative label"),
        (lambda: M.semantic_scores(np.array([0]), np.array([0.0])), TypeError, "pred_clusters: expected integer"),
        (lambda: M.semantic_scores(np.array([3]), np.array([0]), num_classes=2), ValueError, "true_cls: label 3"),
        (lambda: M.semantic_scores(np.array([0]), np.array([0]), mode="mean"), ValueError, "mode: expected"),
        (lambda: M.SemanticAccumulator().compute(), ValueError, "no pixels"),
    ],
)
def test_bad_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
