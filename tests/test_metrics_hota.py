"""HOTA, DetA, AssA, LocA against TrackEval 1.3.0, and the properties every tracking score must
have (docs/metrics.md §6, §10).

Oracles: TrackEval's own MOTChallenge pipeline (``MotChallenge2DBox``, benchmark MOT15, its file
reader and box IoU) on the TUD sequences shipped with motmetrics, and its ``HOTA`` / ``Identity``
metric classes fed with independently computed similarities on random box and mask sequences;
all to 1e-6 (measured: ~1e-15). Properties: id relabelling changes no score, a perfect tracker
scores HOTA = IDF1 = 1, an identity swap lowers IDF1 and AssA but not DetA, and the box and mask
paths agree on axis-aligned rectangles.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics as M
from metrics.hota_trackeval import ALPHAS
from tests.test_metrics_boxes import TUD, random_boxes, tud
from tests.test_metrics_idf1 import mask_data, trackeval_data
from tests.test_metrics_tracking import random_video

mm = pytest.importorskip("motmetrics")
te = pytest.importorskip("trackeval")

HOTA_KEYS = {
    "hota": "HOTA",
    "deta": "DetA",
    "assa": "AssA",
    "loca": "LocA",
    "detre": "DetRe",
    "detpr": "DetPr",
    "assre": "AssRe",
    "asspr": "AssPr",
    "owta": "OWTA",
}
TOL = 1e-6


def check_hota(summary: dict, ref: dict, tol: float = TOL) -> None:
    for k, r in HOTA_KEYS.items():
        assert summary[k] == pytest.approx(float(np.mean(ref[r])), abs=tol), k


def box_sims(gt_frames, pred_frames):
    """TrackEval's own box IoU (``_BaseDataset._calculate_box_ious``, xywh)."""
    iou = te.datasets._base_dataset._BaseDataset._calculate_box_ious
    return [
        iou(np.asarray(gb, float).reshape(-1, 4), np.asarray(pb, float).reshape(-1, 4), box_format="xywh")
        for (_, gb), (_, pb) in zip(gt_frames, pred_frames)
    ]


def te_boxes(gt, pred):
    return trackeval_data([f[0] for f in gt], [f[0] for f in pred], box_sims(gt, pred))


def te_combine(metric, datas):
    return metric.combine_sequences({str(i): metric.eval_sequence(d) for i, d in enumerate(datas)})


# ---------------------------------------------------------------------------------------------
# TUD-Campus / TUD-Stadtmitte through TrackEval's MOTChallenge pipeline
# ---------------------------------------------------------------------------------------------
def test_tud_equals_trackeval_pipeline(tmp_path, capsys):
    data = os.path.join(os.path.dirname(mm.__file__), "data")
    seq_info = {}
    for n in TUD:
        os.makedirs(tmp_path / "gt" / n / "gt")
        os.makedirs(tmp_path / "tr" / "ours" / "data", exist_ok=True)
        shutil.copy(os.path.join(data, n, "gt.txt"), tmp_path / "gt" / n / "gt" / "gt.txt")
        shutil.copy(os.path.join(data, n, "test.txt"), tmp_path / "tr" / "ours" / "data" / f"{n}.txt")
        g, t = tud(n)
        seq_info[n] = int(max(g.frames.max(), t.frames.max()))
    quiet = {"PRINT_CONFIG": False}
    ev = te.Evaluator(
        {
            "USE_PARALLEL": False,
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "DISPLAY_LESS_PROGRESS": True,
        }
    )
    ds = te.datasets.MotChallenge2DBox(
        {
            "GT_FOLDER": str(tmp_path / "gt"),
            "TRACKERS_FOLDER": str(tmp_path / "tr"),
            "BENCHMARK": "MOT15",
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": seq_info,
            "TRACKERS_TO_EVAL": ["ours"],
            **quiet,
        }
    )
    out, _ = ev.evaluate([ds], [te.metrics.HOTA(quiet), te.metrics.Identity(quiet)])
    capsys.readouterr()
    ref = out["MotChallenge2DBox"]["ours"]
    pairs = {n: tud(n) for n in TUD}
    cases = [(n, [pairs[n][0]], [pairs[n][1]]) for n in TUD]
    cases.append(("COMBINED_SEQ", [pairs[n][0] for n in TUD], [pairs[n][1] for n in TUD]))
    for seq, g, t in cases:
        r = ref[seq]["pedestrian"]
        res = M.clear_mot_boxes(g, t, box_format="xywh", hota=True)
        check_hota(res["summary"], r["HOTA"], tol=1e-12)
        for k, rk in (("idf1", "IDF1"), ("idp", "IDP"), ("idr", "IDR")):
            assert res["summary"][k] == pytest.approx(float(r["Identity"][rk]), abs=1e-12), (seq, k)
        np.testing.assert_array_equal(res["hota"]["tp"], r["HOTA"]["HOTA_TP"])
        np.testing.assert_allclose(res["hota"]["hota"], r["HOTA"]["HOTA"], atol=1e-12)
        alone = M.hota_boxes(g, t, box_format="xywh")
        assert {k: alone["summary"][k] for k in HOTA_KEYS} == {k: res["summary"][k] for k in HOTA_KEYS}


# ---------------------------------------------------------------------------------------------
# random sequences through TrackEval's metric classes
# ---------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.booleans())
def test_random_boxes_equal_trackeval(seed, n_videos, integer):
    rng = np.random.default_rng(seed)
    videos = [
        random_boxes(rng, T=int(rng.integers(1, 9)), K=int(rng.integers(1, 6)), integer=integer)
        for _ in range(n_videos)
    ]
    res = M.clear_mot_boxes([v[0] for v in videos], [v[1] for v in videos], box_format="xywh", hota=True)
    datas = [te_boxes(g, p) for g, p in videos]
    h = te_combine(te.metrics.HOTA(), datas)
    i = te_combine(te.metrics.Identity({"PRINT_CONFIG": False}), datas)
    s = res["summary"]
    if s["num_objects"] + s["num_predictions"] == 0:
        assert np.isnan(s["hota"])
        return
    check_hota({**s, "loca": 1.0 if np.isnan(s["loca"]) else s["loca"]}, h)
    np.testing.assert_array_equal(res["hota"]["tp"], h["HOTA_TP"])
    np.testing.assert_array_equal(res["hota"]["fn"], h["HOTA_FN"])
    np.testing.assert_array_equal(res["hota"]["fp"], h["HOTA_FP"])
    assert (s["idtp"], s["idfn"], s["idfp"]) == (i["IDTP"], i["IDFN"], i["IDFP"])
    if s["num_objects"] and s["num_predictions"]:
        assert s["idf1"] == pytest.approx(i["IDF1"], abs=TOL)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_random_masks_equal_trackeval(seed, n_videos):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, T=int(rng.integers(1, 8))) for _ in range(n_videos)]
    res = M.hota([v[0] for v in videos], [v[1] for v in videos], exclude_bg_iou=None)
    h = te_combine(te.metrics.HOTA(), [mask_data(g, p) for g, p in videos])
    s = res["summary"]
    check_hota({**s, "loca": 1.0 if np.isnan(s["loca"]) else s["loca"]}, h)
    np.testing.assert_array_equal(res["hota"]["tp"], h["HOTA_TP"])
    per = [te.metrics.HOTA().eval_sequence(mask_data(g, p)) for g, p in videos]
    np.testing.assert_allclose(res["per_video"]["hota"], [np.mean(r["HOTA"]) for r in per], atol=TOL)


def test_hota_output_layout():
    rng = np.random.default_rng(1)
    videos = [random_video(rng) for _ in range(2)]
    res = M.clear_mot([v[0] for v in videos], [v[1] for v in videos])
    assert "hota" not in res["summary"]  # opt-in
    acc = M.TrackingAccumulator(hota=True)
    acc.update([v[0] for v in videos], [v[1] for v in videos])
    both = acc.compute()
    alone = M.hota([v[0] for v in videos], [v[1] for v in videos])
    np.testing.assert_array_equal(both["hota"]["alphas"], ALPHAS)
    assert len(ALPHAS) == 19 and ALPHAS[0] == 0.05 and abs(ALPHAS[-1] - 0.95) < 1e-12
    assert {k: both["summary"][k] for k in HOTA_KEYS} == {k: alone["summary"][k] for k in HOTA_KEYS}
    assert both["summary"]["mota"] == res["summary"]["mota"]
    assert alone["version"] == M.VERSIONS["hota"] and both["versions"]["hota"] == M.VERSIONS["hota"]
    assert alone["per_video"]["hota"].shape == (2,)
    # nothing to score at all: NaN, never a made-up 0
    z = np.zeros((1, 2, 4, 4), np.int64)
    e = M.hota(z, z, exclude_bg_iou=0.2)
    assert np.isnan(e["summary"]["hota"]) and e["status"] == "no_gt_objects"
    with pytest.raises(ValueError, match="OCRB's protocol is CLEAR-MOT only"):
        M.TrackingAccumulator(ocrb_compat=True, hota=True)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------
ALL_KEYS = [
    "mota",
    "motp",
    "num_matches",
    "num_switches",
    "num_misses",
    "num_false_positives",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_fragmentations",
    "idf1",
    "idp",
    "idr",
    "idtp",
    *HOTA_KEYS,
]


def same_scores(a: dict, b: dict) -> None:
    for k in ALL_KEYS:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-12, equal_nan=True, err_msg=k)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_id_relabelling_changes_no_score(seed, n_videos):
    rng = np.random.default_rng(seed)
    # masks: an order-preserving relabelling (the order of ids is the order motmetrics visits them in)
    videos = [random_video(rng, T=int(rng.integers(1, 7))) for _ in range(n_videos)]
    gmap = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 10**6), 20, replace=False))])
    pmap = np.sort(rng.choice(10**6, 20, replace=False))
    a = M.clear_mot([g for g, _ in videos], [p for _, p in videos], hota=True)["summary"]
    same_scores(a, M.clear_mot([gmap[g] for g, _ in videos], [pmap[p] for _, p in videos], hota=True)["summary"])
    # IDF1 does not even depend on the order
    perm = rng.permutation(20)
    b = M.clear_mot([g for g, _ in videos], [perm[p] for _, p in videos])["summary"]
    assert (b["idtp"], b["idf1"]) == (a["idtp"], a["idf1"])
    # boxes: any relabelling (rows keep their order)
    bv = [random_boxes(rng, T=int(rng.integers(1, 8)), K=int(rng.integers(1, 5))) for _ in range(n_videos)]
    gperm, hperm = rng.permutation(1000), rng.permutation(1000)
    r1 = M.clear_mot_boxes([g for g, _ in bv], [p for _, p in bv], box_format="xywh", hota=True)["summary"]
    r2 = M.clear_mot_boxes(
        [[(gperm[i], b) for i, b in g] for g, _ in bv],
        [[(hperm[i], b) for i, b in p] for _, p in bv],
        box_format="xywh",
        hota=True,
    )["summary"]
    same_scores(r1, r2)


@st.composite
def moving_boxes(draw):
    """K tracks of integer boxes on a 64x64 frame, in separate 16-pixel columns (never overlapping
    within a frame), for T frames; GT ids and a perfect tracker's ids."""
    T = draw(st.integers(2, 7))
    K = draw(st.integers(2, 4))
    y0 = draw(st.lists(st.integers(0, 40), min_size=K, max_size=K))
    h = draw(st.lists(st.integers(3, 20), min_size=K, max_size=K))
    dy = draw(st.lists(st.integers(-3, 3), min_size=K, max_size=K))
    frames = []
    for t in range(T):
        b = np.array([[16 * k + 2, min(max(y0[k] + dy[k] * t, 0), 44), 10, h[k]] for k in range(K)], float)
        frames.append(b)
    gid = np.array(draw(st.permutations(list(range(1, K + 1)))))
    hid = np.array(draw(st.permutations(list(range(50, 50 + K)))))
    k = draw(st.integers(1, T - 1))
    return frames, gid, hid, k


def to_masks(video, H=64, W=64):
    """Id maps of a per-frame list of (ids, integer xywh boxes) that do not overlap."""
    m = np.zeros((len(video), H, W), np.int64)
    for t, (ids, b) in enumerate(video):
        for (x, y, w, h), i in zip(np.asarray(b).astype(int), ids):
            m[t, y : y + h, x : x + w] = i
    return m


@settings(max_examples=30, deadline=None)
@given(moving_boxes())
def test_perfect_tracker_and_an_identity_swap(scene):
    frames, gid, hid, k = scene
    gt = [(gid, b) for b in frames]
    perfect = [(hid, b) for b in frames]
    swapped = [(hid if t < k else hid[[1, 0, *range(2, len(hid))]], b) for t, b in enumerate(frames)]
    for geometry in ("boxes", "masks"):
        if geometry == "boxes":
            p = M.clear_mot_boxes([gt], [perfect], box_format="xywh", hota=True)["summary"]
            s = M.clear_mot_boxes([gt], [swapped], box_format="xywh", hota=True)["summary"]
        else:
            p = M.clear_mot([to_masks(gt)], [to_masks(perfect)], hota=True)["summary"]
            s = M.clear_mot([to_masks(gt)], [to_masks(swapped)], hota=True)["summary"]
        assert p["hota"] == p["deta"] == p["assa"] == p["loca"] == 1.0, geometry
        assert p["idf1"] == 1.0 and p["mota"] == 1.0
        assert s["deta"] == 1.0 and s["loca"] == 1.0  # detection and localisation untouched
        assert s["assa"] < 1.0 and s["idf1"] < 1.0 and s["hota"] < 1.0 and s["num_switches"] == 2, geometry


@st.composite
def rectangles(draw):
    """GT and predicted rectangles, each side non-overlapping within a frame (one 16x16 cell per
    track), predictions shifted/resized so that IoUs spread around the threshold."""
    T = draw(st.integers(1, 6))
    K = draw(st.integers(1, 4))
    g_frames, p_frames = [], []
    for _ in range(T):
        gb, pb = [], []
        for k in range(K):
            x, y = 16 * k + draw(st.integers(0, 5)), draw(st.integers(0, 40))
            w, h = draw(st.integers(1, 10)), draw(st.integers(1, 20))
            gb.append([x, y, w, h])
            dx, dy, dw, dh = (draw(st.integers(-3, 3)) for _ in range(4))
            px, py = max(16 * k, x + dx), max(0, y + dy)
            # the predicted box stays in its own 16-px cell and inside the 64x64 frame, or its mask would be
            # clipped or overwritten and the two paths could not agree
            pb.append([px, py, max(1, min(w + dw, 10, 16 * (k + 1) - px)), max(1, min(h + dh, 64 - py))])
        g_frames.append(np.array(gb, float))
        p_frames.append(np.array(pb, float))
    present = draw(st.lists(st.lists(st.booleans(), min_size=K, max_size=K), min_size=T, max_size=T))
    hits = draw(st.lists(st.lists(st.booleans(), min_size=K, max_size=K), min_size=T, max_size=T))
    hid = [draw(st.permutations(list(range(1, K + 1)))) for _ in range(T)]
    return g_frames, p_frames, np.array(present, bool), np.array(hits, bool), np.array(hid)


@settings(max_examples=40, deadline=None)
@given(rectangles())
def test_box_and_mask_paths_agree_on_rectangles(scene):
    gf, pf, present, hits, hid = scene
    T = present.shape[0]
    gmask, pmask = np.zeros((T, 64, 64), np.int64), np.zeros((T, 64, 64), np.int64)
    gt, pred = [], []
    for t in range(T):
        gi = np.flatnonzero(present[t]) + 1
        pi = np.flatnonzero(hits[t])
        gt.append((gi, gf[t][gi - 1]))
        order = np.argsort(hid[t][pi])  # rows in ascending id, the order of the mask path
        pred.append((hid[t][pi][order], pf[t][pi][order]))
        for i, (x, y, w, h) in zip(gi, gf[t][gi - 1].astype(int)):
            gmask[t, y : y + h, x : x + w] = i
        for i, (x, y, w, h) in zip(hid[t][pi], pf[t][pi].astype(int)):
            pmask[t, y : y + h, x : x + w] = i + 100  # 0 stays free for the background
    pred = [(i + 100, b) for i, b in pred]
    masks = M.clear_mot([gmask], [pmask], exclude_bg_iou=None, background_ids=(0,), hota=True)["summary"]
    boxes = M.clear_mot_boxes([gt], [pred], box_format="xywh", hota=True)["summary"]
    same_scores(masks, boxes)
    assert masks["num_objects"] == boxes["num_objects"] and masks["num_predictions"] == boxes["num_predictions"]
