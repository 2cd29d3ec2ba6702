"""Score a method (or a file of predictions) on a split with every applicable metric.

Segmentation (every dataset): ``ari``, ``fg_ari``, ``miou``, ``mbo``; on video the ``T·H·W`` voxels
of a clip form one set (metrics.md §0), and ``ari_frame``/``fg_ari_frame`` are the per-frame means
(the IODINE-per-frame protocol). Tracking (video): the CLEAR-MOT family, counts summed over
videos. Reconstruction (when the method returns it): ``mse`` and ``lpips_<net>``. Video datasets
longer than a clip length L also get ``by_length[metric][L]`` on the first L frames.
"""
from __future__ import annotations

from typing import Any, Iterable

import math

import numpy as np

import metrics as M
from metrics.lpips import MIN_SIZE

SEG = ("ari", "fg_ari", "miou", "mbo")
MOT_KEYS = ("mota", "motp_iou", "num_objects", "num_matches", "num_switches", "num_misses", "num_false_positives",
            "mostly_tracked", "partially_tracked", "mostly_lost")


class PredictionError(ValueError):
    """A method's output breaks the contract (shape, dtype, NaN)."""


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach()
        if x.dtype.is_floating_point and x.dtype != _torch().float64:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def _torch():
    import torch

    return torch


def check_prediction(pred, B: int, T: int, H: int, W: int, C: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a Prediction; return masks int64 [B,T,H,W] and recon float32 [B,T,H,W,C] or None."""
    masks = _to_numpy(pred.masks)
    if masks.shape != (B, T, H, W):
        raise PredictionError(f"predict() returned masks of shape {tuple(masks.shape)}; expected [B,T,H,W] = "
                              f"{(B, T, H, W)}")
    if not np.issubdtype(masks.dtype, np.integer):
        if np.issubdtype(masks.dtype, np.floating) and not np.isfinite(masks).all():
            raise PredictionError("predict() returned masks with NaN or inf")
        raise PredictionError(f"predict() returned masks of dtype {masks.dtype}; expected an integer dtype")
    if masks.size and masks.min() < 0:
        raise PredictionError(f"predict() returned negative segment ids (min {masks.min()})")
    recon = None
    if pred.recon is not None:
        recon = _to_numpy(pred.recon).astype(np.float32, copy=False)
        if recon.shape != (B, T, H, W, C):
            raise PredictionError(f"predict() returned recon of shape {tuple(recon.shape)}; expected "
                                  f"[B,T,H,W,C] = {(B, T, H, W, C)}")
        if not np.isfinite(recon).all():
            raise PredictionError("predict() returned recon with NaN or inf")
    return masks.astype(np.int64, copy=False), recon


def predict_batch(model, video, device: str):
    """Call ``model.predict``; image methods see videos folded into frames ([B*T,1,...])."""
    torch = _torch()
    B, T, H, W, C = video.shape
    v = torch.as_tensor(video).to(device)
    fold = getattr(model, "frame_by_frame", False) and T > 1
    with torch.no_grad():
        pred = model.predict({"video": v.reshape(B * T, 1, H, W, C) if fold else v})
    if fold:  # back to videos; a wrong size is left as it is for check_prediction to report
        for name, shape in (("masks", (B, T, H, W)), ("recon", (B, T, H, W, C))):
            a = getattr(pred, name)
            if a is not None:
                a = _to_numpy(a)
                setattr(pred, name, a.reshape(shape) if a.size == math.prod(shape) else a)
    return pred


class SplitScorer:
    """Scores a split batch by batch with the streaming accumulators of ``metrics``."""

    def __init__(self, kind: str, T: int, lengths: Iterable[int] = (), lpips_nets: tuple[str, ...] = ("vgg",),
                 device: str = "cpu"):
        self.kind = kind
        self.device = device  # where LPIPS runs (its trunk is the only heavy part of scoring)
        self.lengths = [L for L in lengths if kind == "video" and L < T]
        names = SEG + (("ari_frame", "fg_ari_frame") if kind == "video" else ())
        self.seg = M.SegmentationAccumulator(names)
        self.track = M.TrackingAccumulator() if kind == "video" else None
        self.mse = M.MSEAccumulator()
        self.lpips_nets = lpips_nets
        self.lpips_vals: dict[str, list[np.ndarray]] = {}
        self.lpips_missing: dict[str, str] = {}
        self.by_len = {L: (M.SegmentationAccumulator(("ari", "fg_ari")), M.MSEAccumulator()) for L in self.lengths}
        self.n = 0
        self.has_recon = False

    def update(self, true_ids: np.ndarray, pred_ids: np.ndarray, video: np.ndarray | None = None,
               recon: np.ndarray | None = None, background_ids: tuple = ()) -> None:
        self.n += true_ids.shape[0]
        self.seg.update(true_ids, pred_ids)
        if self.track is not None:
            self.track.update(true_ids, pred_ids, background_ids=tuple(background_ids))
        x = None
        if recon is not None and video is not None:
            self.has_recon = True
            x = np.asarray(video, np.float32) / 255.0
            self.mse.update(x, recon)
            for net in self.lpips_nets:
                if net in self.lpips_missing:
                    continue
                if min(x.shape[2:4]) < MIN_SIZE[net]:  # the trunk's last tap would be empty
                    self.lpips_missing[net] = f"not applicable: frames smaller than {MIN_SIZE[net]} px"
                    continue
                try:
                    if self.device != "cpu":
                        torch = _torch()
                        xa, ya = torch.from_numpy(x).to(self.device), torch.from_numpy(recon).to(self.device)
                    else:
                        xa, ya = x, recon
                    v = M.lpips(xa, ya, net=net, input_range="[0,1]")
                    self.lpips_vals.setdefault(net, []).append(np.asarray(_to_numpy(v), np.float64).reshape(-1))
                except M.LPIPSWeightsMissing as e:  # reported as missing, never computed with a random trunk
                    self.lpips_missing[net] = str(e).splitlines()[0]
        for L, (seg, mse) in self.by_len.items():
            seg.update(true_ids[:, :L], pred_ids[:, :L])
            if x is not None:
                mse.update(x[:, :L], recon[:, :L])

    def compute(self) -> dict[str, Any]:
        out = dict(self.seg.compute())
        if self.has_recon:
            out.update(self.mse.compute())
            for net, parts in self.lpips_vals.items():
                out[f"lpips_{net}"] = M.summarize(np.concatenate(parts), _lpips_version(net))
            for net, why in self.lpips_missing.items():
                status = "not_applicable" if why.startswith("not applicable") else "lpips_weights_missing"
                out[f"lpips_{net}"] = {"value": None, "n": 0, "n_skipped": self.n, "status": status,
                                       "error": why, "version": _lpips_version(net)}
        if self.track is not None:
            mot = self.track.compute()
            for k in MOT_KEYS:  # the *_pct and motp (distance) values are derivable from these
                v = mot["summary"][k]
                out[k] = {"value": float(v), "n": mot["n"], "n_skipped": mot["n_skipped"], "status": mot["status"],
                          "version": mot["version"]}
        by_length: dict[str, dict[str, float]] = {}
        for L, (seg, mse) in self.by_len.items():
            res = dict(seg.compute())
            if self.has_recon:
                res.update(mse.compute())
            for m, r in res.items():
                by_length.setdefault(m, {})[str(L)] = r["value"]
        return {"metrics": out, "by_length": by_length, "n_samples": self.n}


def score_split(model, ds, device: str, limit: int | None = None, lengths: Iterable[int] = (),
                batch_frames: int = 256) -> dict:
    """Predict and score the first ``limit`` samples of a split (all when None)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    T, H, W, C = ds.shape
    bs = getattr(model, "eval_batch_size", None) or max(1, batch_frames // T)
    scorer = SplitScorer(ds.kind, T, lengths, device=device)
    for lo in range(0, n, bs):
        idx = np.arange(lo, min(n, lo + bs))
        video = np.array(ds.video[lo:lo + len(idx)])  # a writable copy in memory (the split is a read-only memmap)
        pred = predict_batch(model, video, device)
        masks, recon = check_prediction(pred, len(idx), T, H, W, C)
        # ground truth in its stored dtype (uint8): the contingency tables read a quarter of the bytes
        scorer.update(np.asarray(ds.masks[lo:lo + len(idx)]), masks, video=video, recon=recon,
                      background_ids=tuple(pred.background_ids or ()))
    return scorer.compute()


def _lpips_version(net: str) -> str:
    return f"lpips_{net}/1 v0.1 lin heads, ImageNet {net} trunk, per frame then mean per video"
