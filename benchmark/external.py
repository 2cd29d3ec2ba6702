"""Scoring predictions made elsewhere, and exporting splits for people who train elsewhere.

A predictions file is an ``.npz`` with ``masks`` integer ``[N,T,H,W]`` (or ``[N,H,W]`` for image
datasets) for the N samples of the split in order, and optionally ``recon`` ``[N,T,H,W,C]`` (uint8,
or float in [0,1]). An exported split is an ``.npz`` with ``video``, ``masks``, ``objects.<field>``
and ``manifest`` (the split's manifest as JSON text).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

import generators

from .runner import record_base
from .scoring import SplitScorer, check_prediction
from .store import ResultsStore


class PredictionFileError(ValueError):
    pass


def _open_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"predictions file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise PredictionFileError(f"{path} is not a readable .npz of arrays ({e})") from e


def score_file(dataset: str, split: str, predictions: str | os.PathLike, *, variant: str | None = None,
               profile: str = "quick", data_root: str | None = None, method: str | None = None, seed: int = 0,
               results: Path | None = None, batch: int = 64) -> dict:
    ds = generators.load(dataset, split, variant, profile, data_root)
    arrs = _open_predictions(predictions)
    N = len(ds)
    T, H, W, C = ds.shape
    if "masks" not in arrs:
        raise PredictionFileError(f"{predictions} has no 'masks' array (has {sorted(arrs)}); expected masks "
                                  f"[N,T,H,W] = {(N, T, H, W)} integer")
    masks = arrs["masks"]
    if masks.ndim == 3 and T == 1:
        masks = masks[:, None]
    if masks.shape != (N, T, H, W):
        raise PredictionFileError(f"masks has shape {masks.shape}; split {dataset}/{ds.variant}/{split} "
                                  f"({profile}) expects [N,T,H,W] = {(N, T, H, W)}")
    if not np.issubdtype(masks.dtype, np.integer):
        raise PredictionFileError(f"masks has dtype {masks.dtype}; expected an integer dtype")
    recon = arrs.get("recon")
    if recon is not None:
        if recon.ndim == 4 and T == 1:
            recon = recon[:, None]
        if recon.shape != (N, T, H, W, C):
            raise PredictionFileError(f"recon has shape {recon.shape}; expected [N,T,H,W,C] = {(N, T, H, W, C)}")
        if recon.dtype == np.uint8:
            recon = recon.astype(np.float32) / 255.0
        elif not np.issubdtype(recon.dtype, np.floating):
            raise PredictionFileError(f"recon has dtype {recon.dtype}; expected uint8 or float in [0,1]")
    t0 = time.time()
    scorer = SplitScorer(ds.kind, T)
    from baselines import Prediction

    for lo in range(0, N, batch):
        hi = min(N, lo + batch)
        b = ds.batch(np.arange(lo, hi))
        m, r = check_prediction(Prediction(masks=masks[lo:hi], recon=None if recon is None else recon[lo:hi]),
                                hi - lo, T, H, W, C)
        scorer.update(b["masks"].numpy(), m, video=b["video"].numpy(), recon=r)
    res = scorer.compute()
    rec = dict(record_base(method or "external", dataset, ds.variant, split, seed, profile, "external"),
               status="ok", error=None, metrics=res["metrics"], by_length=res["by_length"],
               n_samples=res["n_samples"], train_seconds=None, eval_seconds=round(time.time() - t0, 3),
               dataset_manifest_hash=ds.manifest_hash, source=f"external predictions {Path(predictions).name}")
    if method and results is not None:
        ResultsStore(results).write(rec)
    return rec


def export_split(dataset: str, split: str, out: str | os.PathLike, *, variant: str | None = None,
                 profile: str = "quick", data_root: str | None = None) -> Path:
    ds = generators.load(dataset, split, variant, profile, data_root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"video": np.asarray(ds.video), "masks": np.asarray(ds.masks),
              "manifest": np.array(json.dumps(ds.manifest, sort_keys=True))}
    for k, a in ds.objects.items():
        arrays[f"objects.{k}"] = np.asarray(a)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out
