"""MSE conventions (docs/metrics.md §7, §10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics as M


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from([1, 3]),
    st.integers(0, 2**31),
)
def test_mse_equals_mse_loss_per_image(B, T, H, W, C, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((B, T, H, W, C))
    y = rng.random((B, T, H, W, C))
    got = M.mse(x, y)
    ref = np.array(
        [
            np.mean([F.mse_loss(torch.from_numpy(x[b, t]), torch.from_numpy(y[b, t])).item() for t in range(T)])
            for b in range(B)
        ]
    )
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)  # float64 in
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    ref32 = np.array(
        [
            np.mean([F.mse_loss(torch.from_numpy(x32[b, t]), torch.from_numpy(y32[b, t])).item() for t in range(T)])
            for b in range(B)
        ]
    )
    np.testing.assert_allclose(M.mse(x32, y32), ref32, rtol=1e-6)
    # sum convention = C·H·W × mean
    np.testing.assert_allclose(M.mse_sum(x, y), got * C * H * W, rtol=1e-12)
    np.testing.assert_allclose(M.mse(x, y, reduction="sum"), M.mse_sum(x, y), rtol=0, atol=0)


def test_mse_uint8_torch_and_accumulator():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 256, (3, 2, 4, 5, 3), dtype=np.uint8)
    r = rng.random(u.shape).astype(np.float32)
    ref = M.mse(u.astype(np.float64) / 255.0, r.astype(np.float64))
    np.testing.assert_allclose(M.mse(u, r), ref, rtol=1e-12)
    got = M.mse(torch.from_numpy(u), torch.from_numpy(r))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    assert M.mse(u, u).tolist() == [0.0, 0.0, 0.0]
    acc = M.MSEAccumulator()
    acc.update(u[:1], r[:1])
    acc.update(u[1:], r[1:])
    res = acc.compute()["mse"]
    assert res["value"] == pytest.approx(ref.mean(), rel=1e-12) and res["n"] == 3 and res["n_skipped"] == 0
    assert res["version"] == M.VERSIONS["mse"]
    assert M.MSEAccumulator("sum").names == ("mse_sum",)


def test_mse_hand_computed():
    x = np.zeros((1, 1, 1, 2, 1))
    y = np.array([0.5, 1.0]).reshape(1, 1, 1, 2, 1)
    assert M.mse(x, y)[0] == (0.25 + 1.0) / 2
    assert M.mse_sum(x, y)[0] == 1.25
    # video: mean of per-frame values
    xv = np.zeros((1, 2, 1, 1, 1))
    yv = np.array([0.0, 1.0]).reshape(1, 2, 1, 1, 1)
    assert M.mse(xv, yv)[0] == 0.5


X = np.zeros((2, 1, 3, 3, 3), np.float32)


@pytest.mark.parametrize(
    "x,y,kw,exc,match",
    [
        (X, X[:1], {}, ValueError, r"y: shape .* does not match x"),
        (X[:, 0], X[:, 0], {}, ValueError, r"x: expected images \[B,T,H,W,C\]"),
        (X[:0], X[:0], {}, ValueError, "x: empty batch"),
        (X.astype(np.int16), X, {}, TypeError, "x: expected uint8 or float"),
        (X, X + 2, {}, ValueError, r"y: values in \[2, 2\]; expected float images in \[0, 1\]"),
        (X, np.full_like(X, np.nan), {}, ValueError, "y: contains NaN"),
        (X, X, {"reduction": "max"}, ValueError, "reduction: expected"),
        (X.tolist(), X, {}, TypeError, "x: expected a numpy array"),
    ],
)
def test_bad_input_errors(x, y, kw, exc, match):
    with pytest.raises(exc, match=match):
        M.mse(x, y, **kw)
