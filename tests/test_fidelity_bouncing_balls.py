"""Bouncing Balls against the R-NEM data (issue 10; spec datasets.md §1 "Calibration target").

The R-NEM README animations (`sjoerdvansteenkiste/Relational-NEM:animations/balls4mass_rnem{1-4}.gif`,
`balls678mass_rnem{1-4}.gif`: 500 frames each, the top 64x64 panel is the ground truth) measure as in
``TABLE``. The functions below are that measurement: isolated balls are 4-connected components that do
not touch the border and whose bounding box is square within 1 px; speed is the distance between
the centroids of same-area isolated components in consecutive frames (the nearest one, at most
``MAX_STEP`` px away). Run on the GIFs they give ``TABLE`` exactly for the pixel statistics, and the
displacements in ``RNEM_THIS_CODE`` (the issue's ≈0.84 px/frame came from a stricter matcher it does
not spell out, its "≈1.0 by a looser matcher" is this one). Set ``OCBENCH_RNEM_ANIMATIONS`` to a
folder holding the eight GIFs to re-measure them (``test_rnem_animations_measure_as_the_table``).

The generator is held to within 10 % of the table for both ball counts, on the first videos of the
stored ``test`` (4 balls) and ``test_678`` (6-8 balls) splits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import generators

MAX_STEP = 4.0  # px: a same-area component further away is another ball
N_VIDEOS = 96  # per ball count, 51 frames each: ~18,000 / ~30,000 isolated balls, ~2 s in all
TOLERANCE = 0.10

# The table (R-NEM columns): foreground fraction, isolated-ball area 25th / 75th percentile
# (px), mean per-ball displacement (px/frame); bounding-box diameters "10-11 and 13".
TABLE = {
    4: {"foreground": 0.106, "area_p25": 82, "area_p75": 129, "displacement": 0.84},
    678: {"foreground": 0.166, "area_p25": 82, "area_p75": 128, "displacement": 0.84},
}
# What this file's functions measure on the GIFs (diameter shares of isolated balls; displacement).
RNEM_THIS_CODE = {
    4: {"d10_11": 0.439, "d12": 0.032, "d13": 0.526, "displacement": 0.981},
    678: {"d10_11": 0.682, "d12": 0.017, "d13": 0.293, "displacement": 0.899},
}
SPLITS = {4: "test", 678: "test_678"}


def isolated_balls(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area [m], bounding-box diameter [m] and centroid [m, 2] (row, col) of the isolated balls of a
    binary frame: 4-connected components off the border with a bounding box square within 1 px."""
    lab, n = ndimage.label(frame)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 2))
    boxes = ndimage.find_objects(lab)
    h = np.array([b[0].stop - b[0].start for b in boxes])
    w = np.array([b[1].stop - b[1].start for b in boxes])
    r0 = np.array([b[0].start for b in boxes])
    c0 = np.array([b[1].start for b in boxes])
    H, W = frame.shape
    keep = (r0 > 0) & (c0 > 0) & (r0 + h < H) & (c0 + w < W) & (np.abs(h - w) <= 1)
    flat = lab.ravel()
    area = np.bincount(flat, minlength=n + 1)[1:]
    rows, cols = np.indices(frame.shape)
    cy = np.bincount(flat, rows.ravel(), minlength=n + 1)[1:] / np.maximum(area, 1)
    cx = np.bincount(flat, cols.ravel(), minlength=n + 1)[1:] / np.maximum(area, 1)
    return area[keep], np.maximum(h, w)[keep], np.stack([cy, cx], axis=1)[keep]


def rnem_statistics(videos) -> dict:
    """The table's statistics over binary videos ``[T, H, W]`` (any iterable of them)."""
    fg, areas, diams, steps = [], [], [], []
    for video in videos:
        video = np.asarray(video) > 0
        fg.append(video.mean())
        prev = None
        for frame in video:
            cur = isolated_balls(frame)
            areas.append(cur[0])
            diams.append(cur[1])
            if prev is not None and len(cur[0]):
                for a, c in zip(prev[0], prev[2]):
                    same = cur[0] == a
                    if same.any():
                        d = np.hypot(*(cur[2][same] - c).T).min()
                        if d <= MAX_STEP:
                            steps.append(d)
            prev = cur
    areas, diams = np.concatenate(areas), np.concatenate(diams)
    return {
        "foreground": float(np.mean(fg)),
        "area_p25": float(np.percentile(areas, 25)),
        "area_p75": float(np.percentile(areas, 75)),
        "d10_11": float(np.isin(diams, (10, 11)).mean()),
        "d12": float((diams == 12).mean()),
        "d13": float((diams == 13).mean()),
        "displacement": float(np.mean(steps)),
        "isolated": len(areas),
        "matched": len(steps),
    }


@pytest.fixture(scope="module")
def measured() -> dict:
    out = {}
    for balls, split in SPLITS.items():
        masks = generators.render_samples("bouncing_balls", range(N_VIDEOS), split, "binary")["masks"]
        out[balls] = rnem_statistics(masks)
    return out


@pytest.mark.parametrize("balls", sorted(SPLITS))
def test_pixel_statistics_within_10_percent_of_rnem(measured, balls):
    got, want = measured[balls], TABLE[balls]
    assert got["isolated"] > 4000
    for key in ("foreground", "area_p25", "area_p75"):
        assert abs(got[key] / want[key] - 1) <= TOLERANCE, (balls, key, got[key], want[key])
    # two ball sizes: isolated balls are 10-11 px or 13 px across (12 is a rare in-between phase)
    assert got["d10_11"] >= 0.3 and got["d13"] >= 0.25 and got["d12"] <= 0.05
    assert got["d10_11"] + got["d12"] + got["d13"] >= 0.98


@pytest.mark.parametrize("balls", sorted(SPLITS))
def test_speed_within_10_percent_of_rnem(measured, balls):
    got = measured[balls]
    assert got["matched"] > 1000
    # within 10 % of the table's 0.84 px/frame and of what the same matcher reads on the R-NEM GIFs
    for want in (TABLE[balls]["displacement"], RNEM_THIS_CODE[balls]["displacement"]):
        assert abs(got["displacement"] / want - 1) <= TOLERANCE, (balls, got["displacement"], want)


def test_measurement_sees_size_and_speed():
    """The statistics respond to what they measure: 1.25x larger balls move the area percentiles by
    about 1.25^2, and twice the speed doubles the displacement (v1's balls read 118 / 229 px)."""
    from generators import bouncing_balls as bb

    base = {**bb.BASE_CONFIG}
    seeds = np.arange(16)
    ref = rnem_statistics(bb.render(base, seeds)["masks"])
    big = rnem_statistics(bb.render({**base, "radius_px": [r * 1.25 for r in base["radius_px"]]}, seeds)["masks"])
    fast = rnem_statistics(bb.render({**base, "speed_rms_px": 2 * base["speed_rms_px"]}, seeds)["masks"])
    assert 1.4 < big["area_p75"] / ref["area_p75"] < 1.7 and 1.4 < big["area_p25"] / ref["area_p25"] < 1.7
    assert 1.7 < fast["displacement"] / ref["displacement"] < 2.2


def _gif_frames(path: Path) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return np.stack([np.asarray(f.convert("L"))[:64] > 0 for f in ImageSequence.Iterator(im)])


@pytest.mark.skipif(
    not os.environ.get("OCBENCH_RNEM_ANIMATIONS"),
    reason="set OCBENCH_RNEM_ANIMATIONS to a folder with the R-NEM README GIFs",
)
@pytest.mark.slow
def test_rnem_animations_measure_as_the_table():
    pytest.importorskip("PIL")
    folder = Path(os.environ["OCBENCH_RNEM_ANIMATIONS"])
    for balls, stem in ((4, "balls4mass_rnem"), (678, "balls678mass_rnem")):
        got = rnem_statistics(_gif_frames(folder / f"{stem}{i}.gif") for i in range(1, 5))
        for key in ("area_p25", "area_p75"):
            assert got[key] == TABLE[balls][key]
        assert round(got["foreground"], 3) == TABLE[balls]["foreground"]
        for key, want in RNEM_THIS_CODE[balls].items():
            assert round(got[key], 3) == want, (balls, key, got[key])
