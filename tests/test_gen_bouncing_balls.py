"""Bouncing Balls generator (spec datasets.md §1): physics, rendering, colours, splits, export."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest

import generators
from generators import bouncing_balls as bb
from generators import core
from generators.core import sample_seeds
from tests._split_checks import assert_rows_regenerate

NAME = "bouncing_balls"
LN2_EDGE = math.log(2.0) ** 0.125  # A = 0.5 at d = r * ln(2)^(1/8) ~ 0.955 r for a lone ball


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Both variants, every smoke split, generated once."""
    r = tmp_path_factory.mktemp("bb")
    generators.generate(NAME, variant="binary", profile="smoke", root=r)
    generators.generate(NAME, variant="colour", profile="smoke", root=r)
    return r


def _load(root, split, variant):
    return generators.load(NAME, split, variant=variant, profile="smoke", root=root)


def _manifest(root, split, variant):
    return json.loads((core.split_dir(NAME, split, variant, "smoke", root) / "manifest.json").read_text())


# ----------------------------------------------------------------------------------- registry


def test_registry_variants_splits_sizes_and_shared_seeds():
    spec = generators.get_spec(NAME)
    assert spec.kind == "video" and set(spec.variants) == {"binary", "colour"}
    assert spec.split_names("paper", "binary") == ["train", "val", "test", "test_678"]
    assert spec.split_names("paper", "colour") == ["train", "val", "test", "test_678", "test_678_colours8"]
    assert [spec.size("paper", s, "colour") for s in spec.split_names("paper", "colour")] == [
        50000,
        1000,
        10000,
        10000,
        10000,
    ]
    assert [spec.size("quick", s, "colour") for s in spec.split_names("quick", "colour")] == [2000, 200, 250, 250, 250]
    with pytest.raises(generators.DatasetError, match="test_678_colours8"):
        spec.size("smoke", "test_678_colours8", "binary")
    # binary and colour share motion seeds; colours8 borrows test_678's seeds, test does not
    for split in ("train", "test", "test_678"):
        assert np.array_equal(
            sample_seeds(spec, "binary", split, range(5)), sample_seeds(spec, "colour", split, range(5))
        )
    s678 = sample_seeds(spec, "colour", "test_678", range(5))
    assert np.array_equal(sample_seeds(spec, "colour", "test_678_colours8", range(5)), s678)
    assert not np.array_equal(sample_seeds(spec, "colour", "test", range(5)), s678)
    cfg = spec.config("colour", "test_678_colours8")
    assert cfg["n_balls"] == [6, 8] and cfg["n_colours"] == 8 and cfg["seed_split"] == "test_678"
    assert spec.config("colour", "test_678")["n_colours"] == 4
    assert spec.config("binary", "train")["n_balls"] == [4, 4]


def test_check_config_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown keys.*n_ball"):
        bb.check_config({"n_ball": [4, 4]})
    with pytest.raises(ValueError, match="n_balls"):
        bb.check_config({"n_balls": [6, 9]})  # above k_max = 8
    with pytest.raises(ValueError, match="speed_rule"):
        bb.check_config({"speed_rule": "fast"})
    with pytest.raises(ValueError, match="radius_px"):
        bb.check_config({"radius_px": [40.0], "radius_p": [1.0]})
    with pytest.raises(ValueError, match="radius_p"):
        bb.check_config({"radius_p": [0.5, 0.6]})
    with pytest.raises(ValueError, match="radius_p"):
        bb.check_config({"radius_px": [5.0, 6.0, 7.0]})  # one probability per radius
    with pytest.raises(ValueError, match="n_colours"):
        bb.check_config({"n_colours": 9})
    with pytest.raises(ValueError, match="threshold"):
        bb.check_config({"threshold": -0.5})
    with pytest.raises(ValueError, match="seeds"):
        bb.render(dict(bb.BASE_CONFIG), np.array([0.5]))


# ------------------------------------------------------------------------------------ physics


def _trajectories(n_balls, count, start=0, **over):
    cfg = bb.check_config({"n_balls": n_balls, **over})
    return [
        bb.simulate(*bb.sample_initial_state(np.random.default_rng(start + s), cfg), cfg) for s in range(count)
    ], cfg


def test_initial_state_radii_placement_and_speed_rules():
    cfg = bb.check_config({"n_balls": [6, 8]})
    sizes = []
    for s in range(40):
        r, p, v = bb.sample_initial_state(np.random.default_rng(s), cfg)
        assert 6 <= len(r) <= 8 and set(r.tolist()) <= {5.34, 6.70}
        sizes += r.tolist()
        assert np.all(p >= r[:, None]) and np.all(p <= 64 - r[:, None])
        d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(len(r)) * 1e9
        assert np.all(d >= r[:, None] + r[None])  # no overlaps
        # rms_per_ball: randn(n, 2) scaled so the RMS speed of a ball is 0.98 px/frame whatever n
        assert np.sqrt((v**2).sum(1).mean()) == pytest.approx(0.98, rel=1e-12)
    assert 0.35 < np.mean(np.array(sizes) == 6.70) < 0.55  # radius_p: 45 % large
    cfg = bb.check_config({"speed_rule": "sutskever", "speed_total_px": 3.2, "n_balls": [6, 8]})
    _, _, v = bb.sample_initial_state(np.random.default_rng(3), cfg)
    assert np.linalg.norm(v) == pytest.approx(3.2, rel=1e-12)  # Sutskever: Frobenius norm
    cfg = bb.check_config({"speed_rule": "per_ball", "speed_px": 2.5})
    _, _, v = bb.sample_initial_state(np.random.default_rng(3), cfg)
    assert np.allclose(np.linalg.norm(v, axis=1), 2.5)
    r, _, _ = bb.sample_initial_state(np.random.default_rng(3), {"radius_px": [4.0, 5.0, 6.0], "radius_p": [0, 1, 0]})
    assert set(r.tolist()) == {5.0}
    # the draws come from the rng alone
    a = bb.sample_initial_state(np.random.default_rng(11), cfg)
    b = bb.sample_initial_state(np.random.default_rng(11), cfg)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_kinetic_energy_is_conserved_tightly():
    """Relative KE drift over 51 frames < 1e-9 (measured <= 2e-15 with 100 solver iterations;
    pymunk's default of 10 iterations drifts up to 2e-2 on simultaneous contacts)."""
    worst = 0.0
    collided = 0
    for n_balls, count in (([4, 4], 25), ([8, 8], 25)):
        trs, _ = _trajectories(n_balls, count, start=500)
        for tr in trs:
            ke = tr.kinetic_energy
            worst = max(worst, float(np.abs(ke / ke[0] - 1).max()))
            collided += int(tr.ball_collision.any())
    assert collided > 25  # the check is not vacuous: most videos have ball-ball contacts
    assert worst < 1e-9


def test_collisions_flags_momentum_and_walls():
    trs, cfg = _trajectories([6, 8], 30, start=900)
    changes = mismatches = 0
    for tr in trs:
        m = tr.mass
        assert np.allclose(m, tr.radius**2)  # mass_scale 1, exponent 2
        # balls stay in the box: overlap with a wall <= one substep of the fastest ball + pymunk's
        # collision slop (0.1 px)
        tol = np.linalg.norm(tr.velocity, axis=-1).max() / cfg["substeps"] + cfg["collision_slop"] + 1e-9
        r = tr.radius[None, :, None]
        assert np.all(tr.position >= r - tol) and np.all(tr.position <= 64 - r + tol)
        # a velocity changes only through a contact that began in this frame or the one before
        dv = np.abs(np.diff(tr.velocity, axis=0)).max(-1) > 1e-9  # [T-1, n]
        hit = tr.wall_collision | tr.ball_collision
        near = hit[1:] | hit[:-1]
        assert not np.any(dv & ~near)
        changes += int(dv.sum())
        mismatches += int((dv != hit[1:]).sum())
        # without wall contacts the total momentum is conserved (ball-ball collisions only)
        p = np.einsum("n,tnc->tc", m, tr.velocity)
        quiet = ~(tr.wall_collision[1:].any(1) | tr.wall_collision[:-1].any(1))
        assert np.abs(np.diff(p, axis=0))[quiet].max(initial=0.0) < 1e-9
        assert not tr.wall_collision[0].any() and not tr.ball_collision[0].any()
    assert changes > 100 and mismatches <= 0.01 * changes
    # a wall collision reverses the normal velocity component of a ball touching that wall
    tr = bb.simulate(np.array([7.68]), np.array([[10.0, 32.0]]), np.array([[-2.0, 0.5]]), cfg)
    t = int(np.argmax(tr.wall_collision[:, 0]))
    assert t > 0 and tr.velocity[t, 0] == pytest.approx([2.0, 0.5], abs=1e-12)
    assert not tr.ball_collision.any()


def test_head_on_equal_mass_collision_exchanges_velocities():
    cfg = bb.check_config({})
    tr = bb.simulate(
        np.array([7.68, 7.68]), np.array([[20.0, 32.0], [44.0, 32.0]]), np.array([[1.0, 0.0], [-1.0, 0.0]]), cfg
    )
    t = int(np.argmax(tr.ball_collision[:, 0]))
    assert tr.ball_collision[t].all() and 1 <= t <= 6
    assert tr.velocity[t] == pytest.approx(np.array([[-1.0, 0.0], [1.0, 0.0]]), abs=1e-9)


# ---------------------------------------------------------------------------------- rendering


def test_rasterise_single_ball_is_the_analytic_disc():
    rng = np.random.default_rng(0)
    for r in (5.34, 6.70, 8.96):
        pos = rng.uniform(r, 64 - r, size=(3, 1, 2))
        m, A = bb.rasterise(pos, np.array([r]), return_intensity=True)
        c = np.arange(64) + 0.5
        d = np.hypot(c[None, None, :] - pos[:, 0, 0, None, None], c[None, :, None] - pos[:, 0, 1, None, None])
        inside = d < r * LN2_EDGE
        clear = np.abs(d - r * LN2_EDGE) > 1e-3  # away from float32 rounding
        assert np.array_equal((m == 1)[clear], inside[clear]) and set(np.unique(m)) <= {0, 1}
        assert np.allclose(A, np.exp(-((d**2 / r**2) ** 4)), atol=1e-6)


def test_rasterise_bridge_pixels_and_ties_go_to_the_lower_id():
    # two equal balls symmetric about pixel column 32 (centre 32.5): there f = exp(-(a/r)^8)
    # ~ 0.30 each (float32-exact distances), so A ~ 0.6 > 0.5 turns on a pixel neither ball
    # reaches alone, and the tie goes to id 1 whatever the order
    r, a = 8.0, 8.1875
    pos = np.array([[[32.5 - a, 32.5], [32.5 + a, 32.5]]])
    for order in ([0, 1], [1, 0]):
        m, A = bb.rasterise(pos[:, order], np.array([r, r]), return_intensity=True)
        assert A[0, 32, 32] == pytest.approx(2 * math.exp(-((a / r) ** 8)), rel=1e-5)
        assert m[0, 32, 32] == 1
        assert m[0, 32, 20] == order.index(0) + 1 and m[0, 32, 44] == order.index(1) + 1
    # with a higher threshold the bridge disappears
    m = bb.rasterise(pos, np.array([r, r]), threshold=0.7)
    assert m[0, 32, 32] == 0
    # overlapping balls: each pixel takes the ball with the larger intensity (smaller d/r)
    pos = np.array([[[28.0, 32.0], [36.0, 32.0]]])
    m, _ = bb.rasterise(pos, np.array([6.4, 8.96]), return_intensity=True)
    c = np.arange(64) + 0.5
    z1 = ((c - 28.0) ** 2 + (32.5 - 32.0) ** 2) / 6.4**2
    z2 = ((c - 36.0) ** 2 + (32.5 - 32.0) ** 2) / 8.96**2
    row = m[0, 32]
    on = row > 0
    assert np.array_equal(row[on], np.where(z1 <= z2, 1, 2)[on])
    with pytest.raises(ValueError, match="position"):
        bb.rasterise(np.zeros((3, 2)), np.array([5.0]))


def _rank_rule_reference(masks, n_colours, swap=False):
    """Slow per-frame reference of the PROVIDE rank rule (spec §1)."""
    pal = bb.PALETTE[:n_colours]
    out = np.zeros(masks.shape + (3,), np.uint8)
    for t, frame in enumerate(masks):
        for l, i in enumerate(sorted(set(np.unique(frame).tolist()) - {0})):
            out[t][frame == i] = pal[l % n_colours]
    return out[..., ::-1] if swap else out


def test_colourise_rank_rule_absent_balls_repeats_and_bgr_swap():
    masks = np.zeros((3, 8, 8), np.uint8)
    masks[0, 0, :6] = [1, 2, 3, 4, 5, 6]
    masks[1, 1, :3] = [2, 4, 6]  # balls 1, 3, 5 absent: 2 -> palette[0], 4 -> [1], 6 -> [2]
    video, colours = bb.colourise(masks, 6, n_colours=4)
    assert np.array_equal(video, _rank_rule_reference(masks, 4))
    assert np.array_equal(video[0, 0, 4], bb.PALETTE[0])  # colours4: ball 5 reuses colour 1
    assert np.array_equal(video[1, 1, 0], bb.PALETTE[0]) and np.array_equal(video[1, 1, 2], bb.PALETTE[2])
    assert np.array_equal(colours[1, 1], bb.PALETTE[0]) and not colours[0, 1].any()  # ball 1 absent
    assert not video[2].any()  # empty frame stays black
    v8, _ = bb.colourise(masks, 6, n_colours=8)
    assert np.array_equal(v8[0, 0, 4], bb.PALETTE[4])  # colours8: ball 5 gets a new colour
    vs, _ = bb.colourise(masks, 6, n_colours=4, bgr_swap=True)
    assert np.array_equal(vs, video[..., ::-1])
    with pytest.raises(ValueError, match="n_balls"):
        bb.colourise(masks, 3)


# ------------------------------------------------------------------------------ fast path


def test_fast_path_equals_the_straightforward_path():
    """render (chipmunk called directly, windowed rasterisation, word-sparse counts and colours)
    gives the bytes of render_reference (pymunk's public API, every pixel, dense counts)."""
    seeds = np.array([0, 1, 2, 3, 1234567, 2**63 + 5], dtype=np.uint64)
    for over in (
        {"n_balls": [4, 4]},
        {"n_balls": [6, 8], "colour": True, "n_colours": 4},
        {"n_balls": [8, 8], "colour": True, "n_colours": 8, "bgr_swap": True},
        {"n_balls": [6, 8], "frames": 21, "size": 50},  # 52,500 px a video: byte groups
        {"n_balls": [2, 3], "radius_px": [9.0], "radius_p": [1.0], "threshold": 0.05},
    ):
        cfg = {**bb.BASE_CONFIG, **over}
        fast, ref = bb.render(cfg, seeds), bb.render_reference(cfg, seeds)
        assert fast.keys() == ref.keys()
        for k in ref:
            assert fast[k].dtype == ref[k].dtype and np.array_equal(fast[k], ref[k]), (over, k)
    # the public rasteriser is the fast one; its intensity equals the every-pixel one bit for bit
    tr = bb.simulate(*bb.sample_initial_state(np.random.default_rng(9), {"n_balls": [8, 8]}), {"n_balls": [8, 8]})
    m, A = bb.rasterise(tr.position, tr.radius, return_intensity=True)
    ws, m2 = bb._Workspace(51, 64, 64), np.empty((51, 64, 64), np.uint8)
    bb._rasterise(tr.position, tr.radius, 0.5, ws, m2, windowed=False)
    assert np.array_equal(m, m2) and np.array_equal(A.view(np.uint32), ws.A.view(np.uint32))
    # the cut that makes a ball's support exact: kept intensities are normal floats, cut ones are 0
    assert np.exp(-bb._CUT_W) >= np.finfo(np.float32).tiny
    assert np.float32(bb._SUPPORT) ** 4 > bb._CUT_W


# ------------------------------------------------------------------------------ stored splits


def test_splits_load_with_shapes_and_ball_counts(root):
    for variant, c in (("binary", 1), ("colour", 3)):
        for split in generators.get_spec(NAME).split_names("smoke", variant):
            ds = _load(root, split, variant)
            n = 4 if split in ("train", "val", "test") else None
            assert ds.video.shape == (len(ds), 51, 64, 64, c) and ds.masks.shape == (len(ds), 51, 64, 64)
            k = ds.objects["n_objects"]
            assert np.all(k == 4) if n else np.all((k >= 6) & (k <= 8))
            assert ds.objects["position"].shape == (len(ds), 8, 51, 2)
            assert ("colour" in ds.objects) == (variant == "colour")
    assert len(_load(root, "train", "binary")) == 16


def test_masks_ids_pixels_and_binary_frames_are_consistent(root):
    for split in ("train", "test_678"):
        ds = _load(root, split, "binary")
        assert set(np.unique(ds.video).tolist()) <= {0, 255}
        assert np.array_equal(ds.video[..., 0] > 0, ds.masks > 0)
        for i in range(len(ds)):
            n = int(ds.objects["n_objects"][i])
            m = np.asarray(ds.masks[i])
            assert m.max() <= n
            pos, rad = ds.objects["position"][i], ds.objects["radius"][i]
            pix = ds.objects["pixels"][i]
            assert not pix[n:].any() and not rad[n:].any() and not pos[n:].any()  # zero padding
            counts = np.stack([(m == k + 1).sum((1, 2)) for k in range(n)])
            assert np.array_equal(pix[:n], counts)
            for k in range(n):
                # ids are stable: id k+1 sits on ball k in every frame it is visible
                for t in np.flatnonzero(counts[k])[::5]:
                    rows, cols = np.nonzero(m[t] == k + 1)
                    dist = np.hypot(cols + 0.5 - pos[k, t, 0], rows + 0.5 - pos[k, t, 1])
                    assert dist.min() < rad[k]
                # an isolated ball (no other disc within reach) is fully visible: its id is in
                # the mask, at its centre pixel, with about the area of the 0.955 r disc
                others = [j for j in range(n) if j != k]
                gap = np.linalg.norm(pos[others] - pos[k][None], axis=-1) - (rad[others, None] + rad[k]) * 1.3
                for t in np.flatnonzero(np.all(gap > 0, axis=0)):
                    cx, cy = np.clip(np.floor(pos[k, t]).astype(int), 0, 63)
                    assert m[t, cy, cx] == k + 1
                    area = math.pi * (rad[k] * LN2_EDGE) ** 2
                    assert 0.8 * area < counts[k, t] < 1.2 * area


def test_colour_frames_follow_the_rank_rule(root):
    for split, n_colours in (("test", 4), ("test_678", 4), ("test_678_colours8", 8)):
        ds = _load(root, split, "colour")
        for i in range(len(ds)):
            m = np.asarray(ds.masks[i])
            assert np.array_equal(ds.video[i], _rank_rule_reference(m, n_colours))
            # per-ball colour field = the colour its pixels show
            n = int(ds.objects["n_objects"][i])
            col = ds.objects["colour"][i]
            for k in range(n):
                for t in np.flatnonzero(ds.objects["pixels"][i, k])[:3]:
                    rows, cols = np.nonzero(m[t] == k + 1)
                    assert np.all(ds.video[i, t, rows, cols] == col[k, t])
    # colours4 repeats colours when more than 4 balls are visible, colours8 never does
    ds4, ds8 = _load(root, "test_678", "colour"), _load(root, "test_678_colours8", "colour")
    for i in range(len(ds4)):
        for t in range(0, 51, 10):
            vis = np.flatnonzero(ds4.objects["pixels"][i, :, t])
            c4 = {tuple(c) for c in ds4.objects["colour"][i, vis, t]}
            c8 = {tuple(c) for c in ds8.objects["colour"][i, vis, t]}
            assert len(c8) == len(vis) and len(c4) == min(len(vis), 4)


def test_variants_and_colours8_share_motion(root):
    for split in ("train", "test", "test_678"):
        b, c = _load(root, split, "binary"), _load(root, split, "colour")
        for f in ("position", "velocity", "radius", "n_objects", "ball_collision"):
            assert np.array_equal(b.objects[f], c.objects[f]), (split, f)
        assert np.array_equal(b.masks, c.masks)
    a, b = _load(root, "test_678", "colour"), _load(root, "test_678_colours8", "colour")
    assert np.array_equal(a.objects["position"], b.objects["position"]) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.video, b.video)  # same motion, other colours
    # different splits are different videos
    assert not np.array_equal(
        _load(root, "test", "binary").objects["position"], _load(root, "val", "binary").objects["position"]
    )


def test_stored_kinetic_energy_and_box(root):
    ds = _load(root, "test_678", "binary")
    v = ds.objects["velocity"].astype(np.float64)
    ke = 0.5 * np.einsum("nk,nktc->nt", ds.objects["mass"].astype(np.float64), v**2)
    assert np.abs(ke / ke[:, :1] - 1).max() < 1e-5  # float32 storage
    r = ds.objects["radius"][:, :, None, None]
    real = (np.arange(8)[None, :] < ds.objects["n_objects"][:, None])[:, :, None, None]
    pos = ds.objects["position"]
    assert np.all(~real | ((pos >= r - 0.42) & (pos <= 64 - r + 0.42)))


def test_render_samples_equals_stored_rows(root):
    for split, variant, i in (("train", "binary", 5), ("test_678_colours8", "colour", 2), ("val", "colour", 3)):
        assert_rows_regenerate(_load(root, split, variant), [i])


def test_same_bytes_for_workers_and_chunking(tmp_path, monkeypatch):
    """workers=1 vs workers=2 and chunk 64 vs 4: identical sha256 for every file."""
    spec = generators.get_spec(NAME)
    generators.generate_split(NAME, "train", "colour", "smoke", root=tmp_path / "w1", workers=1)
    monkeypatch.setitem(core._REGISTRY, NAME, dataclasses.replace(spec, chunk=4))
    generators.generate_split(NAME, "train", "colour", "smoke", root=tmp_path / "w2", workers=2)
    files = [_manifest(tmp_path / w, "train", "colour")["files"] for w in ("w1", "w2")]
    assert files[0] == files[1] and len(files[0]) == 11


# ---------------------------------------------------------------------------------- R-NEM export


def test_export_rnem_hdf5_layout(root, tmp_path):
    h5py = pytest.importorskip("h5py")
    tr, te = _load(root, "train", "binary"), _load(root, "test_678", "binary")
    path = bb.export_rnem_hdf5({"train": tr, "test": te}, tmp_path / "balls.h5", chunk=3)
    with h5py.File(path, "r") as f:
        assert set(f) == {"training", "test"}
        g = f["training"]
        assert g["features"].shape == (51, 16, 64, 64, 1) and g["features"].dtype == np.float32
        assert np.array_equal(g["features"][:, 7, ..., 0], tr.video[7][..., 0] / 255.0)
        assert np.array_equal(g["groups"][:, 7, ..., 0], tr.masks[7])
        assert np.array_equal(g["positions"][:, 7], tr.objects["position"][7].transpose(1, 0, 2))
        assert np.array_equal(g["velocities"][:, 2], tr.objects["velocity"][2].transpose(1, 0, 2))
        t = f["test"]
        assert t["groups"].shape == (51, 4, 64, 64, 1) and t.attrs["split"] == "test_678"
        # collisions: pixels of the balls whose ball-ball contact began in that frame
        col, m, hit = t["collisions"][...][..., 0], t["groups"][...][..., 0], te.objects["ball_collision"]
        assert col.any()
        for i in range(4):
            want = np.zeros((51, 64, 64), bool)
            for k in range(8):
                want |= hit[i, k][:, None, None].astype(bool) & (m[:, i] == k + 1)
            assert np.array_equal(col[:, i] > 0, want)
    with pytest.raises(ValueError, match="binary"):
        bb.export_rnem_hdf5({"test": _load(root, "test", "colour")}, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="R-NEM group"):
        bb.export_rnem_hdf5({"test_678": te}, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_export_without_h5py_says_how_to_install(root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ImportError, match="pip install h5py"):
        bb.export_rnem_hdf5({"test": _load(root, "test", "binary")}, tmp_path / "x.h5")
