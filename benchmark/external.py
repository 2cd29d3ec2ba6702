"""Scoring predictions made elsewhere, and exporting splits for people who train elsewhere.

A predictions file is an ``.npz`` with ``masks`` integer ``[N,T,H,W]`` (or ``[N,H,W]`` for image
datasets) for the N samples of the split in order, and optionally ``recon`` ``[N,T,H,W,C]`` (uint8,
or float in [0,1]) and ``classes`` integer ``[N,K]`` (a class per segment id, as ``Prediction.classes``:
semantic and clustering scores on datasets with ground-truth classes). An exported split is an ``.npz``
with ``video``, ``masks``, ``objects.<field>`` and ``manifest`` (the split's manifest as JSON text).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

import generators
from ocbench_common.files import atomic_write

from .runner import record_base
from .scoring import SplitScorer, check_prediction, class_field, pixel_classes, true_classes
from .store import ResultsStore, run_id


class PredictionFileError(ValueError):
    pass


class RecordExistsError(ValueError):
    """Storing external predictions would replace a record (or take a registered method's name)."""


NPY_MAGIC = b"\x93NUMPY"
HEADER_SLACK = 1 << 16  # an .npy header is at most 64 KiB (numpy reads at most 10,000 bytes of it)


def _member(zf: zipfile.ZipFile, key: str) -> zipfile.ZipInfo | None:
    names = set(zf.namelist())
    for name in (f"{key}.npy", key):
        if name in names:
            return zf.getinfo(name)
    return None


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_items: int, where: str) -> np.ndarray:
    """One array of the archive, refused before inflating when it declares more than the split can need.

    ``max_items`` elements of at most 8 bytes each: the zip header's ``file_size`` and the ``.npy``
    header's shape and dtype are both checked before a byte of the data is inflated.
    """
    limit = max_items * 8
    if info.file_size > limit + HEADER_SLACK:
        raise PredictionFileError(
            f"{where}: member {info.filename} declares {info.file_size} bytes; the split "
            f"needs at most {limit} (+ header); refusing to inflate it"
        )
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise PredictionFileError(f"{where}: member {info.filename} has .npy version {version}")
    if dtype.hasobject:
        raise PredictionFileError(
            f"{where}: member {info.filename} holds Python objects ({dtype}); save plain integer/float arrays"
        )
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > limit:
        raise PredictionFileError(
            f"{where}: member {info.filename} declares shape {shape} {dtype} = {nbytes} "
            f"bytes; the split needs at most {limit}; refusing to inflate it"
        )
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _open_predictions(path: str | os.PathLike, max_items: dict[str, int]) -> tuple[dict[str, np.ndarray], str]:
    """The arrays ``max_items`` names (only those are inflated) and the file's sha256.

    The file is opened once: the digest is of the bytes the arrays were read from.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"predictions file {path} does not exist")
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
            fh.seek(0)
            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
            fh.seek(0)
            if not zipfile.is_zipfile(fh):
                if head == NPY_MAGIC:
                    raise PredictionFileError(
                        f"{path} is a single .npy array, not an .npz archive; save it "
                        f"with np.savez(path, masks=masks[, recon=recon])"
                    )
                raise PredictionFileError(
                    f"{path} is not a readable .npz of arrays (not a zip archive); save "
                    f"predictions with np.savez(path, masks=masks[, recon=recon])"
                )
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                members = {k: _member(zf, k) for k in max_items}
                if members.get("masks") is None:
                    raise PredictionFileError(
                        f"{path} has no 'masks' array (has {sorted(n.removesuffix('.npy') for n in zf.namelist())})"
                        f"; expected masks [N,T,H,W] integer"
                    )
                for k, info in members.items():
                    if info is not None:
                        out[k] = _read_member(zf, info, max_items[k], str(path))
    except PredictionFileError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        raise PredictionFileError(f"{path} is not a readable .npz of arrays ({type(e).__name__}: {e})") from e
    return out, digest.hexdigest()


def score_file(
    dataset: str,
    split: str,
    predictions: str | os.PathLike,
    *,
    variant: str | None = None,
    profile: str = "quick",
    data_root: str | None = None,
    method: str | None = None,
    seed: int = 0,
    results: Path | None = None,
    batch: int = 64,
    overwrite: bool = False,
) -> dict:
    """Score a predictions file against a split; with ``method`` and ``results``, store the record.

    Storing refuses, unless ``overwrite``, a registered method's name (its records come from the harness)
    and any run id that already has a record. The record's ``origin`` names the file and its sha256.
    """
    ds = generators.load(dataset, split, variant, profile, data_root)
    store = None
    if method is not None and results is not None:
        store = ResultsStore(results)
        rid = run_id(method, dataset, ds.variant, split, seed, profile)
        if not overwrite:
            from baselines import methods

            if method in methods():
                raise RecordExistsError(
                    f"{method!r} is a registered method: its records come from the harness; "
                    f"store external predictions under another name, or pass --overwrite"
                )
            if os.path.lexists(store.path(rid, profile)):
                raise RecordExistsError(
                    f"a record {rid} already exists in {store.root}; pass --overwrite to replace it"
                )
    N = len(ds)
    T, H, W, C = ds.shape
    arrs, digest = _open_predictions(
        predictions, {"masks": N * T * H * W, "recon": N * T * H * W * C, "classes": N * T * H * W}
    )
    masks = arrs["masks"]
    if masks.ndim == 3 and T == 1:
        masks = masks[:, None]
    if masks.shape != (N, T, H, W):
        raise PredictionFileError(
            f"masks has shape {masks.shape}; split {dataset}/{ds.variant}/{split} "
            f"({profile}) expects [N,T,H,W] = {(N, T, H, W)}"
        )
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
    classes = arrs.get("classes")
    if classes is not None and (classes.ndim != 2 or len(classes) != N):
        raise PredictionFileError(
            f"classes has shape {classes.shape}; expected [N,K] = ({N}, K), a class per segment id"
        )
    t0 = time.time()
    cf = class_field(ds)
    scorer = SplitScorer(ds.kind, T, num_classes=cf.num_classes if cf else None)
    from baselines import Prediction

    for lo in range(0, N, batch):
        hi = min(N, lo + batch)
        b = ds.batch(np.arange(lo, hi))
        got = check_prediction(
            Prediction(
                masks=masks[lo:hi],
                recon=None if recon is None else recon[lo:hi],
                classes=None if classes is None else classes[lo:hi],
            ),
            hi - lo,
            T,
            H,
            W,
            C,
        )
        true_ids = b["masks"].numpy()
        tc = pc = None
        if got.classes is not None and cf is not None:
            tc, pc = true_classes(ds, lo, hi, true_ids), pixel_classes(got.classes, got.masks)
        scorer.update(true_ids, got.masks, video=b["video"].numpy(), recon=got.recon, true_cls=tc, pred_cls=pc)
    res = scorer.compute()
    name = Path(predictions).name
    origin = {"kind": "external", "predictions": name, "sha256": digest}
    rec = dict(
        record_base(method or "external", dataset, ds.variant, split, seed, profile, "external", origin=origin),
        status="ok",
        error=None,
        metrics=res["metrics"],
        by_length=res["by_length"],
        n_samples=res["n_samples"],
        train_seconds=None,
        eval_seconds=round(time.time() - t0, 3),
        dataset_manifest_hash=ds.manifest_hash,
        source=f"external predictions {name}",
    )
    if store is not None:
        store.write(rec)
    return rec


def export_split(
    dataset: str,
    split: str,
    out: str | os.PathLike,
    *,
    variant: str | None = None,
    profile: str = "quick",
    data_root: str | None = None,
) -> Path:
    ds = generators.load(dataset, split, variant, profile, data_root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "video": np.asarray(ds.video),
        "masks": np.asarray(ds.masks),
        "manifest": np.array(json.dumps(ds.manifest, sort_keys=True)),
    }
    for k, a in ds.objects.items():
        arrays[f"objects.{k}"] = np.asarray(a)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file, not a path: np.savez would add ".npz" to the temporary's name
            np.savez(f, **arrays)

    return atomic_write(out, write)
