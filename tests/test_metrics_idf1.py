"""Identity metrics IDF1 / IDP / IDR and fragmentations (docs/metrics.md §6).

Oracles: py-motmetrics 1.4.0 (``id_global_assignment``, ``num_fragmentations``) fed with the same
per-frame inputs as ocbench, on the random id-map videos of ``test_metrics_tracking``; and
TrackEval 1.3.0's ``Identity`` metric fed with independently computed similarities.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics as M
from metrics.identity import max_matching
from tests.test_metrics_tracking import random_video

mm = pytest.importorskip("motmetrics")

SETTINGS = settings(max_examples=30, deadline=None)
IDENTITY = ["idf1", "idp", "idr", "recall", "precision"]
COUNTS = ["idtp", "idfp", "idfn", "num_predictions", "num_fragmentations", "num_objects"]


def mm_overall(videos, **opts):
    accs = []
    for gt, pred in videos:
        acc = mm.MOTAccumulator(auto_id=True)
        for o, h, d in M.frame_inputs(gt, pred, **opts):
            acc.update(o, h, d)
        accs.append(acc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.metrics.create().compute_many(
            accs, metrics=IDENTITY + COUNTS, names=[str(i) for i in range(len(accs))], generate_overall=True
        )


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.sampled_from([None, 0.2]),
    st.sampled_from(["mask", "box"]),
    st.sampled_from([0.3, 0.5]),
)
def test_identity_and_fragmentations_equal_motmetrics(seed, n_videos, exclude_bg_iou, geometry, thr):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, T=int(rng.integers(1, 8))) for _ in range(n_videos)]
    opts = {"exclude_bg_iou": exclude_bg_iou, "geometry": geometry, "iou_threshold": thr}
    res = M.clear_mot([v[0] for v in videos], [v[1] for v in videos], **opts)
    df = mm_overall(videos, **opts)
    s = res["summary"]
    for k in COUNTS:
        assert s[k] == int(df.loc["OVERALL", k]), k
    for k in IDENTITY:
        np.testing.assert_allclose(s[k], float(df.loc["OVERALL", k]), atol=1e-12, equal_nan=True, err_msg=k)
    per = df.drop(index="OVERALL")
    for k in ("idtp", "num_fragmentations", "num_predictions"):
        np.testing.assert_array_equal(res["per_video"][k], per[k].to_numpy().astype(int))
    np.testing.assert_allclose(res["per_video"]["idf1"], per["idf1"].to_numpy(float), atol=1e-12, equal_nan=True)


def test_hand_checked_identity():
    # a 1x6 strip: object 1 on pixels 0-1, object 2 on pixels 3-4, 4 frames
    G = [1, 1, 0, 2, 2, 0]
    gt = np.array([G] * 4)[:, None, :]
    pred = np.array(
        [
            [7, 7, 0, 8, 8, 0],
            [7, 7, 0, 8, 8, 0],
            [8, 8, 0, 7, 7, 0],  # swapped for two frames
            [8, 8, 0, 0, 0, 0],  # object 2 missed
        ]
    )[:, None, :]
    s = M.clear_mot([gt], [pred])["summary"]
    # best matching 1->7, 2->8 (or 1->8, 2->7): 2 + 2 = 4 true positives of 8 GT and 7 predicted detections
    assert (s["idtp"], s["idfn"], s["idfp"], s["num_predictions"]) == (4, 4, 3, 7)
    assert s["idf1"] == pytest.approx(8 / 15) and s["idp"] == pytest.approx(4 / 7) and s["idr"] == 0.5
    assert s["num_fragmentations"] == 0  # object 2's miss is at the end of its tracked span
    pred2 = pred.copy()
    pred2[3] = [8, 8, 0, 0, 0, 0]
    pred2 = np.concatenate([pred2, pred[:1]])  # object 2 tracked again after its miss
    s2 = M.clear_mot([np.concatenate([gt, gt[:1]])], [pred2])["summary"]
    assert s2["num_fragmentations"] == 1


def test_max_matching_is_the_optimum():
    rng = np.random.default_rng(0)
    from itertools import permutations

    for _ in range(200):
        w = rng.integers(0, 4, (3, 3)) * (rng.random((3, 3)) < 0.6)
        best = max(sum(w[i, p[i]] for i in range(3)) for p in permutations(range(3)))
        assert max_matching(w) == best


@st.composite
def tracked_scene(draw):
    """Static blocks 1..K on an 8x8 frame (all present in every frame) and a perfect prediction."""
    T = draw(st.integers(2, 6))
    K = draw(st.integers(2, 4))
    lay = np.zeros((8, 8), np.int64)
    for k in range(1, K + 1):
        r, c = divmod(k - 1, 2)
        lay[r * 4 : (r + 1) * 4 - 1, c * 4 : (c + 1) * 4 - 1] = k
    gt = np.repeat(lay[None], T, 0)
    hyp = np.array(draw(st.permutations(list(range(10, 10 + K + 1)))))
    return gt, hyp, draw(st.integers(1, T - 1)), draw(st.sampled_from([(1, 2), (1, K), (2, K)]))


@SETTINGS
@given(tracked_scene())
def test_perfect_tracker_and_a_swap(scene):
    gt, hyp, k, (a, b) = scene
    pred = hyp[gt]
    s = M.clear_mot(gt[None], pred[None])["summary"]
    assert s["idf1"] == s["idp"] == s["idr"] == 1.0 and s["num_fragmentations"] == 0
    if a == b:
        return
    swapped = pred.copy()
    ia, ib = hyp[a], hyp[b]
    swapped[k:][pred[k:] == ia] = ib
    swapped[k:][pred[k:] == ib] = ia
    s2 = M.clear_mot(gt[None], swapped[None])["summary"]
    assert s2["idf1"] < 1.0 and s2["mota"] < 1.0
    T = gt.shape[0]
    # the two swapped objects keep max(k, T - k) frames each under the best global matching
    assert s2["idtp"] == s["idtp"] - 2 * min(k, T - k)


# ---------------------------------------------------------------------------------------------
# TrackEval's Identity on random sequences
# ---------------------------------------------------------------------------------------------
def trackeval_data(gt_frames, pred_frames, sims):
    """TrackEval's per-sequence data dict from per-frame id lists and similarity matrices."""
    gu = {g: i for i, g in enumerate(sorted({int(x) for f in gt_frames for x in f}))}
    pu = {p: i for i, p in enumerate(sorted({int(x) for f in pred_frames for x in f}))}
    return {
        "gt_ids": [np.array([gu[int(x)] for x in f], int) for f in gt_frames],
        "tracker_ids": [np.array([pu[int(x)] for x in f], int) for f in pred_frames],
        "similarity_scores": [
            np.asarray(s, float).reshape(len(g), len(p)) for s, g, p in zip(sims, gt_frames, pred_frames)
        ],
        "num_gt_ids": len(gu),
        "num_tracker_ids": len(pu),
        "num_gt_dets": sum(len(f) for f in gt_frames),
        "num_tracker_dets": sum(len(f) for f in pred_frames),
        "num_timesteps": len(gt_frames),
    }


def mask_data(gt, pred):
    """Objects (ids > 0), hypotheses (all predicted ids present) and mask IoUs, by plain loops."""
    gts, prs, sims = [], [], []
    for g, p in zip(gt, pred):
        go = [int(k) for k in np.unique(g) if k > 0]
        po = [int(k) for k in np.unique(p)]
        s = np.array([[((g == a) & (p == b)).sum() / ((g == a) | (p == b)).sum() for b in po] for a in go])
        gts.append(go)
        prs.append(po)
        sims.append(s)
    return trackeval_data(gts, prs, sims)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_identity_equals_trackeval_on_random_masks(seed, n_videos):
    te = pytest.importorskip("trackeval")
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, T=int(rng.integers(1, 8))) for _ in range(n_videos)]
    res = M.clear_mot([v[0] for v in videos], [v[1] for v in videos], exclude_bg_iou=None)
    metric = te.metrics.Identity({"PRINT_CONFIG": False})
    per = {str(i): metric.eval_sequence(mask_data(g, p)) for i, (g, p) in enumerate(videos)}
    ref = metric.combine_sequences(per)
    s = res["summary"]
    assert (s["idtp"], s["idfn"], s["idfp"]) == (ref["IDTP"], ref["IDFN"], ref["IDFP"])
    for k, r in (("idf1", "IDF1"), ("idp", "IDP"), ("idr", "IDR")):
        if s["num_objects"] and s["num_predictions"]:  # TrackEval gives 0 where motmetrics divides by 0
            assert s[k] == pytest.approx(ref[r], abs=1e-6), k
