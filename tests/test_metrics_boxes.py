"""Tracking metrics of float boxes (docs/metrics.md §6): the box entry point against py-motmetrics 1.4.0.

References:
* the MOTChallenge sequences TUD-Campus and TUD-Stadtmitte shipped inside motmetrics 1.4.0
  (``motmetrics/data``) and the summary table its own test suite expects for them
  (``motmetrics/tests/test_metrics.py::test_motchallenge_files``, ``atol=1e-3``), reproduced through
  ``read_motchallenge`` + ``clear_mot_boxes``;
* ``motmetrics.utils.compare_to_groundtruth`` itself on the same files (its ``iou_matrix`` calls
  ``np.asfarray``, gone in NumPy 2: the test puts it back for the call);
* ``mm.MOTAccumulator`` fed with our per-frame inputs on random box sequences, whose IoUs are
  checked against ``mm.distances.iou_matrix``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics as M
from metrics.motchallenge import box_iou

mm = pytest.importorskip("motmetrics")

DATA = os.path.join(os.path.dirname(mm.__file__), "data")
TUD = ["TUD-Campus", "TUD-Stadtmitte"]
# motmetrics 1.4.0 tests/test_metrics.py::test_motchallenge_files: rows TUD-Campus, TUD-Stadtmitte, OVERALL
MM_COLUMNS = [
    "idf1",
    "idp",
    "idr",
    "recall",
    "precision",
    "num_unique_objects",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_false_positives",
    "num_misses",
    "num_switches",
    "num_fragmentations",
    "mota",
    "motp",
]
MM_EXPECTED = np.array(
    [
        [0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8.0, 1, 6, 1, 13, 150, 7, 7, 0.526462, 0.277201],
        [0.644619, 0.819760, 0.531142, 0.608997, 0.939920, 10.0, 5, 4, 1, 45, 452, 7, 6, 0.564014, 0.345904],
        [0.624296, 0.799176, 0.512211, 0.602640, 0.940268, 18.0, 6, 10, 2, 58, 602, 14, 13, 0.555116, 0.330177],
    ]
)
COUNTS = [
    "num_frames",
    "num_objects",
    "num_matches",
    "num_switches",
    "num_misses",
    "num_false_positives",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_unique_objects",
    "num_fragmentations",
    "num_predictions",
    "idtp",
    "idfp",
    "idfn",
]


def tud(name: str) -> tuple[M.BoxTracks, M.BoxTracks]:
    return (
        M.read_motchallenge(os.path.join(DATA, name, "gt.txt")),
        M.read_motchallenge(os.path.join(DATA, name, "test.txt")),
    )


@pytest.fixture(scope="module")
def tud_data():
    return [tud(n) for n in TUD]


def test_tud_table_equals_motmetrics_expected(tud_data):
    rows = [M.clear_mot_boxes([g], [t], box_format="xywh")["summary"] for g, t in tud_data]
    rows.append(M.clear_mot_boxes([g for g, _ in tud_data], [t for _, t in tud_data], box_format="xywh")["summary"])
    got = np.array([[float(r[c]) for c in MM_COLUMNS] for r in rows])
    np.testing.assert_allclose(got, MM_EXPECTED, atol=1e-3)  # motmetrics' own tolerance
    # the integer columns exactly
    ints = [
        MM_COLUMNS.index(c)
        for c in MM_COLUMNS
        if c not in ("idf1", "idp", "idr", "recall", "precision", "mota", "motp")
    ]
    np.testing.assert_array_equal(got[:, ints], MM_EXPECTED[:, ints])


def _compare_to_groundtruth(name: str, monkeypatch):
    monkeypatch.setattr(np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype), raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside motmetrics.io
        df_gt = mm.io.loadtxt(os.path.join(DATA, name, "gt.txt"))
        df_test = mm.io.loadtxt(os.path.join(DATA, name, "test.txt"))
        return mm.utils.compare_to_groundtruth(df_gt, df_test, "iou", distth=0.5)


def test_tud_equals_motmetrics_compare_to_groundtruth(tud_data, monkeypatch):
    """Frame by frame inputs and every summary value against motmetrics run on the files."""
    accs = [_compare_to_groundtruth(n, monkeypatch) for n in TUD]
    for (g, t), acc in zip(tud_data, accs):
        raw = acc.events[acc.events.Type == "RAW"]
        mine = M.box_frame_inputs(g, t, box_format="xywh")
        frames = sorted(set(raw.index.get_level_values(0)))
        assert len(mine) == len(frames)
        for (o, h, d), f in zip(mine, frames):
            ev = raw.loc[f]
            pairs = ev.dropna(subset=["D"])
            got = {(oo, hh): d[i, j] for i, oo in enumerate(o) for j, hh in enumerate(h) if d[i, j] == d[i, j]}
            ref = {(int(a), int(b)): float(x) for a, b, x in zip(pairs.OId, pairs.HId, pairs.D)}
            assert got == ref  # bit for bit: the same box IoU operations
    mh = mm.metrics.create()
    names = MM_COLUMNS + ["num_frames", "num_objects", "num_matches", "num_predictions", "idtp", "idfp", "idfn"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = mh.compute_many(accs, metrics=names, names=TUD, generate_overall=True)
    res = M.clear_mot_boxes([g for g, _ in tud_data], [t for _, t in tud_data], box_format="xywh")
    for k in names:
        assert res["summary"][k] == pytest.approx(float(df.loc["OVERALL", k]), abs=1e-12), k
    for k in ("num_objects", "num_switches", "num_fragmentations", "idtp"):
        np.testing.assert_array_equal(res["per_video"][k], df.loc[TUD, k].to_numpy().astype(int))


# ---------------------------------------------------------------------------------------------
# random box sequences against motmetrics
# ---------------------------------------------------------------------------------------------
def random_boxes(rng: np.random.Generator, T: int = 8, K: int = 4, integer: bool = False):
    """GT: K boxes drifting over a 100x100 image, each present in a random span of frames;
    prediction: noisy copies under a relabelling that changes now and then (switches), some
    dropped (misses), some extra boxes (false positives). Per-frame lists of (ids, xywh boxes)."""
    pos = rng.uniform(0, 80, (K, 2))
    size = rng.uniform(8, 30, (K, 2))
    vel = rng.normal(0, 3, (K, 2))
    start, stop = rng.integers(0, T, K), rng.integers(0, T + 1, K)
    gt_ids = rng.permutation(50)[:K] + 1
    hyp = rng.permutation(60)[:K] + 100
    gt, pred = [], []
    for t in range(T):
        live = (start <= t) & (t < np.maximum(stop, start + 1))
        b = np.concatenate([pos + t * vel, size], 1)
        if integer:
            b = np.round(b)
        gt.append((gt_ids[live], b[live]))
        if rng.random() < 0.2:
            hyp = rng.permutation(hyp)
        keep = live & (rng.random(K) < 0.85)
        pb = b[keep] + rng.normal(0, 3 if not integer else 0, (int(keep.sum()), 4)) * [1, 1, 0.3, 0.3]
        pb[:, 2:] = np.abs(pb[:, 2:])
        n_fp = int(rng.integers(0, 2))
        fp = np.concatenate([rng.uniform(0, 90, (n_fp, 2)), rng.uniform(5, 20, (n_fp, 2))], 1)
        ids = np.concatenate([hyp[keep], 300 + rng.permutation(20)[:n_fp]])
        order = rng.permutation(len(ids))
        pred.append((ids[order], np.concatenate([pb, fp])[order]))
    return gt, pred


def mm_oracle(videos, box_format="xywh", iou_threshold=0.5):
    """motmetrics accumulators fed with our per-frame inputs; the IoUs are checked against
    ``mm.distances.boxiou`` (the core of its ``iou_matrix``) on the way."""
    accs = []
    for gt, pred in videos:
        acc = mm.MOTAccumulator(auto_id=True)
        frames = M.box_frame_inputs(gt, pred, box_format=box_format, iou_threshold=iou_threshold)
        for (o, h, d), (gi, gb), (pi, pb) in zip(frames, gt, pred):
            if len(gi) and len(pi):
                gx, px = np.asarray(gb, float), np.asarray(pb, float)
                if box_format == "x1y1x2y2":
                    gx, px = gx.copy(), px.copy()
                    gx[:, 2:] -= gx[:, :2]
                    px[:, 2:] -= px[:, :2]
                ref = 1 - mm.distances.boxiou(gx[:, None], px[None, :])
                ref = np.where(ref > 1 - iou_threshold, np.nan, ref)
                if box_format == "xywh":  # bit for bit; corners -> sizes may round, so only close
                    np.testing.assert_array_equal(d, ref)
                else:
                    np.testing.assert_allclose(d, ref, atol=1e-12)
            acc.update(o, h, d)
        accs.append(acc)
    mh = mm.metrics.create()
    names = COUNTS + ["mota", "idf1", "idp", "idr", "recall", "precision"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = mh.compute_many(accs, metrics=names, names=[str(i) for i in range(len(accs))], generate_overall=True)
    return df


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.booleans(), st.sampled_from([0.3, 0.5, 0.7]))
def test_random_boxes_equal_motmetrics(seed, n_videos, integer, thr):
    rng = np.random.default_rng(seed)
    videos = [
        random_boxes(rng, T=int(rng.integers(1, 9)), K=int(rng.integers(1, 5)), integer=integer)
        for _ in range(n_videos)
    ]
    res = M.clear_mot_boxes([v[0] for v in videos], [v[1] for v in videos], box_format="xywh", iou_threshold=thr)
    df = mm_oracle(videos, iou_threshold=thr)
    s = res["summary"]
    for k in COUNTS:
        assert s[k] == int(df.loc["OVERALL", k]), k
    for k in ("mota", "idf1", "idp", "idr", "recall", "precision"):
        np.testing.assert_allclose(s[k], float(df.loc["OVERALL", k]), atol=1e-12, equal_nan=True, err_msg=k)
    for k in ("num_switches", "num_fragmentations", "idtp", "num_predictions"):
        np.testing.assert_array_equal(res["per_video"][k], df.drop(index="OVERALL")[k].to_numpy().astype(int))


def _corners(videos):
    out = []
    for frames in videos:
        f2 = []
        for ids, b in frames:
            b = np.asarray(b, float).copy()
            b[:, 2:] += b[:, :2]
            f2.append((ids, b))
        out.append(f2)
    return out


def test_corner_format_equals_motmetrics_and_xywh():
    rng = np.random.default_rng(3)
    videos = [random_boxes(rng, integer=True) for _ in range(4)]  # integers: corners and sizes are exact
    gts, preds = [v[0] for v in videos], [v[1] for v in videos]
    a = M.clear_mot_boxes(gts, preds, box_format="xywh", hota=True)
    b = M.clear_mot_boxes(_corners(gts), _corners(preds), box_format="x1y1x2y2", hota=True)
    assert a["summary"] == b["summary"]
    df = mm_oracle(list(zip(_corners(gts), _corners(preds))), box_format="x1y1x2y2")
    assert b["summary"]["num_switches"] == int(df.loc["OVERALL", "num_switches"])
    assert b["options"]["box_format"] == "x1y1x2y2" and b["version"] == M.VERSIONS["mot_boxes"]


def test_box_iou_hand_values():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 2.0, 2.0], [2.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(box_iou(a, b, "xywh"), [[1 / 7, 0.0, 0.0]])
    np.testing.assert_allclose(box_iou(a, np.array([[1.0, 1.0, 3.0, 3.0]]), "x1y1x2y2"), [[1 / 7]])
    # the OCLF bug: the same numbers read in the other convention give another IoU
    assert box_iou(a, b[:1], "x1y1x2y2")[0, 0] != box_iou(a, b[:1], "xywh")[0, 0]


# ---------------------------------------------------------------------------------------------
# MOTChallenge files
# ---------------------------------------------------------------------------------------------
def test_read_motchallenge_formats(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("1,1,10,20,5,6,1,1,1\n1, 2, 30.5, 40, 5, 6, 0, 1, 0.5\n\n2 1 11 21 5 6 1 1 1\n")
    r = M.read_motchallenge(p)
    assert r.box_format == "xywh" and len(r) == 3
    np.testing.assert_array_equal(r.frames, [1, 1, 2])
    np.testing.assert_array_equal(r.ids, [1, 2, 1])
    np.testing.assert_array_equal(r.boxes[0], [9, 19, 5, 6])  # 1-based pixels -> 0-based (motmetrics)
    np.testing.assert_array_equal(M.read_motchallenge(p, matlab_coords=False).boxes[1], [30.5, 40, 5, 6])
    np.testing.assert_array_equal(M.read_motchallenge(p, min_confidence=1).ids, [1, 1])  # conf 0 = ignore
    tr = tmp_path / "t.txt"
    tr.write_text("1,7,10,20,5,6\n2,7,11,21,5,6\n")
    s = M.clear_mot_boxes([r], [M.read_motchallenge(tr)], box_format="xywh")["summary"]
    assert (s["num_matches"], s["num_misses"], s["num_frames"]) == (2, 1, 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10,20\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected at least 6 fields"):
        M.read_motchallenge(bad)
    bad.write_text("1.5,1,10,20,5,6\n")
    with pytest.raises(ValueError, match="frame 1.5 is not an integer"):
        M.read_motchallenge(bad)


def test_rows_use_the_union_of_frames_and_a_mapping_works():
    gt = {"frames": [1, 2, 4], "ids": [1, 1, 1], "boxes": [[0, 0, 10, 10]] * 3}
    pr = {"frames": [1, 3], "ids": [5, 5], "boxes": [[0, 0, 10, 10]] * 2}
    s = M.clear_mot_boxes([gt], [pr], box_format="xywh")["summary"]
    assert (s["num_frames"], s["num_matches"], s["num_misses"], s["num_false_positives"]) == (4, 1, 2, 1)
    assert s["num_fragmentations"] == 0  # one match only: no tracked span to fragment


V = [(np.array([1]), np.array([[0.0, 0.0, 4.0, 4.0]]))]


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: M.clear_mot_boxes([V], [V]), TypeError, "box_format"),
        (lambda: M.clear_mot_boxes([V], [V], box_format="xyxy"), ValueError, "box_format: expected one of"),
        (lambda: M.clear_mot_boxes([V], [V], box_format=None), ValueError, "never guessed"),
        (lambda: M.hota_boxes([V], [V], box_format="cxcywh"), ValueError, "box_format"),
        (
            lambda: M.clear_mot_boxes(
                [M.BoxTracks([1], [1], [[0, 0, 5, 5]], "x1y1x2y2")],
                [M.BoxTracks([1], [1], [[0, 0, 5, 5]], "x1y1x2y2")],
                box_format="xywh",
            ),
            ValueError,
            r"true_videos\[0\]: BoxTracks in box_format='x1y1x2y2' but the call says box_format='xywh'",
        ),
        (
            lambda: M.clear_mot_boxes(
                [[(np.array([1]), np.array([[5.0, 5.0, 1.0, 1.0]]))]], [V], box_format="x1y1x2y2"
            ),
            ValueError,
            r"true_videos\[0\]\[0\] boxes: row 0 .* x2 < x1",
        ),
        (
            lambda: M.clear_mot_boxes([[(np.array([1]), np.array([[0, 0, -1.0, 1.0]]))]], [V], box_format="xywh"),
            ValueError,
            "negative width",
        ),
        (
            lambda: M.clear_mot_boxes([[(np.array([1]), np.array([[0, 0, np.nan, 1.0]]))]], [V], box_format="xywh"),
            ValueError,
            "NaN",
        ),
        (
            lambda: M.clear_mot_boxes([[(np.array([1, 1]), np.zeros((2, 4)))]], [V], box_format="xywh"),
            ValueError,
            r"true_videos\[0\]: id 1 occurs twice in frame 0",
        ),
        (
            lambda: M.clear_mot_boxes([[(np.array([1]), np.zeros((2, 4)))]], [V], box_format="xywh"),
            ValueError,
            "1 ids but 2 boxes",
        ),
        (lambda: M.clear_mot_boxes([V + V], [V], box_format="xywh"), ValueError, "1 frames but true_videos.0. has 2"),
        (
            lambda: M.clear_mot_boxes([M.BoxTracks([1], [1], [[0, 0, 5, 5]], "xywh")], [V], box_format="xywh"),
            TypeError,
            "same form",
        ),
        (
            lambda: M.clear_mot_boxes(M.BoxTracks([1], [1], [[0, 0, 5, 5]], "xywh"), [V], box_format="xywh"),
            TypeError,
            "wrap a single video in a list",
        ),
        (lambda: M.clear_mot_boxes([V, V], [V], box_format="xywh"), ValueError, "1 videos but true_videos has 2"),
        (lambda: M.clear_mot_boxes([], [], box_format="xywh"), ValueError, "empty"),
        (lambda: M.clear_mot_boxes([V], [V], box_format="xywh", iou_threshold=1.5), ValueError, "iou_threshold"),
        (lambda: M.clear_mot_boxes([{"frames": [1], "ids": [1]}], [V], box_format="xywh"), ValueError, "missing"),
        (lambda: M.BoxTracks([1, 2], [1], [[0, 0, 5, 5]], "xywh"), ValueError, "same number of rows"),
        (lambda: M.BoxTrackingAccumulator(box_format="xywh").compute(), ValueError, "no videos"),
    ],
)
def test_bad_box_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_accumulator_batches_equal_one_call(tud_data):
    acc = M.BoxTrackingAccumulator(box_format="xywh", hota=True)
    for g, t in tud_data:
        acc.update([g], [t])
    whole = M.clear_mot_boxes([g for g, _ in tud_data], [t for _, t in tud_data], box_format="xywh", hota=True)
    assert acc.compute()["summary"] == whole["summary"]
    assert whole["versions"] == {
        "mot": M.VERSIONS["mot_boxes"],
        "identity": M.VERSIONS["identity"],
        "hota": M.VERSIONS["hota"],
    }
