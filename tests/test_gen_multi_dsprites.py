"""Multi-dSprites generator: geometry, occlusion, stored-split invariants, determinism (datasets.md §5)."""

from __future__ import annotations

import colorsys
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import generators
from generators import core
from generators.multi_dsprites import heart_polygon, hsv_to_rgb, render, render_multi_dsprites
from tests._split_checks import assert_rows_regenerate

NAME = "multi_dsprites"
VARIANTS = ("colored_on_grayscale", "binarized")


def draw(shape, scale=1.0, orientation=0.0, x=0.5, y=0.5, color=(255, 255, 255), background=(0, 0, 0)):
    """Render one image of one or more sprites given as scalars or per-sprite lists."""
    shape = np.atleast_1d(shape)
    k = len(shape)
    lat = [np.broadcast_to(np.asarray(v, float), (k,))[None] for v in (scale, orientation, x, y)]
    col = np.broadcast_to(np.asarray(color, np.uint8), (k, len(background)))[None]
    img, msk = render_multi_dsprites(shape[None], *lat, col, np.asarray(background, np.uint8)[None])
    return img[0], msk[0]


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mds")
    for v in VARIANTS:
        generators.generate(NAME, variant=v, profile="smoke", root=root)
    return root


def test_square_exact_pixels():
    """Scale 1 = 20 px side; centre 16 + 32*pos; pixel centres inside the square."""
    _, m = draw(1)
    expect = np.zeros((64, 64), bool)
    expect[22:42, 22:42] = True  # centre (32, 32): edges at 22 and 42
    np.testing.assert_array_equal(m == 1, expect)
    _, m = draw(1, scale=0.5, x=0.0, y=1.0)  # 10 px square centred at column 16, row 48
    expect = np.zeros((64, 64), bool)
    expect[43:53, 11:21] = True
    np.testing.assert_array_equal(m == 1, expect)


def test_ellipse_axes_and_rotation_direction():
    _, m0 = draw(2)
    rows, cols = np.nonzero(m0)
    assert (cols.min(), cols.max()) == (19, 44)  # major axis 2 * 12.75 px, horizontal at orientation 0
    assert (rows.min(), rows.max()) == (25, 38)  # minor axis 2 * 7.22 px
    assert abs(m0.sum() - np.pi * 12.75 * 7.22) < 8
    _, m90 = draw(2, orientation=np.pi / 2)
    np.testing.assert_array_equal(m90, np.rot90(m0))


def test_ellipse_area_matches_dsprites_at_both_ends_of_the_scale_range():
    """dSprites' ellipse (dsprites.gif, sprite centred on a pixel corner as at position 0): 76 px in a
    12 x 8 box at scale 0.5 and 288 px in a 26 x 14 box at scale 1. Version 1 drew 36 -> 160 px."""
    for scale, area, box in ((0.5, 76, (8, 12)), (1.0, 288, (14, 26))):
        _, m = draw(2, scale=scale, x=0.0, y=0.0)
        rows, cols = np.nonzero(m)
        assert m.sum() == area
        assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == box
        # anywhere, at any angle: the mean area is the continuous one, pi * 12.75 * 7.22 * s^2,
        # within 2 %, and within 6 % of the dSprites figure
        rng = np.random.default_rng(int(scale * 10))
        n = 200
        lat = [
            np.full((n, 1), scale),
            rng.uniform(0, 2 * np.pi, (n, 1)),
            rng.uniform(0.1, 0.9, (n, 1)),
            rng.uniform(0.1, 0.9, (n, 1)),
        ]
        _, ms = render_multi_dsprites(
            np.full((n, 1), 2), *lat, np.full((n, 1, 1), 255, np.uint8), np.zeros((n, 1), np.uint8)
        )
        mean = ms.reshape(n, -1).astype(bool).sum(1).mean()
        assert abs(mean / (np.pi * 12.75 * 7.22 * scale**2) - 1) < 0.02
        assert abs(mean / area - 1) < 0.06
    # the square and the heart keep their size (square 10 -> 20 px side; dSprites' heart spans 58 -> 222 px)
    assert draw(1, scale=0.5, x=0.0, y=0.0)[1].sum() == 100 and draw(1, x=0.0, y=0.0)[1].sum() == 400
    assert draw(3, scale=0.5, x=0.0, y=0.0)[1].sum() == 58 and draw(3, x=0.0, y=0.0)[1].sum() == 222


def test_heart_orientation_and_area():
    s = 0.77  # a scale where no pixel centre falls on a raster-cell edge of the heart lookup
    _, m0 = draw(3, scale=s)
    poly = heart_polygon()
    area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], -1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], -1)))
    assert abs(m0.sum() / (area * (20 * s) ** 2) - 1) < 0.05
    rows, cols = np.nonzero(m0)
    assert cols.max() - cols.min() + 1 in (15, 16)  # width 20 * 0.77 = 15.4 px
    # orientation 0: point at the bottom, so the lowest row is narrow and the upper part wide
    assert m0[rows.max()].sum() <= 2 and m0[rows.min() + 3].sum() >= 8
    # counter-clockwise on screen: a quarter turn equals np.rot90 of the image (point to the right)
    _, m90 = draw(3, scale=s, orientation=np.pi / 2)
    np.testing.assert_array_equal(m90, np.rot90(m0))
    _, m180 = draw(3, scale=s, orientation=np.pi)
    np.testing.assert_array_equal(m180, np.rot90(m0, 2))


def test_occlusion_later_on_top_and_hidden_sprite():
    # the same square twice: the first is fully hidden, its id never appears
    img, m = draw([1, 1], color=[(10, 20, 30), (200, 100, 50)], background=(7, 7, 7))
    assert set(np.unique(m)) == {0, 2}
    assert np.all(img[m == 2] == (200, 100, 50)) and np.all(img[m == 0] == 7)
    # a small square over a big one: visible part of the big one = its area minus the small one
    img, m = draw([1, 1], scale=[1.0, 0.5], color=[(10, 20, 30), (200, 100, 50)], background=(7, 7, 7))
    assert (m == 1).sum() == 400 - 100 and (m == 2).sum() == 100
    # drawing order reversed: the big square hides the small one completely
    _, m = draw([1, 1], scale=[0.5, 1.0])
    assert (m == 1).sum() == 0 and (m == 2).sum() == 400


def test_hsv_to_rgb_matches_colorsys():
    rng = np.random.default_rng(0)
    hsv = rng.random((200, 3))
    ref = np.array([colorsys.hsv_to_rgb(*t) for t in hsv])
    np.testing.assert_allclose(hsv_to_rgb(hsv), ref, atol=1e-12)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="shape"):
        draw(4)
    with pytest.raises(ValueError, match="colors"):
        render_multi_dsprites([[1]], [[1.0]], [[0.0]], [[0.5]], [[0.5]], [[[300, 0, 0]]], [[0, 0, 0]])
    with pytest.raises(ValueError, match="scale"):
        render_multi_dsprites([[1]], [[1.0, 1.0]], [[0.0]], [[0.5]], [[0.5]], [[[3, 0, 0]]], [[0, 0, 0]])
    with pytest.raises(ValueError, match="background"):
        render_multi_dsprites([[1]], [[1.0]], [[0.0]], [[0.5]], [[0.5]], [[[3, 0, 0]]], [[0, 0]])
    with pytest.raises(ValueError, match="scale"):
        draw(1, scale=0.0)
    cfg = generators.get_spec(NAME).config(None, "train")
    with pytest.raises(ValueError, match="latent_mode"):
        render({**cfg, "latent_mode": "discrete"}, np.zeros(1, np.uint64))


def test_grid_latent_mode():
    cfg = {**generators.get_spec(NAME).config(None, "train"), "latent_mode": "grid"}
    out = render(cfg, np.arange(400, dtype=np.uint64))
    on = out["objects/shape"] > 0
    for field, grid in (
        ("scale", np.linspace(0.5, 1, 6)),
        ("orientation", np.linspace(0, 2 * np.pi, 40)),
        ("x", np.linspace(0, 1, 32)),
        ("y", np.linspace(0, 1, 32)),
    ):
        vals = out[f"objects/{field}"][on].astype(np.float64)
        dist = np.abs(vals[:, None] - grid[None, :]).min(axis=1)
        assert dist.max() < 1e-6, field
        assert len(np.unique(vals)) > len(grid) // 2  # the grid is actually explored


def test_hidden_sprites_keep_their_rows():
    cfg = generators.get_spec(NAME).config(None, "train")
    out = render(cfg, np.arange(1500, dtype=np.uint64))
    masks = out["masks"][:, 0]
    hidden = (out["objects/shape"] > 0) & (out["objects/pixels"] == 0)
    assert hidden.any()  # occlusion does hide whole sprites in 1,500 images
    i, k = np.argwhere(hidden)[0]
    assert k < out["objects/n_objects"][i] and out["objects/visibility"][i, k] == 0
    assert not (masks[i] == k + 1).any()
    assert out["objects/scale"][i, k] > 0  # latents kept


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_stored_split_invariants(smoke_root, variant, split):
    ds = generators.load(NAME, split, variant=variant, profile="smoke", root=smoke_root)
    binarized = variant == "binarized"
    lo, hi = (2, 3) if binarized else (2, 5)
    c = 1 if binarized else 3
    assert len(ds) == generators.get_spec(NAME).sizes["smoke"][split]
    assert ds.shape == (1, 64, 64, c)
    video, masks, obj = np.asarray(ds.video)[:, 0], np.asarray(ds.masks)[:, 0], ds.objects
    n_obj = obj["n_objects"].astype(int)
    assert n_obj.min() >= lo and n_obj.max() <= hi
    assert obj["shape"].shape == (len(ds), hi)
    slots = np.arange(hi)[None, :] < n_obj[:, None]
    np.testing.assert_array_equal(obj["shape"] > 0, slots)
    assert set(np.unique(obj["shape"][slots])) == {1, 2, 3}
    assert masks.max() <= hi
    for i in range(len(ds)):
        counts = np.bincount(masks[i].ravel(), minlength=hi + 1)[1:]
        np.testing.assert_array_equal(obj["pixels"][i], counts)  # an id is present iff pixels > 0
        np.testing.assert_array_equal(obj["visibility"][i], counts > 0)
        assert np.all(video[i][masks[i] == 0] == obj["background_color"][i])
        for k in range(n_obj[i]):
            assert np.all(video[i][masks[i] == k + 1] == obj["color"][i, k])  # exact colour
    # latents in range; pixel centres from latents
    s = obj["scale"][slots]
    assert s.min() >= 0.5 and s.max() <= 1.0
    assert obj["orientation"][slots].min() >= 0 and obj["orientation"][slots].max() < 2 * np.pi + 1e-6
    for f in ("x", "y"):
        v = obj[f][slots]
        assert v.min() >= 0 and v.max() <= 1
        np.testing.assert_allclose(obj[f + "_px"][slots], 16 + 32 * v, atol=1e-4)
    if binarized:
        assert set(np.unique(video)) <= {0, 255}
        assert np.all(obj["color"][slots] == 255) and np.all(obj["background_color"] == 0)
    else:
        bg = obj["background_color"].astype(int)
        assert np.all(bg == bg[:, :1])  # gray background
        assert bg.std() > 20  # brightness varies across images
        rgb = obj["color"][slots].astype(float) / 255
        mx, mn = rgb.max(1), rgb.min(1)
        assert mx.min() >= 0.5 - 0.5 / 255  # V in [0.5, 1]
        assert ((mx - mn) / mx).min() >= 0.5 - 2 / 255  # S in [0.5, 1] up to rounding


@pytest.mark.parametrize("variant", VARIANTS)
def test_render_samples_equals_stored_row(smoke_root, variant):
    ds = generators.load(NAME, "test", variant=variant, profile="smoke", root=smoke_root)
    assert_rows_regenerate(ds, (0, 11, len(ds) - 1))


def test_protocol320_view(smoke_root):
    spec = generators.get_spec(NAME)
    assert spec.views["protocol320"] == ("test", 320)
    assert spec.sizes["paper"] == {"train": 60000, "val": 1000, "test": 10000}
    view = generators.load(NAME, "protocol320", profile="smoke", root=smoke_root)
    assert view.variant == "colored_on_grayscale" and len(view) == 32


def test_workers_and_chunking_give_same_bytes(tmp_path, monkeypatch, smoke_root):
    spec = generators.get_spec(NAME)
    monkeypatch.setitem(core._REGISTRY, NAME, dataclasses.replace(spec, chunk=10))
    m = {}
    for w in (1, 2):
        folder = generators.generate_split(NAME, "train", profile="smoke", root=tmp_path / f"w{w}", workers=w)
        m[w] = json.loads((folder / "manifest.json").read_text())["files"]
    assert m[1] == m[2]
    one_chunk = generators.split_dir(NAME, "train", profile="smoke", root=smoke_root) / "manifest.json"
    assert json.loads(one_chunk.read_text())["files"] == m[1]
