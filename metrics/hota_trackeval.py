"""HOTA, DetA, AssA, LocA (Luiten et al. 2021) with TrackEval's definitions (trackeval 1.3.0,
``trackeval/metrics/hota.py``; docs/metrics.md §6).

Per video, with ``S_t[i, j]`` the similarity (IoU) of GT detection ``i`` and predicted detection
``j`` in frame ``t`` (0 for pairs that do not overlap):

1. global alignment: ``pm[o, h] = Σ_t S_t / (rowsum + colsum − S_t)`` (entries with a denominator
   ``<= eps`` count 0) and ``A[o, h] = pm / (n_o + n_h − pm)`` (``n_o``, ``n_h``: frames in which each
   trajectory is present);
2. per frame ONE matching for all thresholds: the Hungarian assignment maximising
   ``Σ A[o, h]·S_t[i, j]``; for each ``α`` in ``arange(0.05, 0.99, 0.05)`` (19 values) a matched pair
   counts as a true positive when ``S >= α − eps`` (TrackEval's rule; the paper's per-α matching is
   what this approximates);
3. per α: ``DetA = TP / (TP + FN + FP)``, ``AssA = Σ_TP Ass-IoU(o, h) / TP`` with
   ``Ass-IoU = TPA / (n_o + n_h − TPA)``, ``AssRe``, ``AssPr``, ``LocA = Σ_TP S / TP``,
   ``HOTA = sqrt(DetA·AssA)``, all with TrackEval's ``max(1, ·)`` / ``max(1e-10, ·)`` guards.

Videos are combined as TrackEval's ``combine_sequences`` (counts summed; AssA, AssRe, AssPr and
LocA averaged weighted by TP), and the reported HOTA, DetA, AssA, LocA, ... are the means over
the 19 thresholds (TrackEval's summary). Frames whose positive pairs are disjoint skip the
solver (every positive pair is in the maximum); the others call it on the whole frame, in the
order the detections were given, as TrackEval does.
"""

from __future__ import annotations

import math
from functools import cache
from itertools import permutations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["ALPHAS", "hota_video", "hota_videos", "hota_stacked", "hota_combine", "hota_summary", "ARRAY_FIELDS"]

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's array_labels, float for float
_EPS = np.finfo(float).eps
ARRAY_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA")
_COUNTS = ("HOTA_TP", "HOTA_FN", "HOTA_FP")


def _final(res: dict) -> dict:
    """TrackEval ``HOTA._compute_final_fields``."""
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    res["OWTA"] = np.sqrt(res["DetRe"] * res["AssA"])
    return res


def hota_video(
    sim: np.ndarray,
    ovalid: np.ndarray,
    hvalid: np.ndarray,
    olab: np.ndarray | None,
    hlab: np.ndarray | None,
    n_o: int,
    n_h: int,
) -> dict:
    """TrackEval ``HOTA.eval_sequence`` of one video from padded slots (see ``metrics.identity``):
    ``sim [T, A, B]`` similarities (ignored on invalid slots). Returns arrays over ``ALPHAS``."""
    res = hota_videos([(sim, ovalid, hvalid, olab, hlab, n_o, n_h)])
    return {k: v[0] for k, v in res.items()}


# Largest padded [frames, A, B] block scored at once; longer runs of videos are cut into blocks.
_MAX_BLOCK = 1 << 22


def hota_videos(videos: list[tuple]) -> dict:
    """``hota_video`` of many videos at once: ``{field: [V, len(ALPHAS)]}``.

    Each video is ``(sim [T,A,B], ovalid [T,A], hvalid [T,B], olab [T,A] | None, hlab [T,B] | None,
    n_o, n_h)``. The videos' frames are stacked into one padded block, their labels into one space
    of (video, GT label, predicted label) pairs, so every step but the per-frame assignment of
    frames with conflicting pairs is one numpy call for all videos.
    """
    out: list[dict] = []
    lo = 0
    while lo < len(videos):
        hi, A, B, F = lo, 0, 0, 0
        while hi < len(videos):
            s = videos[hi][0].shape
            a, b, f = max(A, s[1]), max(B, s[2]), F + s[0]
            if hi > lo and f * a * b > _MAX_BLOCK:
                break
            A, B, F, hi = a, b, f, hi + 1
        out.append(_hota_block(videos[lo:hi], F, A, B))
        lo = hi
    return {k: np.concatenate([o[k] for o in out]) for k in out[0]}


def _hota_block(videos: list[tuple], F: int, A: int, B: int) -> dict:
    """Stack the videos' slots into one padded block and score it (``hota_stacked``)."""
    S = np.zeros((F, A, B))
    OV = np.zeros((F, A), bool)
    HV = np.zeros((F, B), bool)
    OL = np.zeros((F, A), np.int64)
    HL = np.zeros((F, B), np.int64)
    T = np.array([v[0].shape[0] for v in videos], np.int64)
    n_o = np.array([v[5] for v in videos], np.int64)
    n_h = np.array([v[6] for v in videos], np.int64)
    f0 = 0
    for (sim, ov, hv, ol, hl, _, _), t in zip(videos, T.tolist()):
        a, b = sim.shape[1], sim.shape[2]
        sl = slice(f0, f0 + t)
        S[sl, :a, :b] = sim
        OV[sl, :a] = ov
        HV[sl, :b] = hv
        OL[sl, :a] = np.arange(a) if ol is None else ol
        HL[sl, :b] = np.arange(b) if hl is None else hl
        f0 += t
    return hota_stacked(S, OV, HV, OL, HL, T, n_o, n_h)


def hota_stacked(
    S: np.ndarray,
    OV: np.ndarray,
    HV: np.ndarray,
    OL: np.ndarray | None,
    HL: np.ndarray | None,
    T: np.ndarray,
    n_o: np.ndarray,
    n_h: np.ndarray,
) -> dict:
    """``hota_videos`` of videos already stacked frame after frame: ``S [F, A, B]`` similarities,
    ``OV [F, A]``/``HV [F, B]`` valid slots, ``OL``/``HL`` their labels (None: slot = label), ``T [V]``
    frames, ``n_o [V]``/``n_h [V]`` labels of each video. Returns ``{field: [V, len(ALPHAS)]}``."""
    V, na = len(T), len(ALPHAS)
    F, A, B = S.shape
    OL = np.zeros((F, A), np.int64) + np.arange(A) if OL is None else OL.copy()
    HL = np.zeros((F, B), np.int64) + np.arange(B) if HL is None else HL.copy()
    OL[~OV] = 0  # invalid slots point at a real label of their video (they carry 0 similarity)
    HL[~HV] = 0
    vid = np.repeat(np.arange(V), T)  # video of each frame
    P = n_o * n_h
    p_off = np.concatenate([[0], np.cumsum(P)])
    o_off = np.concatenate([[0], np.cumsum(n_o)])
    h_off = np.concatenate([[0], np.cumsum(n_h)])
    vp = OV[:, :, None] & HV[:, None, :]
    key = p_off[vid][:, None, None] + OL[:, :, None] * n_h[vid][:, None, None] + HL[:, None, :]  # [F, A, B]
    key[~vp] = p_off[-1]  # a sentinel pair (alignment 0) for padding
    # labels of every pair of the pair space
    pv = np.repeat(np.arange(V), P)
    local = np.arange(p_off[-1]) - p_off[pv]
    pair_o = o_off[pv] + local // np.maximum(n_h[pv], 1)
    pair_h = h_off[pv] + local % np.maximum(n_h[pv], 1)
    gc = np.bincount((o_off[vid][:, None] + OL)[OV], minlength=o_off[-1]).astype(np.float64)
    tc = np.bincount((h_off[vid][:, None] + HL)[HV], minlength=h_off[-1]).astype(np.float64)
    n_gt = np.bincount(vid, weights=OV.sum(1), minlength=V)
    n_tr = np.bincount(vid, weights=HV.sum(1), minlength=V)
    # 1. global alignment
    s = np.where(vp, S, 0.0)
    denom = s.sum(1, keepdims=True) + s.sum(2, keepdims=True) - s
    big = denom > _EPS
    sim_iou = np.zeros_like(s)
    sim_iou[big] = s[big] / denom[big]
    nz = sim_iou != 0
    pm = np.bincount(key[nz], weights=sim_iou[nz], minlength=p_off[-1])  # frames in time order, as TrackEval
    with np.errstate(invalid="ignore", divide="ignore"):
        align = pm / (gc[pair_o] + tc[pair_h] - pm)
    align[~np.isfinite(align)] = 0.0  # pairs of labels never present together: never used
    align = np.concatenate([align, [0.0]])
    # 2. one assignment per frame
    score = align[key] * s
    pos = score > 0
    conflict = (pos.sum(2) > 1).any(1) | (pos.sum(1) > 1).any(1)
    matched = pos
    if conflict.any():
        matched = pos.copy()
        cf = np.flatnonzero(conflict)
        matched[cf] = False
        ff, aa, bb = _assign_frames(score[cf], OV[cf], HV[cf])
        matched[cf[ff], aa, bb] = True
    ff, aa, bb = np.nonzero(matched)
    sv = s[ff, aa, bb]
    # a matched pair is a true positive at the k thresholds alpha_0 .. alpha_{k-1} with
    # alpha - eps <= S (TrackEval's test); counts over thresholds are reverse cumulative sums over k
    k = np.searchsorted(ALPHAS - _EPS, sv, side="right")
    keep = k > 0
    ff, aa, bb, sv, k = ff[keep], aa[keep], bb[keep], sv[keep], k[keep]
    mvid = vid[ff]
    n1 = na + 1

    def upto(h: np.ndarray) -> np.ndarray:  # [..., na + 1] histogram over k -> [..., na] counts of k > a
        return h[..., ::-1].cumsum(-1)[..., ::-1][..., 1:]

    tp = upto(np.bincount(mvid * n1 + k, minlength=V * n1).reshape(V, n1)).astype(np.float64)
    loc = upto(np.bincount(mvid * n1 + k, weights=sv, minlength=V * n1).reshape(V, n1))
    # 3. association per threshold, over the pairs matched at least once
    upair, inv = np.unique(key[ff, aa, bb], return_inverse=True)
    mcount = upto(np.bincount(inv.reshape(-1) * n1 + k, minlength=len(upair) * n1).reshape(-1, n1))
    mcount = mcount.astype(np.float64)  # [matched pairs, na]
    g, h = gc[pair_o[upair]][:, None], tc[pair_h[upair]][:, None]
    pkey = (pv[upair][:, None] * na + np.arange(na)[None, :]).ravel()

    def per_video(x: np.ndarray) -> np.ndarray:
        return np.bincount(pkey, weights=x.ravel(), minlength=V * na).reshape(V, na)

    denom_tp = np.maximum(1, tp)
    res = {
        "HOTA_TP": tp,
        "HOTA_FN": n_gt[:, None] - tp,
        "HOTA_FP": n_tr[:, None] - tp,
        "AssA": per_video(mcount * (mcount / np.maximum(1, g + h - mcount))) / denom_tp,
        "AssRe": per_video(mcount * (mcount / np.maximum(1, g))) / denom_tp,
        "AssPr": per_video(mcount * (mcount / np.maximum(1, h))) / denom_tp,
        "LocA": np.maximum(1e-10, loc) / np.maximum(1e-10, tp),
    }
    return _final(res)


# Frames whose positive part is at most this many candidate assignments are solved by enumerating
# them, all frames of one shape in one numpy step; larger ones call the solver one by one.
_MAX_ENUM = 720


@cache
def _perms(n: int, k: int) -> np.ndarray:
    """All ordered choices of ``k`` of ``n`` indices, in ``itertools.permutations`` order: [P, k]."""
    return np.array(list(permutations(range(n), k)), dtype=np.int64).reshape(-1, k)


def _assign_frames(score: np.ndarray, ov: np.ndarray, hv: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per frame, the assignment of maximum total ``score`` (TrackEval:
    ``linear_sum_assignment(-score)`` on the valid rows x columns); returns (frame, row slot,
    column slot) of its pairs with a positive score, the only ones that can count.

    Rows and columns without a positive score cannot change the maximum and are dropped; the rest
    of each frame is compacted (kept slots first, in slot order). Small frames are solved by
    enumeration, grouped by shape (the first assignment of maximum total wins; the solver may
    pick another one only among exactly tied totals); larger ones by the solver.
    """
    n = score.shape[0]
    pos = score > 0
    rk, ck = pos.any(2) & ov, pos.any(1) & hv
    ro = np.argsort(~rk, axis=1, kind="stable")
    co = np.argsort(~ck, axis=1, kind="stable")
    nr, nc = rk.sum(1), ck.sum(1)
    sc = score[np.arange(n)[:, None, None], ro[:, :, None], co[:, None, :]]
    out_f, out_r, out_c = [], [], []
    shape = nr * (sc.shape[2] + 1) + nc
    for key in np.unique(shape).tolist():
        fs = np.flatnonzero(shape == key)
        r, c = divmod(key, sc.shape[2] + 1)
        k = min(r, c)
        if k == 0:
            continue
        n_enum = math.perm(max(r, c), k)
        if n_enum <= _MAX_ENUM:
            P = _perms(max(r, c), k)  # [n_enum, k]
            idx = np.arange(k)[None, :]
            g = sc[fs]
            tot = (g[:, idx, P] if r <= c else g[:, P, idx]).sum(-1)  # [frames, n_enum]
            best = P[tot.argmax(1)]  # [frames, k]
            rows = np.broadcast_to(idx, best.shape) if r <= c else best
            cols = best if r <= c else np.broadcast_to(idx, best.shape)
            out_f.append(np.repeat(fs, k))
            out_r.append(rows.ravel())
            out_c.append(cols.ravel())
        else:
            for f in fs.tolist():
                mr, mc = linear_sum_assignment(-sc[f, :r, :c])
                out_f.append(np.full(len(mr), f))
                out_r.append(mr)
                out_c.append(mc)
    if not out_f:
        z = np.zeros(0, np.int64)
        return z, z, z
    ff, rr, cc = np.concatenate(out_f), np.concatenate(out_r), np.concatenate(out_c)
    keep = sc[ff, rr, cc] > 0
    ff, rr, cc = ff[keep], rr[keep], cc[keep]
    return ff, ro[ff, rr], co[ff, cc]


def hota_combine(per_video: dict) -> dict:
    """TrackEval ``HOTA.combine_sequences`` of per-video results ``{field: [V, len(ALPHAS)]}``."""
    res = {k: per_video[k].sum(0) for k in _COUNTS}
    tp = res["HOTA_TP"]
    w = per_video["HOTA_TP"]
    for k in ("AssRe", "AssPr", "AssA"):
        res[k] = (per_video[k] * w).sum(0) / np.maximum(1.0, tp)
    res["LocA"] = np.maximum(1e-10, (per_video["LocA"] * w).sum(0)) / np.maximum(1e-10, tp)
    return _final(res)


def hota_summary(res: dict) -> dict:
    """The reported numbers: means over the thresholds (lower case), HOTA(0), LocA(0), counts at
    α = 0.5 are in the per-α arrays."""
    out = {k.lower(): float(np.mean(res[k])) for k in ARRAY_FIELDS}
    out["hota_0"] = float(res["HOTA"][0])
    out["loca_0"] = float(res["LocA"][0])
    out["hotaloca_0"] = out["hota_0"] * out["loca_0"]
    return out
