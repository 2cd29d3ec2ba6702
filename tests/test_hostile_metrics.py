"""Hostile inputs to the metrics (hardening item 10): huge label counts and out-of-range ids.

10^5 distinct labels in both inputs once asked for a 74.5 GiB dense table, and uint64 ids >= 2**63
were reported as "negative id -1". Now a sample's table is counted sparsely when even its
remapped dense form is large (ARI, mBO, mIoU stay exact), dense-only matrices (ClevrTex K x K,
semantic confusion, Hungarian clustering, CLEAR-MOT tables) are refused above
``metrics._checks.MAX_TABLE_CELLS`` with a ValueError stating the limit, and ids beyond int64 are
named as such.
"""

from __future__ import annotations

import re
import tracemalloc
from contextlib import ExitStack
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse import csr_array
from sklearn.metrics import adjusted_rand_score

import metrics as M
import metrics._checks as checks
import metrics.segmentation as seg

SETTINGS = settings(max_examples=30, deadline=None)
LIMIT = "exceeds the limit of"
N_LABELS = 10**5


@st.composite
def id_pair(draw):
    """(true, pred) int64 [B,T,H,W], few labels (so Hungarian blocks with clashing maxima occur),
    some samples with large sparse ids, and a validity mask."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    kt, kp = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    t = draw(arrays(np.int64, shape, elements=st.integers(0, kt - 1)))
    p = draw(arrays(np.int64, shape, elements=st.integers(0, kp - 1)))
    if draw(st.booleans()):  # spread the ids far apart: the remapped path
        p = p * 10**9 + 3
    valid = draw(arrays(np.bool_, shape))
    return t, p, valid


def _forced_sparse(backend: str = "numpy") -> ExitStack:
    """Every sample's table goes through the sparse path (``_SparseTable``)."""
    stack = ExitStack()
    stack.enter_context(mock.patch.object(seg, "_MAX_DENSE_CELLS", 0))
    stack.enter_context(mock.patch.object(seg, "_MAX_REMAPPED_CELLS", 0))
    stack.enter_context(mock.patch.object(checks, "_CPU_BACKEND", backend))
    return stack


EXACT = (M.ari, M.fg_ari, M.ari_frame, M.fg_ari_frame, M.mbo, M.miou_clevrtex, M.miou_clevrtex_fg)


def _all_values(t, p, valid) -> dict:
    out = {f.__name__: f(t, p) for f in EXACT}
    out["miou"] = M.miou(t, p)
    out["miou_bg"] = M.miou(t, p, include_background=True)
    out["ari_valid"] = M.ari(t, p, valid=valid)
    out["fg_ari_skip"] = M.fg_ari(t, p, skip_empty_fg=True)
    several = M.segmentation_metrics(t, p, seg.SEGMENTATION_METRICS)
    out.update({f"several_{k}": v for k, v in several.items()})
    return out


# ---------------------------------------------------------------------------------------------
# the sparse path computes what the dense path computes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@SETTINGS
@given(id_pair())
def test_sparse_path_equals_dense_path(backend, pair):
    t, p, valid = pair
    dense = _all_values(t, p, valid)
    # ClevrTex pads by id, so its value depends on the ids: the reference is the remapped dense table
    with mock.patch.object(seg, "_MAX_DENSE_CELLS", 0):
        remapped = _all_values(t, p, valid)
    dense.update({k: v for k, v in remapped.items() if "clevrtex" in k})
    with _forced_sparse(backend):
        tables = M.contingency(t, p)
        sparse = _all_values(t, p, valid)
    assert all(isinstance(c, csr_array) for c in tables)  # the sparse path really ran
    ref = M.contingency(t, p)
    for c, r in zip(tables, ref):
        assert sorted(c.data.tolist()) == sorted(r[r > 0].tolist())
    for name, v in dense.items():
        if "miou" in name and "clevrtex" not in name:  # Hungarian per connected block: same optimum
            np.testing.assert_allclose(sparse[name], v, rtol=1e-12, atol=1e-12, err_msg=name)
        else:  # the same sums over the non-zero cells: bit for bit
            np.testing.assert_array_equal(sparse[name], v, err_msg=name)


def test_sparse_miou_solves_a_block_whose_row_maxima_clash():
    """Singletons matched 1:1 plus one 2 x 2 block: GT A (3 px) and B (1 px); prediction X covers
    2 px of A and B, Y the last px of A. Both row maxima are X; the optimum pairs A-Y, B-X."""
    n = 1000
    t = np.concatenate([[1, 1, 1, 2], np.arange(3, 3 + n)])
    p = np.concatenate([[7, 7, 8, 7], np.arange(100, 100 + n)])
    t, p = t.reshape(1, 1, 1, -1), p.reshape(1, 1, 1, -1)
    expected = (n + 1 / 3 + 1 / 3) / (n + 2)
    with _forced_sparse():
        got = M.miou(t, p)
    assert got[0] == pytest.approx(expected, abs=1e-12)
    assert M.miou(t, p)[0] == pytest.approx(expected, abs=1e-12)  # the dense path agrees


# ---------------------------------------------------------------------------------------------
# 10^5 labels: no huge table
# ---------------------------------------------------------------------------------------------
def _many_labels(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One 400 x 500 image, ~10^5 distinct ids in both maps, the prediction mostly a relabelling."""
    rng = np.random.default_rng(seed)
    t = rng.permutation(np.arange(2 * 10**5) % N_LABELS)
    p = (t * 7919 + 11) % (N_LABELS + 3)
    noise = rng.random(t.size) < 0.2
    p[noise] = rng.integers(0, N_LABELS, int(noise.sum()))
    return t.reshape(1, 1, 400, 500), p.reshape(1, 1, 400, 500)


def test_many_labels_ari_is_exact_and_memory_stays_small():
    t, p = _many_labels()
    assert len(np.unique(t)) == N_LABELS and len(np.unique(p)) > 0.9 * N_LABELS
    tracemalloc.start()
    try:
        ari, fg = M.ari(t, p), M.fg_ari(t, p)
        frame, mbo, miou = M.ari_frame(t, p), M.mbo(t, p), M.miou(t, p)
        several = M.segmentation_metrics(t, p, ("ari", "fg_ari", "mbo", "miou"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # the dense table would be 74.5 GiB
    ref = adjusted_rand_score(t.ravel(), p.ravel())
    assert 0.3 < ref < 0.99
    np.testing.assert_allclose(ari, [ref], rtol=1e-9)
    np.testing.assert_allclose(frame, ari, rtol=0, atol=0)  # T = 1
    fg_mask = t.ravel() > 0
    np.testing.assert_allclose(fg, [adjusted_rand_score(t.ravel()[fg_mask], p.ravel()[fg_mask])], rtol=1e-9)
    for name, v in (("ari", ari), ("fg_ari", fg), ("mbo", mbo), ("miou", miou)):
        np.testing.assert_array_equal(several[name], v)
    assert 0.5 < miou[0] <= mbo[0] <= 1.0


def test_many_labels_relabelled_prediction_scores_one():
    t, _ = _many_labels(1)
    p = (t * 31 + 5) % (N_LABELS + 1)  # a bijective relabelling
    for f in (M.ari, M.fg_ari, M.mbo, M.miou):
        assert f(t, p)[0] == 1.0, f.__name__
    with _forced_sparse("torch"):
        got = M.ari(torch.from_numpy(t), torch.from_numpy(p))
    assert isinstance(got, torch.Tensor) and got.item() == 1.0


def test_many_labels_dense_only_metrics_refuse_with_the_limit():
    t, p = _many_labels()
    for f in (M.miou_clevrtex, M.miou_clevrtex_fg):
        with pytest.raises(ValueError, match=f"miou_clevrtex: a {N_LABELS} x {N_LABELS} table .*{LIMIT} 33554432"):
            f(t, p)
    with pytest.raises(ValueError, match=f"confusion_matrix: .*{LIMIT}"):
        M.semantic_scores(t, p)
    with pytest.raises(ValueError, match=f"cluster_accuracy: .*{LIMIT}.*many_to_one"):
        M.cluster_accuracy(t, p)
    with pytest.raises(ValueError, match=f"clear_mot: true_videos\\[0\\]: .*{LIMIT}"):
        M.clear_mot(t, p)


def test_miou_refuses_a_connected_block_above_the_limit():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 40, (1, 1, 40, 50))  # independent maps: one block of all masks
    p = rng.integers(0, 40, (1, 1, 40, 50))
    with _forced_sparse(), mock.patch.object(checks, "MAX_TABLE_CELLS", 1000):
        with pytest.raises(ValueError, match=f"miou: a 39 x 40 table .*{LIMIT} 1000 cells.*one connected block"):
            M.miou(t, p)
        assert np.isfinite(M.mbo(t, p)[0]) and np.isfinite(M.ari(t, p)[0])  # these need no matching


# ---------------------------------------------------------------------------------------------
# clustering, semantic and tracking tables
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 60), st.integers(0, 2**31))
def test_sparse_many_to_one_equals_dense(kc, kk, n, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, kc, n) * 1000 - 7  # any labels: np.unique is taken
    p = rng.integers(0, kk, n) + 2**40
    for mode in ("nanmean", "dti"):
        dense = M.cluster_accuracy(t, p, mapping="many_to_one", mode=mode, classes=[5, -7])
        with mock.patch.object(checks, "MAX_TABLE_CELLS", 0):
            sparse = M.cluster_accuracy(t, p, mapping="many_to_one", mode=mode, classes=[5, -7])
            with pytest.raises(ValueError, match=f"cluster_accuracy: .*{LIMIT} 0 cells"):
                M.cluster_accuracy(t, p, mapping="hungarian")
        np.testing.assert_equal(sparse, dense)  # NaN macc (dti: 0) compares equal to NaN
        assert list(sparse["cluster_to_class"]) == list(dense["cluster_to_class"])


def test_many_labels_many_to_one_is_computed():
    t, _ = _many_labels()
    got = M.cluster_accuracy(t, t // 2, mapping="many_to_one")  # each cluster: two classes, one px each
    assert got["acc"] == 0.5 and got["num_clusters"] == N_LABELS // 2
    assert all(c == 2 * k for k, c in got["cluster_to_class"].items())  # ties go to the lowest class


def test_semantic_accumulator_refuses_to_grow_past_the_limit_and_keeps_its_matrix():
    acc = M.SemanticAccumulator()
    acc.update(np.array([N_LABELS - 1, 0]), np.array([0, 1]))
    before = acc.hist.copy()
    with pytest.raises(ValueError, match=f"SemanticAccumulator.update: a {N_LABELS} x {N_LABELS} table .*{LIMIT}"):
        acc.update(np.array([0, 1]), np.array([N_LABELS - 1, 0]))
    np.testing.assert_array_equal(acc.hist, before)
    assert acc.compute()["n"] == 2


def test_tracking_refuses_before_any_video_is_added():
    ok = np.zeros((1, 2, 4, 4), np.int64)
    ok[:, :, :2] = 1
    t, p = _many_labels()
    acc = M.TrackingAccumulator()
    with pytest.raises(ValueError, match=f"clear_mot: true_videos\\[1\\]: a 1 x {N_LABELS} x .*{LIMIT}"):
        acc.update([ok[0], t[0]], [ok[0], p[0]])
    acc.update(ok, ok)
    assert acc.compute()["n"] == 1  # the refused call added nothing
    with mock.patch.object(checks, "MAX_TABLE_CELLS", 64):
        big = np.arange(64).reshape(1, 8, 8)  # table 1 x 64 x 1 fits; boxes 64 ids x 8 rows do not
        with pytest.raises(ValueError, match="geometry='box'.*box histograms"):
            M.clear_mot([big], [np.zeros_like(big)], geometry="box")
    assert M.clear_mot([big], [np.zeros_like(big)], geometry="box")["n"] == 1  # under the real limit


# ---------------------------------------------------------------------------------------------
# ids outside int64
# ---------------------------------------------------------------------------------------------
U64 = st.integers(2**63, 2**64 - 1)
PER_SAMPLE = (M.ari, M.fg_ari, M.ari_frame, M.miou, M.mbo, M.miou_clevrtex, M.segmentation_metrics)


@SETTINGS
@given(U64, st.integers(0, 11), st.booleans(), st.sampled_from(["numpy", "torch-input", "torch-backend"]))
def test_uint64_ids_beyond_int64_are_named(value, pos, on_pred, kind):
    t = np.zeros((1, 1, 3, 4), np.uint64)
    p = np.ones((1, 1, 3, 4), np.uint64)
    (p if on_pred else t).reshape(-1)[pos] = value
    name = "pred_ids" if on_pred else "true_ids"
    with mock.patch.object(checks, "_CPU_BACKEND", "torch" if kind == "torch-backend" else "numpy"):
        x, y = (torch.from_numpy(t), torch.from_numpy(p)) if kind != "numpy" else (t, p)
        for f in PER_SAMPLE:
            with pytest.raises(ValueError, match=f"{name}: id {value} exceeds the int64 range") as e:
                f(x, y)
            assert "negative" not in str(e.value)
    vname = "pred_videos[0]" if on_pred else "true_videos[0]"
    with pytest.raises(ValueError, match=rf"{re.escape(vname)}: id {value} exceeds the int64 range"):
        M.clear_mot(t, p)
    lname = "pred_clusters" if on_pred else "true_cls"
    with pytest.raises(ValueError, match=f"{lname}: label {value} exceeds the int64 range"):
        M.semantic_scores(t, p)


@SETTINGS
@given(st.integers(-(2**63), -1), st.integers(0, 11), st.sampled_from(["numpy", "torch-backend"]))
def test_negative_ids_still_say_negative(value, pos, kind):
    t = np.zeros((1, 1, 3, 4), np.int64)
    t.reshape(-1)[pos] = value
    with mock.patch.object(checks, "_CPU_BACKEND", "torch" if kind == "torch-backend" else "numpy"):
        for f in (M.ari, M.miou, M.mbo):
            with pytest.raises(ValueError, match=f"true_ids: negative id {value}; expected ids >= 0"):
                f(t, np.zeros_like(t))


@pytest.mark.parametrize("dtype", [torch.uint16, torch.uint32, torch.uint64])
def test_wide_unsigned_tensors_work_on_the_torch_backend(dtype, monkeypatch):
    rng = np.random.default_rng(5)
    t, p = rng.integers(0, 5, (3, 2, 6, 7)), rng.integers(0, 6, (3, 2, 6, 7))
    ref = {f.__name__: f(t, p) for f in (M.ari, M.fg_ari, M.miou, M.mbo)}
    monkeypatch.setattr(checks, "_CPU_BACKEND", "torch")
    tt, pp = torch.from_numpy(t).to(dtype), torch.from_numpy(p).to(dtype)
    for f in (M.ari, M.fg_ari, M.miou, M.mbo):
        np.testing.assert_allclose(f(tt, pp).numpy(), ref[f.__name__], atol=1e-12)
    top = np.full((1, 1, 2, 2), 2**63 - 1, np.uint64)  # the largest id that fits: still scored
    top[0, 0, 0] = 0
    assert M.ari(top, top)[0] == 1.0
