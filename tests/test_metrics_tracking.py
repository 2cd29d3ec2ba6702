"""CLEAR-MOT against py-motmetrics 1.4.0 and an OCRB port (docs/metrics.md §6, §10).

The oracle is ``mm.MOTAccumulator(auto_id=True)`` fed with the same per-frame (objects,
hypotheses, distances) as ocbench (``metrics.frame_inputs``); its IoU helper is not used (it calls
``np.asfarray``, gone in NumPy 2). Counts come from ``mh.compute_many(..., generate_overall=True)``,
which works on pandas 3; MOTP is recomputed from the MATCH/SWITCH events because motmetrics'
OVERALL ``motp`` is NaN as soon as one video has no detection (a NaN·0 in ``motp_m``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import metrics as M

mm = pytest.importorskip("motmetrics")

SETTINGS = settings(max_examples=40, deadline=None)
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
]


def random_video(rng: np.random.Generator, T: int = 6, cells: int = 3, cs: int = 2, kt: int = 4, kp: int = 5):
    """GT: a coarse random id map that persists in time; prediction: a relabelling of it that
    sometimes changes (switches), merges ids, and pixel noise (misses, false positives)."""
    g = rng.integers(0, kt, (T, cells, cells))
    for t in range(1, T):
        keep = rng.random((cells, cells)) < 0.7
        g[t][keep] = g[t - 1][keep]
    gt = g.repeat(cs, 1).repeat(cs, 2)
    base = rng.permutation(max(kp, kt))[:kt] % kp
    pred = np.empty_like(gt)
    for t in range(T):
        mp = rng.integers(0, kp, kt) if rng.random() < 0.3 else base
        pred[t] = mp[gt[t]]
    noise = rng.random(gt.shape) < 0.1
    pred[noise] = rng.integers(0, kp, int(noise.sum()))
    return gt, pred


def oracle(videos, **opts) -> dict:
    """motmetrics 1.4.0, one accumulator per video, OVERALL row."""
    accs = []
    for gt, pred in videos:
        acc = mm.MOTAccumulator(auto_id=True)
        for oids, hids, dists in M.frame_inputs(gt, pred, **opts):
            acc.update(oids, hids, dists)
        accs.append(acc)
    mh = mm.metrics.create()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = mh.compute_many(
            accs, metrics=COUNTS + ["mota"], names=[str(i) for i in range(len(accs))], generate_overall=True
        )
    row = df.loc["OVERALL"]
    out = {k: int(row[k]) for k in COUNTS}
    out["mota"] = float(row["mota"])
    ev = [a.mot_events for a in accs]
    d = sum(float(e[e.Type.isin(["MATCH", "SWITCH"])].D.sum()) for e in ev)
    n = sum(int(e.Type.isin(["MATCH", "SWITCH"]).sum()) for e in ev)
    out["motp"] = d / n if n else np.nan
    out["per_video"] = df.drop(index="OVERALL")
    return out


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.sampled_from([None, 0.2]),
    st.integers(1, 3),
    st.sampled_from(["mask", "box"]),
)
def test_counts_equal_motmetrics(seed, n_videos, exclude_bg_iou, min_pixels, geometry):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, T=int(rng.integers(1, 7))) for _ in range(n_videos)]
    opts = dict(exclude_bg_iou=exclude_bg_iou, min_pixels=min_pixels, geometry=geometry)
    res = M.clear_mot([v[0] for v in videos], [v[1] for v in videos], **opts)
    ref = oracle(videos, **opts)
    s = res["summary"]
    for k in COUNTS:
        assert s[k] == ref[k], k
    if s["num_objects"]:
        assert s["mota"] == pytest.approx(ref["mota"], abs=1e-12)
        assert s["mota"] <= 1.0
    else:
        assert np.isnan(s["mota"]) and res["status"] == "no_gt_objects"
    np.testing.assert_allclose(s["motp"], ref["motp"], atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(s["motp_iou"], 1 - ref["motp"], atol=1e-12, equal_nan=True)
    # per-video counts sum to the summary and equal motmetrics' per-video rows
    for k in ("num_objects", "num_matches", "num_switches", "num_misses", "num_false_positives"):
        assert res["per_video"][k].sum() == s[k]
        np.testing.assert_array_equal(res["per_video"][k], ref["per_video"][k].to_numpy().astype(int))
    assert res["n"] == n_videos and res["n_skipped"] == int((res["per_video"]["num_objects"] == 0).sum())


def test_hand_checked_sequence():
    # a 1x10 strip; GT object 1 on pixels 0-1, object 2 on 3-4 (absent in frame 3); background 6 pixels
    G = [1, 1, 0, 2, 2, 0, 0, 0, 0, 0]
    gt = np.array([G, G, G, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0], G])[:, None, :]
    pred = np.array(
        [
            [7, 7, 0, 8, 8, 0, 0, 0, 0, 5],  # 2 matches; 5 is a 1-pixel FP (IoU 1/6 with the background)
            [8, 8, 0, 7, 7, 0, 0, 0, 0, 0],  # ids swapped: 2 switches
            [8, 8, 0, 0, 0, 0, 0, 0, 0, 0],  # 1 kept by continuity, object 2 missed
            [7, 7, 0, 0, 0, 0, 0, 0, 0, 0],  # object 1 now 7: switch (its last match was 8)
            [7, 7, 0, 8, 0, 0, 0, 0, 0, 0],  # 7 continues; 8 covers half of object 2: IoU 0.5 matches, switch
        ]
    )[:, None, :]
    s = M.clear_mot(gt[None], pred[None])["summary"]
    assert (
        s["num_frames"],
        s["num_objects"],
        s["num_matches"],
        s["num_switches"],
        s["num_misses"],
        s["num_false_positives"],
    ) == (5, 9, 4, 4, 1, 1)
    assert s["mota"] == pytest.approx(1 - 6 / 9, abs=1e-15)
    assert s["motp"] == pytest.approx(0.5 / 8, abs=1e-15) and s["motp_iou"] == pytest.approx(0.9375, abs=1e-15)
    assert (s["mostly_tracked"], s["partially_tracked"], s["mostly_lost"]) == (1, 1, 0)
    assert s["num_switches_pct"] == pytest.approx(400 / 9)
    ref = oracle([(gt, pred)])
    assert all(s[k] == ref[k] for k in COUNTS)


@st.composite
def tracked_scene(draw):
    """Static blocks 1..K on a 8x8 frame (all present in every frame) and a perfect prediction."""
    T = draw(st.integers(2, 6))
    K = draw(st.integers(2, 4))
    lay = np.zeros((8, 8), np.int64)
    for k in range(1, K + 1):
        r, c = divmod(k - 1, 2)
        lay[r * 4 : (r + 1) * 4 - 1, c * 4 : (c + 1) * 4 - 1] = k
    gt = np.repeat(lay[None], T, 0)
    hyp = np.array(draw(st.permutations(list(range(10, 10 + K + 1)))))  # gt id -> hypothesis id
    return gt, hyp, draw(st.integers(1, T - 1)), draw(st.sampled_from([(1, 2), (1, K), (2, K)]))


@SETTINGS
@given(tracked_scene())
def test_perfect_tracking_and_swapping_two_tracks(scene):
    gt, hyp, k, (a, b) = scene
    assume(a != b)
    pred = hyp[gt]
    s = M.clear_mot(gt[None], pred[None])["summary"]
    assert s["mota"] == 1.0 and s["motp_iou"] == 1.0 and s["num_switches"] == 0
    assert s["num_matches"] == s["num_objects"] == gt.shape[0] * (len(hyp) - 1)
    swapped = pred.copy()
    ia, ib = hyp[a], hyp[b]
    swapped[k:][pred[k:] == ia] = ib
    swapped[k:][pred[k:] == ib] = ia
    s2 = M.clear_mot(gt[None], swapped[None])["summary"]
    assert s2["num_switches"] == 2
    assert s2["num_misses"] == 0 and s2["num_false_positives"] == 0
    # renaming the hypotheses consistently changes nothing
    ren = np.arange(200)[::-1][swapped] + 3
    s3 = M.clear_mot(gt[None], ren[None])["summary"]
    assert {x: s3[x] for x in COUNTS} == {x: s2[x] for x in COUNTS}


def test_iou_exactly_half_matches_and_below_does_not():
    gt = np.array([[[1, 1, 0, 0, 0, 0, 0, 0]]])
    s = M.clear_mot(gt[None], np.array([[[5, 0, 0, 0, 0, 0, 0, 0]]])[None])["summary"]
    assert s["num_matches"] == 1 and s["motp_iou"] == 0.5  # IoU exactly 0.5 matches
    gt3 = np.array([[[1, 1, 1, 0, 0, 0, 0, 0]]])
    s = M.clear_mot(gt3[None], np.array([[[5, 3, 3, 3, 3, 0, 0, 0]]])[None], exclude_bg_iou=None)["summary"]
    # IoU(1, 5) = 1/3, IoU(1, 3) = 2/5: both below 0.5
    assert (s["num_matches"], s["num_misses"], s["num_false_positives"]) == (0, 1, 3)


def test_declared_background_and_background_exclusion():
    gt = np.zeros((2, 4, 4), np.int64)
    gt[:, :2, :2] = 1
    pred = np.full_like(gt, 9)  # one segment covering the background
    pred[:, :2, :2] = 3
    s = M.clear_mot([gt], [pred])["summary"]
    assert s["num_false_positives"] == 0 and s["num_matches"] == 2  # 9 has IoU 1 with the GT background
    s = M.clear_mot([gt], [pred], exclude_bg_iou=None)["summary"]
    assert s["num_false_positives"] == 2
    s = M.clear_mot([gt], [pred], exclude_bg_iou=None, background_ids=(9,))["summary"]
    assert s["num_false_positives"] == 0
    s = M.clear_mot([gt, gt], [pred, pred], exclude_bg_iou=None, background_ids=[(9,), ()])["summary"]
    assert s["num_false_positives"] == 2


def test_box_geometry():
    gt = np.zeros((1, 4, 4), np.int64)
    gt[0, 0, :] = 1
    gt[0, :, 0] = 1  # an L: 7 pixels, box = the whole 4x4
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = 5
    pred[0, 3, 3] = 5  # two pixels spanning the same box
    mask = M.clear_mot([gt], [pred])["summary"]
    box = M.clear_mot([gt], [pred], geometry="box")["summary"]
    assert (mask["num_matches"], mask["num_misses"], mask["num_false_positives"]) == (0, 1, 1)
    assert (box["num_matches"], box["motp_iou"]) == (1, 1.0)


def test_no_gt_objects_is_explicit():
    gt = np.zeros((2, 3, 4, 4), np.int64)
    pred = np.zeros_like(gt)
    pred[:, :, 0, 0] = 1
    res = M.clear_mot(gt, pred)
    assert np.isnan(res["summary"]["mota"]) and res["status"] == "no_gt_objects"
    assert res["n"] == 2 and res["n_skipped"] == 2 and res["summary"]["num_false_positives"] == 6


def test_accumulator_batches_equal_one_call_and_inputs_kinds():
    rng = np.random.default_rng(4)
    vids = [random_video(rng) for _ in range(5)]
    whole = M.clear_mot(np.stack([v[0] for v in vids]), np.stack([v[1] for v in vids]))
    acc = M.TrackingAccumulator()
    acc.update([torch.from_numpy(v[0]) for v in vids[:2]], [torch.from_numpy(v[1]) for v in vids[:2]])
    acc.update([v[0] for v in vids[2:]], [v[1] for v in vids[2:]])
    got = acc.compute()
    assert got["summary"] == pytest.approx(whole["summary"], nan_ok=True)
    assert got["version"] == M.VERSIONS["mot"]
    # soft-mask predictions [T,K,H,W] are argmaxed
    soft = np.eye(6, dtype=np.float32)[vids[0][1]].transpose(0, 3, 1, 2)
    assert M.mot([vids[0][0]], [soft])["summary"] == pytest.approx(
        M.clear_mot([vids[0][0]], [vids[0][1]])["summary"], nan_ok=True
    )


# ---------------------------------------------------------------------------------------------
# OCRB compatibility: a port of ocrb/eval/eval_mot.py + eval_utils.py
# ---------------------------------------------------------------------------------------------
def ocrb_frame(gt: np.ndarray, pred: np.ndarray, exclude: bool):
    """compute_dists_per_frame with GT ids = objects then the background (num_bg = 1)."""
    gt_masks = [(gt == k) for k in np.unique(gt) if k > 0] + ([gt == 0] if exclude else [])
    gt_ids = [int(k) for k in np.unique(gt) if k > 0] + ([0] if exclude else [])
    pr = [(pred == k) for k in np.unique(pred)]
    pr_ids = [int(k) for k in np.unique(pred)]
    preds, pred_ids = [m for m in pr if m.sum() > 5], [i for m, i in zip(pr, pr_ids) if m.sum() > 5]
    gts, gids = [m for m in gt_masks if m.sum() > 5], [i for m, i in zip(gt_masks, gt_ids) if m.sum() > 5]
    dists = np.ones((len(gts), len(preds)))
    eps = np.finfo(float).eps
    for h in range(len(gts)):
        for j in range(len(preds)):
            m1, m2 = np.float32(gts[h]), np.float32(preds[j])
            union = np.sum(m1) + np.sum(m2) - np.sum(m1 * m2)
            dists[h, j] = 1.0 if union == 0.0 else np.sum(m1 * m2) / (union + eps)
    if exclude:
        if dists.shape[1] > 0:
            bad = np.where(dists[-1] > 0.2)[0]
            dists = np.delete(dists, bad, 1)
            pred_ids = [pi for i, pi in enumerate(pred_ids) if i not in bad]
        dists = np.delete(dists, -1, 0)
        del gids[-1]
    dists = 1.0 - dists
    dists[dists > 0.5] = np.nan
    return gids, pred_ids, dists


def ocrb_summary(acc) -> dict:
    df = acc.mot_events
    df = df[~df.Type.isin(["RAW", "MIGRATE", "TRANSFER", "ASCEND"])]
    freq = df.OId.value_counts()
    tracked = df[df.Type == "MATCH"]["OId"].value_counts().div(freq).fillna(0.0)
    detected = df[df.Type != "MISS"]["OId"].value_counts().div(freq).fillna(0.0)
    return {"mt": (tracked >= 0.8).sum() / len(freq) * 100, "md": (detected >= 0.8).sum() / len(freq) * 100}


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_ocrb_compat_equals_ocrb_port(seed, exclude):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, T=11, cells=3, cs=3) for _ in range(3)]
    res = M.clear_mot(
        [v[0] for v in videos], [v[1] for v in videos], ocrb_compat=True, exclude_bg_iou=0.2 if exclude else None
    )
    acc = mm.MOTAccumulator()
    count = 0
    for gt, pred in videos:
        mine = M.frame_inputs(gt, pred, ocrb_compat=True, exclude_bg_iou=0.2 if exclude else None)
        for t in range(2, 10):
            o, h, d = ocrb_frame(gt[t], pred[t], exclude)
            mo, mh_, md = mine[t - 2]
            assert (mo, mh_) == (o, h)
            np.testing.assert_array_equal(np.isnan(md), np.isnan(d))
            np.testing.assert_allclose(md, d, atol=1e-12)
            acc.update(o, h, d, frameid=count)
            count += 1
    host = mm.metrics.create()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summ = host.compute(
            acc,
            metrics=[
                "num_frames",
                "mota",
                "motp",
                "num_matches",
                "num_switches",
                "num_false_positives",
                "num_misses",
                "num_objects",
            ],
            name="acc",
        )
    s = res["summary"]
    for k in ("num_frames", "num_matches", "num_switches", "num_false_positives", "num_misses", "num_objects"):
        assert s[k] == int(summ[k].iloc[0]), k
    np.testing.assert_allclose(s["ocrb_mota"], summ["mota"].iloc[0] * 100, atol=1e-10, equal_nan=True)
    np.testing.assert_allclose(s["ocrb_motp"], (1 - summ["motp"].iloc[0]) * 100, atol=1e-10, equal_nan=True)
    o = ocrb_summary(acc)
    np.testing.assert_allclose(
        [s["ocrb_mostly_tracked"], s["ocrb_mostly_detected"]], [o["mt"], o["md"]], atol=1e-10, equal_nan=True
    )
    assert res["version"] == M.VERSIONS["mot_ocrb"]


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
V = np.zeros((3, 4, 4), np.int64)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: M.clear_mot([V], [V[:2]]), ValueError, r"pred_videos\[0\]: 2 frames but true_videos\[0\] has 3"),
        (lambda: M.clear_mot([V, V], [V]), ValueError, "pred_videos: 1 videos but true_videos has 2"),
        (lambda: M.clear_mot([], []), ValueError, "true_videos: empty"),
        (lambda: M.clear_mot([V[0]], [V[0]]), ValueError, r"true_videos\[0\]: expected integer ids \[T,H,W\]"),
        (lambda: M.clear_mot([V], [V.astype(float)]), TypeError, r"pred_videos\[0\].*float ids"),
        (lambda: M.clear_mot([V - 1], [V]), ValueError, r"true_videos\[0\]: negative id"),
        (lambda: M.clear_mot([V], [V[:, :3]]), ValueError, r"pred_videos\[0\].*does not match"),
        (lambda: M.clear_mot(V, V), ValueError, r"true_videos: expected videos \[B,T,H,W\]"),
        (lambda: M.clear_mot(5, 5), TypeError, "true_videos: expected an array"),
        (lambda: M.clear_mot([V], [V], geometry="poly"), ValueError, "geometry: expected"),
        (lambda: M.clear_mot([V], [V], iou_threshold=2), ValueError, "iou_threshold"),
        (lambda: M.clear_mot([V], [V], min_pixels=0), ValueError, "min_pixels"),
        (lambda: M.clear_mot([V], [V], ocrb_compat=True), ValueError, "ocrb_compat: videos need at least 10 frames"),
        (lambda: M.clear_mot([V, V], [V, V], background_ids=[(1,)]), ValueError, "background_ids: 1 per-video"),
        (lambda: M.TrackingAccumulator().compute(), ValueError, "no videos"),
    ],
)
def test_bad_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
