"""Score a method (or a file of predictions) on a split with every applicable metric.

Segmentation (every dataset): ``ari``, ``fg_ari``, ``miou``, ``mbo``; on video the ``T·H·W`` voxels
of a clip form one set (metrics.md §0), and ``ari_frame``/``fg_ari_frame`` are the per-frame means
(the IODINE-per-frame protocol). Tracking (video): the CLEAR-MOT family, counts summed over
videos. Reconstruction (when the method returns it): ``mse`` and ``lpips_<net>``. Video datasets
longer than a clip length L also get ``by_length[metric][L]`` on the first L frames.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

import metrics as M

SEG = ("ari", "fg_ari", "miou", "mbo")
MOT_COUNTS = ("num_objects", "num_matches", "num_switches", "num_misses", "num_false_positives")


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
    if fold:
        pred.masks = _to_numpy(pred.masks).reshape(B, T, H, W) if _to_numpy(pred.masks).size == B * T * H * W else pred.masks
        if pred.recon is not None:
            r = _to_numpy(pred.recon)
            pred.recon = r.reshape(B, T, H, W, C) if r.size == B * T * H * W * C else r
    return pred


class SplitScorer:
    """Accumulates per-sample metric values and tracking counts batch by batch."""

    def __init__(self, kind: str, T: int, lengths: Iterable[int] = (), lpips_nets: tuple[str, ...] = ("vgg",)):
        self.kind = kind
        self.T = T
        self.lengths = [L for L in lengths if kind == "video" and L < T]
        self.values: dict[str, list[np.ndarray]] = {}
        self.by_length: dict[str, dict[int, list[np.ndarray]]] = {}
        self.mot_true: list[np.ndarray] = []
        self.mot_pred: list[np.ndarray] = []
        self.mot_bg: list[tuple] = []
        self.lpips_nets = lpips_nets
        self.lpips_status: dict[str, str] = {}
        self.n = 0

    def _add(self, name: str, vals) -> None:
        self.values.setdefault(name, []).append(np.asarray(_to_numpy(vals), np.float64).reshape(-1))

    def update(self, true_ids: np.ndarray, pred_ids: np.ndarray, video: np.ndarray | None = None,
               recon: np.ndarray | None = None, background_ids: tuple = ()) -> None:
        true_ids = np.asarray(true_ids, np.int64)
        self.n += true_ids.shape[0]
        self._add("ari", M.ari(true_ids, pred_ids))
        self._add("fg_ari", M.ari(true_ids, pred_ids, ignore_background=True))
        self._add("miou", M.miou(true_ids, pred_ids))
        self._add("mbo", M.mbo(true_ids, pred_ids))
        if self.kind == "video":
            self._add("ari_frame", M.ari_frame(true_ids, pred_ids))
            self._add("fg_ari_frame", M.ari_frame(true_ids, pred_ids, ignore_background=True))
            self.mot_true.append(true_ids)
            self.mot_pred.append(pred_ids)
            self.mot_bg.extend([tuple(background_ids)] * true_ids.shape[0])
        if recon is not None and video is not None:
            x = np.asarray(video, np.float32) / 255.0
            self._add("mse", M.mse(x, recon))
            for net in self.lpips_nets:
                name = f"lpips_{net}"
                if self.lpips_status.get(name) == "missing":
                    continue
                try:
                    self._add(name, M.lpips(x, recon, net=net, input_range="[0,1]"))
                except M.LPIPSWeightsMissing as e:
                    self.lpips_status[name] = "missing"
                    self.lpips_missing_reason = str(e)
        for L in self.lengths:
            t, p = true_ids[:, :L], pred_ids[:, :L]
            d = self.by_length
            d.setdefault("ari", {}).setdefault(L, []).append(M.ari(t, p))
            d.setdefault("fg_ari", {}).setdefault(L, []).append(M.ari(t, p, ignore_background=True))
            if recon is not None and video is not None:
                d.setdefault("mse", {}).setdefault(L, []).append(
                    M.mse(np.asarray(video[:, :L], np.float32) / 255.0, recon[:, :L]))

    def compute(self) -> dict[str, Any]:
        out: dict[str, dict] = {}
        for name, parts in self.values.items():
            out[name] = summarize(np.concatenate(parts), M.VERSIONS.get(name.replace("_frame", ""), name))
        for name, status in self.lpips_status.items():
            out[name] = {"value": None, "n": 0, "n_skipped": self.n, "status": "lpips_weights_missing",
                         "version": M.VERSIONS.get("lpips", "lpips")}
        if self.kind == "video" and self.mot_true:
            mot = M.clear_mot([v for b in self.mot_true for v in b], [v for b in self.mot_pred for v in b])
            summ = mot["summary"] if "summary" in mot else mot
            for k, v in summ.items():
                if isinstance(v, (int, float, np.integer, np.floating)):
                    out[k] = {"value": float(v), "n": len(self.mot_bg), "n_skipped": 0,
                              "version": M.VERSIONS.get("mot", "mot")}
        by_length = {m: {str(L): float(np.nanmean(np.concatenate([np.asarray(_to_numpy(a)).reshape(-1) for a in v])))
                         for L, v in per.items()} for m, per in self.by_length.items()}
        return {"metrics": out, "by_length": by_length, "n_samples": self.n}


def summarize(vals: np.ndarray, version: str) -> dict:
    ok = ~np.isnan(vals)
    n = int(ok.sum())
    return {"value": float(vals[ok].mean()) if n else None,
            "std": float(vals[ok].std(ddof=1)) if n > 1 else None,
            "n": n, "n_skipped": int((~ok).sum()), "version": version}


def score_split(model, ds, device: str, limit: int | None = None, lengths: Iterable[int] = (),
                batch_frames: int = 256) -> dict:
    """Predict and score the first ``limit`` samples of a split (all when None)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    T, H, W, C = ds.shape
    bs = max(1, batch_frames // T) if getattr(model, "frame_by_frame", False) else max(1, batch_frames // max(T, 1))
    bs = getattr(model, "eval_batch_size", None) or bs
    scorer = SplitScorer(ds.kind, T, lengths)
    for lo in range(0, n, bs):
        idx = np.arange(lo, min(n, lo + bs))
        b = ds.batch(idx)
        video = b["video"].numpy()
        pred = predict_batch(model, video, device)
        masks, recon = check_prediction(pred, len(idx), T, H, W, C)
        scorer.update(b["masks"].numpy(), masks, video=video, recon=recon,
                      background_ids=tuple(pred.background_ids or ()))
    return scorer.compute()
