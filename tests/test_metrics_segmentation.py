"""ARI / FG-ARI / mIoU / mBO against scikit-learn, brute force and a ClevrTex port (docs/metrics.md §1-§3, §10)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

import metrics as M
import metrics._checks as checks

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def id_pair(draw, max_b=3, max_t=3, max_hw=6, max_k=6):
    """(true, pred) int64 [B,T,H,W] with small shapes and label counts (§10)."""
    shape = (
        draw(st.integers(1, max_b)),
        draw(st.integers(1, max_t)),
        draw(st.integers(1, max_hw)),
        draw(st.integers(1, max_hw)),
    )
    kt = draw(st.integers(1, max_k))
    kp = draw(st.integers(1, max_k))
    t = draw(arrays(np.int64, shape, elements=st.integers(0, kt - 1)))
    p = draw(arrays(np.int64, shape, elements=st.integers(0, kp - 1)))
    return t, p


def img(*rows) -> np.ndarray:
    """One image [1,1,1,N] from a flat label list."""
    return np.asarray(rows, dtype=np.int64).reshape(1, 1, 1, -1)


# degenerate cases of the §1 table, as (true, pred) single images
ONE = img(3)
SINGLE = img(0, 0, 0, 0)
SINGLETONS = img(0, 1, 2, 3)
CASE_22 = img(*[1] * 22)
CASE_22_CHANGED = img(*([1] * 21 + [2]))


def sk_per_sample(t: np.ndarray, p: np.ndarray, fg: bool) -> np.ndarray:
    out = []
    for b in range(t.shape[0]):
        tt, pp = t[b].ravel(), p[b].ravel()
        if fg:
            tt, pp = tt[t[b].ravel() > 0], pp[t[b].ravel() > 0]
        out.append(adjusted_rand_score(tt, pp))
    return np.asarray(out)


# ---------------------------------------------------------------------------------------------
# ARI
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "t,p,expected",
    [
        (ONE, ONE, 1.0),  # N = 1
        (SINGLE, img(5, 5, 5, 5), 1.0),  # both a single cluster
        (SINGLETONS, img(4, 3, 2, 1), 1.0),  # both all-singletons
        (SINGLE, SINGLETONS, 0.0),  # single cluster vs all-singletons
        (SINGLE, img(0, 0, 1, 1), 0.0),  # one true cluster vs two predicted
        (CASE_22, CASE_22_CHANGED, 0.0),  # scikit-learn #12940
        (img(0, 0, 1, 1), img(0, 1, 0, 1), -0.5),  # the minimum
    ],
)
def test_ari_degenerate_table(t, p, expected):
    assert M.ari(t, p)[0] == pytest.approx(expected, abs=1e-12)
    assert adjusted_rand_score(t.ravel(), p.ravel()) == pytest.approx(expected, abs=1e-12)


def test_fg_ari_without_foreground_is_one_or_skipped():
    t = np.zeros((2, 1, 3, 3), np.int64)
    t[1, 0, 0, :2] = 1
    p = np.arange(18).reshape(2, 1, 3, 3)
    assert M.fg_ari(t, p)[0] == 1.0  # sklearn on an empty subset
    v = M.fg_ari(t, p, skip_empty_fg=True)
    assert np.isnan(v[0]) and not np.isnan(v[1])
    s = M.summarize(v)
    assert s["n"] == 1 and s["n_skipped"] == 1 and s["value"] == v[1]


@SETTINGS
@given(id_pair())
@example((ONE, ONE))
@example((SINGLE, img(5, 5, 5, 5)))
@example((SINGLETONS, img(4, 3, 2, 1)))
@example((SINGLE, SINGLETONS))
@example((CASE_22, CASE_22_CHANGED))
@example((img(0, 0, 1, 1), img(0, 1, 0, 1)))
@example((np.zeros((1, 1, 2, 2), np.int64), np.arange(4).reshape(1, 1, 2, 2)))  # no GT foreground
def test_ari_and_fg_ari_equal_sklearn(pair):
    t, p = pair
    np.testing.assert_allclose(M.ari(t, p), sk_per_sample(t, p, fg=False), atol=1e-9, rtol=0)
    np.testing.assert_allclose(M.fg_ari(t, p), sk_per_sample(t, p, fg=True), atol=1e-9, rtol=0)
    np.testing.assert_allclose(M.ari(t, p, ignore_background=True), M.fg_ari(t, p), atol=0, rtol=0)


@SETTINGS
@given(id_pair(), st.randoms(use_true_random=False))
def test_ari_properties(pair, rnd):
    t, p = pair
    a = M.ari(t, p)
    assert a.dtype == np.float64 and a.shape == (t.shape[0],)
    assert np.all(a >= -0.5 - 1e-12) and np.all(a <= 1 + 1e-12)
    # symmetric when counting all pixels; identical partitions give 1
    np.testing.assert_allclose(M.ari(p, t), a, atol=1e-12)
    np.testing.assert_array_equal(M.ari(t, t), 1.0)
    np.testing.assert_array_equal(M.fg_ari(t, t), 1.0)
    # invariant to relabelling either side (GT: background stays 0 for FG-ARI)
    perm_p = np.array(rnd.sample(range(50), 10))
    perm_t = np.array([0] + rnd.sample(range(1, 50), 9))
    np.testing.assert_allclose(M.ari(perm_t[t], perm_p[p]), a, atol=1e-12)
    np.testing.assert_allclose(M.fg_ari(perm_t[t], perm_p[p]), M.fg_ari(t, p), atol=1e-12)
    # batch entries are independent
    for b in range(t.shape[0]):
        assert M.ari(t[b : b + 1], p[b : b + 1])[0] == pytest.approx(a[b], abs=1e-15)


@SETTINGS
@given(id_pair(), st.integers(0, 2**31))
def test_fg_ari_ignores_predictions_on_gt_background(pair, seed):
    t, p = pair
    q = p.copy()
    bg = t == 0
    q[bg] = np.random.default_rng(seed).integers(0, 9, int(bg.sum()))
    np.testing.assert_array_equal(M.fg_ari(t, q), M.fg_ari(t, p))


@SETTINGS
@given(id_pair(max_t=3))
def test_video_ari_is_ari_of_frames_concatenated(pair):
    t, p = pair
    B, T, H, W = t.shape
    tc = t.reshape(B, 1, T * H, W)  # frames stacked along H
    pc = p.reshape(B, 1, T * H, W)
    np.testing.assert_allclose(M.ari(t, p), M.ari(tc, pc), atol=1e-12)
    np.testing.assert_allclose(M.fg_ari(t, p), M.fg_ari(tc, pc), atol=1e-12)


@SETTINGS
@given(id_pair(max_t=3))
def test_frame_variants_are_means_of_per_frame_values(pair):
    t, p = pair
    B, T = t.shape[:2]
    ref = np.array([[adjusted_rand_score(t[b, i].ravel(), p[b, i].ravel()) for i in range(T)] for b in range(B)])
    np.testing.assert_allclose(M.ari_frame(t, p), ref.mean(1), atol=1e-9)
    ref_fg = np.array(
        [[adjusted_rand_score(t[b, i][t[b, i] > 0], p[b, i][t[b, i] > 0]) for i in range(T)] for b in range(B)]
    )
    np.testing.assert_allclose(M.fg_ari_frame(t, p), ref_fg.mean(1), atol=1e-9)
    # skip_empty_fg leaves frames without foreground out of the mean
    has = (t.reshape(B, T, -1) > 0).any(2)
    got = M.fg_ari_frame(t, p, skip_empty_fg=True)
    for b in range(B):
        if has[b].any():
            assert got[b] == pytest.approx(ref_fg[b][has[b]].mean(), abs=1e-9)
        else:
            assert np.isnan(got[b])


@SETTINGS
@given(id_pair(), st.integers(0, 2**31))
def test_soft_masks_argmax_path_equals_id_path(pair, seed):
    t, p = pair
    rng = np.random.default_rng(seed)
    K = int(p.max()) + 2
    soft = rng.random((p.shape[0], p.shape[1], K) + p.shape[2:]).astype(np.float32)
    ids = soft.argmax(2)
    np.testing.assert_array_equal(M.ari(t, soft), M.ari(t, ids))
    np.testing.assert_array_equal(M.miou(t, torch.from_numpy(soft)).numpy(), M.miou(t, ids))


def test_soft_mask_ties_go_to_lowest_index():
    soft = np.zeros((1, 1, 3, 1, 2), np.float32)
    soft[0, 0, 1, 0, 1] = 1.0  # pixel 0: all tie -> slot 0; pixel 1 -> slot 1
    t = img(0, 1)
    assert M.ari(t, soft)[0] == 1.0
    soft[0, 0, :, 0, 1] = 0.0  # now both pixels tie -> both slot 0
    assert M.ari(t, soft)[0] == 0.0


@SETTINGS
@given(id_pair(), st.integers(0, 2**31))
def test_valid_mask_counts_only_valid_points(pair, seed):
    t, p = pair
    valid = np.random.default_rng(seed).random(t.shape) < 0.7
    ref = [adjusted_rand_score(t[b][valid[b]], p[b][valid[b]]) for b in range(t.shape[0])]
    np.testing.assert_allclose(M.ari(t, p, valid=valid), ref, atol=1e-9)


def test_large_ids_are_remapped_exactly():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 4, (2, 2, 5, 5))
    p = rng.integers(0, 5, (2, 2, 5, 5))
    big_t = np.array([0, 10**6, 7, 3 * 10**5])[t]
    big_p = np.array([9 * 10**8, 1, 2, 5 * 10**7, 4])[p]
    for f in (M.ari, M.fg_ari, M.miou, M.mbo):
        np.testing.assert_allclose(f(big_t, big_p), f(t, p), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint64])
def test_id_dtypes_agree(dtype):
    rng = np.random.default_rng(2)
    t, p = rng.integers(0, 5, (5, 2, 6, 7)), rng.integers(0, 6, (5, 2, 6, 7))
    for f in (M.ari, M.fg_ari, M.miou, M.mbo):
        np.testing.assert_array_equal(f(t.astype(dtype), p.astype(dtype)), f(t, p))
    np.testing.assert_array_equal(M.ari(t > 0, p), M.ari((t > 0).astype(np.int64), p))  # bool ids


@pytest.mark.parametrize("threads", [1, 2])
def test_chunks_groups_and_threads_do_not_change_values(monkeypatch, threads):
    import metrics.segmentation as seg

    rng = np.random.default_rng(9)
    t, p = rng.integers(0, 6, (40, 2, 5, 5)), rng.integers(0, 7, (40, 2, 5, 5))
    t[13] = 0  # a sample without foreground inside a chunk
    ref = {f.__name__: f(t, p) for f in (M.ari, M.fg_ari, M.miou, M.mbo, M.miou_clevrtex)}
    monkeypatch.setattr(seg, "_CHUNK_PIXELS", 100)  # 2 samples per chunk
    monkeypatch.setattr(seg, "_GROUP_SAMPLES", 6)
    monkeypatch.setattr(seg, "_workers", lambda: threads)
    for f in (M.ari, M.fg_ari, M.miou, M.mbo, M.miou_clevrtex):
        np.testing.assert_array_equal(f(t, p), ref[f.__name__])
    t[31, 1, 2, 2] = -3  # an error raised in a worker thread reaches the caller
    with pytest.raises(ValueError, match="true_ids: negative id -3"):
        M.ari(t, p)


@pytest.mark.parametrize("kind", ["numpy", "torch-input", "torch-backend"])
def test_backends_agree(kind, monkeypatch):
    rng = np.random.default_rng(7)
    t = rng.integers(0, 5, (4, 2, 7, 6))
    p = rng.integers(0, 6, (4, 2, 7, 6))
    valid = rng.random(t.shape) < 0.8
    ref = {f.__name__: f(t, p) for f in (M.ari, M.fg_ari, M.miou, M.mbo, M.miou_clevrtex, M.fg_ari_frame)}
    ref["valid"] = M.ari(t, p, valid=valid)
    if kind == "torch-backend":  # the accelerator code path, exercised on the CPU
        monkeypatch.setattr(checks, "_CPU_BACKEND", "torch")
    tt, pp, vv = (torch.from_numpy(x) for x in (t, p, valid)) if kind != "numpy" else (t, p, valid)
    for f in (M.ari, M.fg_ari, M.miou, M.mbo, M.miou_clevrtex, M.fg_ari_frame):
        got = f(tt, pp)
        if kind != "numpy":
            assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.device == tt.device
            got = got.numpy()
        np.testing.assert_allclose(got, ref[f.__name__], atol=1e-12)
    got = M.ari(tt, pp, valid=vv)
    np.testing.assert_allclose(np.asarray(got), ref["valid"], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# mIoU / mBO
# ---------------------------------------------------------------------------------------------
def _masks(t: np.ndarray, p: np.ndarray, include_background: bool):
    g = [t == k for k in np.unique(t) if (k > 0 or include_background)]
    q = [p == k for k in np.unique(p)]
    iou = np.array([[(a & b).sum() / (a | b).sum() for b in q] for a in g]).reshape(len(g), len(q))
    return iou


def brute_miou(t: np.ndarray, p: np.ndarray, include_background: bool = False) -> float:
    iou = _masks(t, p, include_background)
    k, c = iou.shape
    if k == 0:
        return np.nan
    best = 0.0
    cols = list(range(c)) + [None] * k  # None = GT left unmatched (scores 0)
    for perm in itertools.permutations(cols, k):
        if any(x is not None and perm.count(x) > 1 for x in perm):
            continue
        best = max(best, sum(iou[i, j] for i, j in enumerate(perm) if j is not None))
    return best / k


def brute_mbo(t: np.ndarray, p: np.ndarray) -> float:
    iou = _masks(t, p, False)
    return iou.max(1).mean() if iou.shape[0] else np.nan


@SETTINGS
@given(id_pair(max_b=2, max_t=2, max_hw=5, max_k=5))
@example((np.zeros((1, 1, 2, 2), np.int64), np.zeros((1, 1, 2, 2), np.int64)))  # no GT object: skipped
@example((img(1, 1, 2, 2, 3), img(0, 0, 0, 0, 0)))  # more GT than predicted masks
def test_miou_and_mbo_equal_brute_force(pair):
    t, p = pair
    mi, mb, mbg = M.miou(t, p), M.mbo(t, p), M.miou(t, p, include_background=True)
    for b in range(t.shape[0]):
        np.testing.assert_allclose(mi[b], brute_miou(t[b], p[b]), atol=1e-12)
        np.testing.assert_allclose(mbg[b], brute_miou(t[b], p[b], True), atol=1e-12)
        np.testing.assert_allclose(mb[b], brute_mbo(t[b], p[b]), atol=1e-12)
    ok = ~np.isnan(mi)
    np.testing.assert_array_equal(ok, (t.reshape(t.shape[0], -1) > 0).any(1))
    assert np.all(mb[ok] >= mi[ok] - 1e-12)
    assert np.all((mi[ok] >= 0) & (mi[ok] <= 1) & (mb[ok] <= 1))


@SETTINGS
@given(id_pair(), st.randoms(use_true_random=False))
def test_miou_invariances(pair, rnd):
    t, p = pair
    mi = M.miou(t, p)
    perm = np.array(rnd.sample(range(100), 10))  # sparse relabelling: empty slots in between
    np.testing.assert_allclose(M.miou(t, perm[p]), mi, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(M.mbo(t, perm[p]), M.mbo(t, p), atol=1e-12, equal_nan=True)
    perfect = M.miou(t, t)
    has_fg = (t.reshape(t.shape[0], -1) > 0).any(1)
    np.testing.assert_array_equal(perfect[has_fg], 1.0)  # exactly 1 (no epsilon, §9 SlotFormer #7)
    assert np.isnan(perfect[~has_fg]).all()


def test_miou_hand_computed():
    t = img(1, 1, 1, 1, 2, 2, 0, 0)
    p = img(5, 5, 5, 0, 0, 0, 0, 0)
    # GT1 vs pred5: 3/4; GT2 vs pred0: 2/5; GT1 vs pred0: 1/8 -> Hungarian 3/4 + 2/5
    assert M.miou(t, p)[0] == pytest.approx((0.75 + 0.4) / 2, abs=1e-15)
    assert M.mbo(t, p)[0] == pytest.approx((0.75 + 0.4) / 2, abs=1e-15)
    # mBO lets one prediction serve both GT masks, Hungarian does not
    p2 = img(5, 5, 5, 5, 5, 5, 0, 0)
    assert M.mbo(t, p2)[0] == pytest.approx((4 / 6 + 2 / 6) / 2)
    assert M.miou(t, p2)[0] == pytest.approx((4 / 6 + 0) / 2)
    # include_background: GT 0 is an object too (SlotDiffusion)
    assert M.miou(t, p, include_background=True)[0] == pytest.approx((0.75 + 2 / 5 + 0) / 3)


# ---------------------------------------------------------------------------------------------
# miou_clevrtex: a port of CLEVRTEX_Evaluator.update (batch of one sample)
# ---------------------------------------------------------------------------------------------
def clevrtex_port(t: np.ndarray, p: np.ndarray, kp: int) -> tuple[float, float]:
    """karazijal/clevrtex ool/clevrtex_eval.py: one-hot masks, pad to K, float32 IoU, LSA on iou.T."""
    tf, pf = t.ravel(), p.ravel()
    kt = max(int(tf.max()) + 1, kp)
    K = max(kt, kp)
    pm = np.stack([pf == k for k in range(K)])
    tm = np.stack([tf == k for k in range(K)])
    iou = np.zeros((K, K), np.float32)  # [pred, true]
    for pi in range(K):
        inter = (pm[pi] & tm).sum(1).astype(np.float32)
        union = (pm[pi] | tm).sum(1).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou[pi] = inter / union
        if pm[pi].sum() == 0:
            iou[pi] = 0
    iou[:, tm.sum(1) == 0] = 0
    iou = np.nan_to_num(iou)
    true_ind, pred_ind = linear_sum_assignment(iou.T, maximize=True)
    ious = iou.T[true_ind, pred_ind].astype(np.float64)
    num_pairs = (tm.any(1) | pm[pred_ind].any(1)).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return ious.sum() / num_pairs, ious[1:].sum() / np.float64(num_pairs - 1)


@SETTINGS
@given(id_pair(max_b=2, max_t=1, max_hw=6, max_k=6))
def test_miou_clevrtex_equals_port(pair):
    t, p = pair
    got, got_fg = M.miou_clevrtex(t, p), M.miou_clevrtex_fg(t, p)
    for b in range(t.shape[0]):
        ref, ref_fg = clevrtex_port(t[b], p[b], int(p[b].max()) + 1)
        np.testing.assert_allclose(got[b], ref, atol=1e-6)
        if np.isfinite(ref_fg):
            np.testing.assert_allclose(got_fg[b], ref_fg, atol=1e-6)
        else:
            assert np.isnan(got_fg[b])  # 0/0 in the reference: reported as skipped


def test_miou_clevrtex_soft_masks_use_all_k_channels():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, (1, 1, 6, 6))
    soft = rng.random((1, 1, 7, 6, 6))
    soft[:, :, 4:] = -1.0  # slots 4..6 never win but still are channels of the stack
    ref, _ = clevrtex_port(t[0], soft.argmax(2)[0], 7)
    assert M.miou_clevrtex(t, soft)[0] == pytest.approx(ref, abs=1e-6)


def test_miou_clevrtex_hand_computed():
    # GT: bg(0) 4 px, obj1 2 px, obj2 2 px. Pred: 0 on bg, 1 on obj1 + obj2 (one merged segment).
    t = img(0, 0, 0, 0, 1, 1, 2, 2)
    p = img(0, 0, 0, 0, 1, 1, 1, 1)
    # pairs: bg-0 IoU 1, obj1-1 IoU 2/4 (or obj2), the other object unmatched: 3 pairs
    assert M.miou_clevrtex(t, p)[0] == pytest.approx((1 + 0.5 + 0) / 3)
    assert M.miou_clevrtex_fg(t, p)[0] == pytest.approx(0.5 / 2)
    # an extra non-empty prediction with no GT adds a pair (unlike the default mIoU)
    p3 = img(0, 0, 0, 3, 1, 1, 2, 2)
    assert M.miou_clevrtex(t, p3)[0] == pytest.approx((0.75 + 1 + 1 + 0) / 4)
    assert M.miou(t, p3)[0] == 1.0


# ---------------------------------------------------------------------------------------------
# accumulator, summarize, versions
# ---------------------------------------------------------------------------------------------
def test_segmentation_accumulator_matches_functions():
    rng = np.random.default_rng(11)
    names = (
        "ari",
        "fg_ari",
        "ari_frame",
        "fg_ari_frame",
        "miou",
        "miou_bg",
        "mbo",
        "miou_clevrtex",
        "miou_clevrtex_fg",
    )
    acc = M.SegmentationAccumulator(names)
    batches = [(rng.integers(0, 4, (3, 2, 5, 5)), rng.integers(0, 5, (3, 2, 5, 5))) for _ in range(3)]
    batches.append((np.zeros((1, 2, 5, 5), np.int64), rng.integers(0, 5, (1, 2, 5, 5))))  # no foreground
    for t, p in batches:
        acc.update(t, p)
    res = acc.compute()
    fns = {
        "ari": M.ari,
        "fg_ari": M.fg_ari,
        "ari_frame": M.ari_frame,
        "fg_ari_frame": M.fg_ari_frame,
        "miou": M.miou,
        "miou_bg": lambda t, p: M.miou(t, p, include_background=True),
        "mbo": M.mbo,
        "miou_clevrtex": M.miou_clevrtex,
        "miou_clevrtex_fg": M.miou_clevrtex_fg,
    }
    for name in names:
        vals = np.concatenate([fns[name](t, p) for t, p in batches])
        np.testing.assert_allclose(acc.values(name), vals, atol=1e-15, equal_nan=True)
        ok = ~np.isnan(vals)
        assert res[name]["n"] == ok.sum() and res[name]["n_skipped"] == (~ok).sum()
        assert res[name]["value"] == pytest.approx(vals[ok].mean())
        assert res[name]["std"] == pytest.approx(vals[ok].std(ddof=1))
        assert res[name]["version"] == M.VERSIONS[name]
    assert res["miou"]["n_skipped"] == 1 and res["mbo"]["n_skipped"] == 1


def test_summarize_reports_undefined_explicitly():
    s = M.summarize(np.array([np.nan, np.nan]))
    assert s["n"] == 0 and s["n_skipped"] == 2 and np.isnan(s["value"]) and s["status"] == "no_valid_samples"
    s = M.summarize(torch.tensor([0.5, np.nan, 1.0], dtype=torch.float64), "v")
    assert s == {
        "value": 0.75,
        "std": pytest.approx(np.std([0.5, 1.0], ddof=1)),
        "n": 2,
        "n_skipped": 1,
        "status": "ok",
        "version": "v",
    }


def test_every_metric_has_a_version():
    for name in (
        "ari",
        "fg_ari",
        "ari_frame",
        "fg_ari_frame",
        "miou",
        "miou_bg",
        "miou_clevrtex",
        "miou_clevrtex_fg",
        "mbo",
        "semantic",
        "semantic_dti",
        "cluster_accuracy",
        "mot",
        "mot_ocrb",
        "mota",
        "mse",
        "mse_sum",
    ):
        v = M.version(name)
        assert isinstance(v, str) and "/" in v and v == M.VERSIONS[name]
    with pytest.raises(KeyError, match="unknown metric"):
        M.version("nope")


def test_import_does_not_load_lpips():
    code = "import sys, metrics; assert 'metrics.perceptual' not in sys.modules; print(callable(metrics.ari))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
GOOD = np.zeros((2, 1, 3, 3), np.int64)


@pytest.mark.parametrize("fn", [M.ari, M.fg_ari, M.ari_frame, M.miou, M.mbo, M.miou_clevrtex])
@pytest.mark.parametrize(
    "t,p,exc,match",
    [
        (GOOD, GOOD.astype(np.float32), TypeError, "pred_ids.*float ids"),
        (GOOD.astype(np.float64), GOOD, TypeError, "true_ids.*float ids"),
        (GOOD, GOOD[:1], ValueError, r"pred_ids.*does not match.*\[B,T,H,W\]"),
        (GOOD - 1, GOOD, ValueError, "true_ids: negative id -1"),
        (GOOD, GOOD - 2, ValueError, "pred_ids: negative id -2"),
        (GOOD[:0], GOOD[:0], ValueError, "true_ids: empty batch"),
        (GOOD[:, 0], GOOD[:, 0], ValueError, r"true_ids: expected integer ids \[B,T,H,W\]"),
        (GOOD, np.full((2, 1, 4, 3, 3), np.nan, np.float32), ValueError, "pred_ids: soft masks.*NaN"),
        (GOOD.tolist(), GOOD, TypeError, "true_ids: expected a numpy array or a torch tensor"),
        (GOOD.astype(np.complex64), GOOD, TypeError, "true_ids"),
    ],
)
def test_bad_input_errors(fn, t, p, exc, match):
    with pytest.raises(exc, match=match):
        fn(t, p)


def test_bad_valid_and_options():
    with pytest.raises(TypeError, match="valid: expected a boolean"):
        M.ari(GOOD, GOOD, valid=np.ones(GOOD.shape, np.int64))
    with pytest.raises(ValueError, match="valid: shape"):
        M.ari(GOOD, GOOD, valid=np.ones((2, 1, 3, 2), bool))
    with pytest.raises(ValueError, match="metrics: unknown"):
        M.SegmentationAccumulator(("ari", "nope"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_inputs_on_different_devices():
    with pytest.raises(ValueError, match="different devices"):
        M.ari(torch.zeros((1, 1, 2, 2), dtype=torch.long), torch.zeros((1, 1, 2, 2), dtype=torch.long, device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_stay_on_device():
    rng = np.random.default_rng(5)
    t, p = rng.integers(0, 5, (3, 2, 8, 8)), rng.integers(0, 6, (3, 2, 8, 8))
    for f in (M.ari, M.fg_ari, M.miou, M.mbo, M.fg_ari_frame):
        got = f(torch.from_numpy(t).cuda(), torch.from_numpy(p).cuda())
        assert got.is_cuda and got.dtype == torch.float64
        np.testing.assert_allclose(got.cpu().numpy(), f(t, p), atol=1e-12)
