"""Tetrominoes generator: byte-exact fixture, stored-split invariants, determinism (spec datasets.md §4)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import generators
from generators import core
from generators.tetrominoes import (
    BEVEL,
    COLORS,
    PATTERN_SIZE,
    SHAPE_CODES,
    render,
    render_tetrominoes,
    sample_tetrominoes,
)
from tests._split_checks import assert_rows_regenerate

FIXTURE = Path("/work/shared/fixtures/tetrominoes_mini.npz")
NAME = "tetrominoes"


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tetro")
    generators.generate(NAME, profile="smoke", root=root)
    return root


def test_fixture_byte_exact():
    """All 10 original images and masks re-rendered from their factors, every byte equal."""
    if not FIXTURE.exists():
        pytest.skip(f"fixture {FIXTURE} not present")
    d = np.load(FIXTURE)
    assert np.all(d["shape"][:, 0] == 0)  # entity 0 = background, all factors 0
    img, msk = render_tetrominoes(d["x"][:, 1:], d["y"][:, 1:], d["shape"][:, 1:], d["color"][:, 1:])
    assert img.dtype == np.uint8 and msk.dtype == np.uint8
    assert img.shape == d["image"].shape == (10, 35, 35, 3)
    np.testing.assert_array_equal(img, d["image"])
    np.testing.assert_array_equal(msk, d["mask"])


def test_shape_table_matches_spec():
    assert sorted(SHAPE_CODES) == list(range(1, 20))
    for code, art in SHAPE_CODES.items():
        assert art.count("#") == 4, code
        rows = art.split("/")
        assert tuple(PATTERN_SIZE[code]) == (5 * len(rows), 5 * len(rows[0]))
    # the 19 codes are 19 distinct pieces
    assert len({v for v in SHAPE_CODES.values()}) == 19
    # bevel corners are the means of their edges
    assert BEVEL[0, 0] == (255 + 127) // 2 and BEVEL[4, 4] == (63 + 191) // 2


def test_single_piece_geometry():
    """An L piece (code 3, '###/#..') at row 2, column 7: exact block layout, colour channels."""
    img, msk = render_tetrominoes([[2]], [[7]], [[3]], [[[1, 0, 1]]])
    expect = np.zeros((35, 35), bool)
    expect[2:7, 7:22] = True  # top row of three blocks
    expect[7:12, 7:12] = True  # the block below the left end
    np.testing.assert_array_equal(msk[0] == 1, expect)
    assert msk[0].max() == 1
    np.testing.assert_array_equal(img[0, 2:7, 12:17, 0], BEVEL)  # red channel: bevel
    np.testing.assert_array_equal(img[0, 2:7, 12:17, 2], BEVEL)  # blue channel: bevel
    assert not img[0, ..., 1].any()  # green bit is 0
    assert not img[0][~expect].any()  # black background


def test_bad_input_errors():
    ok = dict(x_rows=[[0]], y_cols=[[0]], shapes=[[19]], colors=[[[1, 0, 0]]])
    with pytest.raises(ValueError, match="shapes"):
        render_tetrominoes(**{**ok, "shapes": [[20]]})
    with pytest.raises(ValueError, match="x_rows"):
        render_tetrominoes(**{**ok, "x_rows": [[26]]})  # 10-px piece at row 26 leaves the image
    with pytest.raises(ValueError, match="y_cols"):
        render_tetrominoes(**{**ok, "y_cols": [[-1]]})
    with pytest.raises(ValueError, match="colors"):
        render_tetrominoes(**{**ok, "colors": [[[2, 0, 0]]]})
    with pytest.raises(ValueError, match="x_rows"):
        render_tetrominoes(**{**ok, "x_rows": [[0.5]]})
    with pytest.raises(ValueError, match="n_pieces"):
        render({"image_size": 35, "n_pieces": 0, "max_tries": 10}, np.zeros(1, np.uint64))


def test_sampler_draws_every_code_colour_and_edge_position():
    out = render(generators.get_spec(NAME).config(None, "train"), np.arange(3000, dtype=np.uint64))
    codes = out["objects/shape"]
    assert set(np.unique(codes)) == set(range(1, 20))
    colour_ids = {tuple(c) for c in out["objects/color"].reshape(-1, 3)}
    assert colour_ids == {tuple(c) for c in COLORS}
    # top-left uniform over valid positions: both extremes occur (row 0 and 35 - height)
    h = PATTERN_SIZE[codes, 0]
    assert (out["objects/x"] == 0).any() and (out["objects/x"] == 35 - h).any()
    assert (out["objects/y"] == 0).any() and (out["objects/y"] == 35 - PATTERN_SIZE[codes, 1]).any()
    # pieces touch sometimes (allowed) but never overlap
    assert np.all(out["objects/pixels"] == 100)


def test_sampler_is_seed_deterministic():
    a = sample_tetrominoes(np.random.default_rng(7))
    b = sample_tetrominoes(np.random.default_rng(7))
    c = sample_tetrominoes(np.random.default_rng(8))
    assert a == b and a != c


@pytest.mark.parametrize("split", ["train", "test"])
def test_stored_split_invariants(smoke_root, split):
    ds = generators.load(NAME, split, profile="smoke", root=smoke_root)
    spec = generators.get_spec(NAME)
    assert len(ds) == spec.sizes["smoke"][split]
    assert ds.shape == (1, 35, 35, 3)
    video, masks, obj = np.asarray(ds.video)[:, 0], np.asarray(ds.masks)[:, 0], ds.objects
    assert np.all(obj["n_objects"] == 3) and obj["shape"].shape == (len(ds), 3)
    assert obj["shape"].min() >= 1 and obj["shape"].max() <= 19
    assert np.all(obj["visibility"] == 1)
    # no overlap: every piece keeps all its 4*25 pixels, and the mask holds exactly ids 0..3
    for k in range(3):
        np.testing.assert_array_equal((masks == k + 1).sum(axis=(1, 2)), 100)
    np.testing.assert_array_equal(obj["pixels"], 100)
    assert masks.max() == 3
    # background is black
    assert not video[masks == 0].any()
    for i in range(len(ds)):
        for k in range(3):
            sel = masks[i] == k + 1
            rows, cols = np.nonzero(sel)
            # bbox (half-open pixel edges) is the mask's extent and starts at the (x = row, y = col) factor
            assert tuple(obj["bbox"][i, k]) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
            assert (obj["x"][i, k], obj["y"][i, k]) == (rows.min(), cols.min())
            # colour up to the bevel: channels with bit 0 are 0, the others carry bevel values
            bits = obj["color"][i, k].astype(bool)
            pix = video[i][sel]
            assert not pix[:, ~bits].any()
            assert np.isin(pix[:, bits], BEVEL).all() and pix[:, bits].min() > 0
    # and the whole split equals a re-render from its stored factors
    img, msk = render_tetrominoes(obj["x"], obj["y"], obj["shape"], obj["color"])
    np.testing.assert_array_equal(img, video)
    np.testing.assert_array_equal(msk, masks)


def test_render_samples_equals_stored_row(smoke_root):
    ds = generators.load(NAME, "test", profile="smoke", root=smoke_root)
    assert_rows_regenerate(ds, (0, 17, len(ds) - 1))


def test_protocol320_view(smoke_root):
    spec = generators.get_spec(NAME)
    assert spec.views["protocol320"] == ("test", 320)
    assert spec.sizes["paper"] == {"train": 60000, "val": 1000, "test": 10000}
    view = generators.load(NAME, "protocol320", profile="smoke", root=smoke_root)
    full = generators.load(NAME, "test", profile="smoke", root=smoke_root)
    assert len(view) == min(320, len(full))
    np.testing.assert_array_equal(view.video, full.video[: len(view)])


def test_workers_and_chunking_give_same_bytes(tmp_path, monkeypatch, smoke_root):
    """workers=1 vs workers=2 with several chunks, and one big chunk: identical sha256 for every file."""
    spec = generators.get_spec(NAME)
    # small chunks so the 64 training images span several worker tasks (chunk is read by the parent only)
    monkeypatch.setitem(core._REGISTRY, NAME, dataclasses.replace(spec, chunk=10))
    m = {}
    for w in (1, 2):
        folder = generators.generate_split(NAME, "train", profile="smoke", root=tmp_path / f"w{w}", workers=w)
        m[w] = json.loads((folder / "manifest.json").read_text())["files"]
    assert m[1] == m[2]
    one_chunk = generators.split_dir(NAME, "train", profile="smoke", root=smoke_root) / "manifest.json"
    assert json.loads(one_chunk.read_text())["files"] == m[1]
    assert {info["key"] for info in m[1].values()} >= {"video", "masks", "objects/shape", "objects/bbox"}
