"""Dataset registry, per-sample seeds, split writer and verified loader.

A dataset family registers a :class:`DatasetSpec`. Its ``render(config, seeds)`` draws whole
batches of samples: ``seeds`` is a uint64 array with one seed per sample, derived by
:func:`sample_seed` from (dataset, variant seed key, major version, split, index), so a split is
the same bytes whatever the number of worker processes and any sample can be regenerated alone.

``render`` returns a dict with ``video`` uint8 ``[n,T,H,W,C]``, ``masks`` uint8 ``[n,T,H,W]``
(0 = background, 1..K stable over time) and per-object fields under ``objects/<name>``, each an
array ``[n, K_max, ...]`` padded with zeros, plus ``objects/n_objects`` int ``[n]``.

On disk a split is ``<root>/<name>/<variant>/v<version>/<profile>/<split>/`` holding one ``.npy``
per array (memory-mappable) and ``manifest.json`` (generator, version, config, seeds, counts,
sha256 of every file). It is written into a temporary sibling folder ``.<split>.tmp-<host>-<pid>-...``
(space reserved up front, so a full disk is one clear error, never SIGBUS) and swapped into place under
an exclusive ``flock`` of the profile folder, which readers hold shared while they verify and open a
split: a reader sees the old split or the new one, never neither. Temporary folders of writers that
died are swept when the next generation starts. Every manifest field is checked against the arrays and
against the generator before a split is used (:func:`verify_split`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ocbench_common import names as _names
from ocbench_common.files import atomic_write_text
from ocbench_common.registry import Registry

from ._storage import _host, _make_temp, _remove, _reserve, _start_ticks, _swap_in, split_lock, sweep_orphans  # noqa: F401  # noqa: F401  (tests name the writer of a temporary folder)

PROFILES = ("smoke", "quick", "paper")
DEFAULT_PROFILE = "quick"
ENV_ROOT = "OCBENCH_DATA"
FORMAT_VERSION = 1
SEED_RULE = "sha256('ocbench|name|seed_key|v<major>|split|index')[:8] little-endian"
_MANIFEST_KEYS = frozenset(
    {
        "format",
        "generator",
        "version",
        "variant",
        "profile",
        "split",
        "kind",
        "count",
        "seed_rule",
        "seed_key",
        "config",
        "files",
        "seconds",
    }
)
_FILE_KEYS = frozenset({"sha256", "bytes", "key", "shape", "dtype"})
_MANIFEST_MAX_BYTES = 4 << 20


class DatasetError(Exception):
    """Unknown names, missing or corrupt splits: always with a message that says what to do."""


# Every name that becomes part of a path (dataset, variant, split, view, profile): the project's one pattern
NAME_PATTERN = _names.NAME_PATTERN
_NAME_RE = _names.NAME_RE


def check_name(value: Any, what: str = "dataset name") -> str:
    """``value`` if it is a safe name (:data:`NAME_PATTERN`), else :class:`DatasetError` saying why."""
    return _names.check_name(value, what, DatasetError)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One variant of a dataset family.

    ``config``: overrides of the family's base config. ``seed_key``: variants with the same key
    share per-sample seeds (e.g. binary and colour Bouncing Balls share the motion).
    ``splits``: extra per-split overrides (e.g. ``{"test_678": {"n_balls": (6, 8)}}``).
    """

    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seed_key: str | None = None
    splits: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    description: str = ""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    version: str  # semver; the major part enters the seeds, any change is a new folder
    kind: str  # "image" (T = 1) or "video"
    base_config: Mapping[str, Any]
    variants: Mapping[str, Variant]
    default_variant: str
    # sizes[profile][split] = number of samples; the split names of a profile are its keys
    sizes: Mapping[str, Mapping[str, int]]
    render: Callable[[dict, np.ndarray], dict]
    # views of a stored split: name -> (stored split, number of leading samples), e.g. protocol320
    views: Mapping[str, tuple[str, int]] = dataclasses.field(default_factory=dict)
    description: str = ""
    # how many samples one worker task renders at once
    chunk: int = 256
    # splits each variant has (default: all of the profile's splits)
    variant_splits: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # optional check(profile, config) that raises DatasetError when a profile cannot be made from
    # this config (e.g. the paper profile of Scattered MNIST needs all 60,000 MNIST digits)
    check: Callable[[str, dict], None] | None = None
    # test-time number of slots per split: split -> K that methods able to change their slot count
    # (``variable_slots``) are scored with, as the source papers did; e.g. Bouncing Balls ``test_678``: 9
    # (PROVIDE, Table 2 caption: "change the number of slots from 5 to 9"). Scoring only: not part of the
    # split's config or manifest, so declaring it changes no bytes and makes no split stale.
    eval_slots: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def variant(self, variant: str | None) -> str:
        v = self.default_variant if variant is None else variant
        if v not in self.variants:
            raise DatasetError(
                f"unknown variant {v!r} of dataset {self.name!r}; valid variants: {sorted(self.variants)}"
            )
        return v

    def split_names(self, profile: str, variant: str | None = None) -> list[str]:
        check_profile(profile)
        names = list(self.sizes[profile])
        v = self.variant(variant)
        if v in self.variant_splits:
            names = [s for s in names if s in self.variant_splits[v]]
        return names

    def test_splits(self, profile: str, variant: str | None = None) -> list[str]:
        """Every split a method is scored on: ``test*`` splits and the views."""
        names = [s for s in self.split_names(profile, variant) if s.startswith("test")]
        return names + [v for v, (src, _) in self.views.items() if src in names]

    def test_slots(self, split: str) -> int | None:
        """The number of slots ``split`` is scored with (``eval_slots``; a view inherits its split's), or None."""
        if split in self.eval_slots:
            return int(self.eval_slots[split])
        if split in self.views:
            return self.test_slots(self.views[split][0])
        return None

    def config(self, variant: str | None, split: str) -> dict:
        v = self.variant(variant)
        var = self.variants[v]
        cfg = dict(self.base_config)
        cfg.update(var.config)
        cfg.update(var.splits.get(split, {}))
        cfg["split"] = split
        return _jsonable(cfg)

    def size(self, profile: str, split: str, variant: str | None = None) -> int:
        names = self.split_names(profile, variant)
        if split not in names:
            raise DatasetError(f"unknown split {split!r} of {self.name!r} ({profile}); valid splits: {names}")
        return int(self.sizes[profile][split])


def _discover() -> None:
    import importlib

    importlib.import_module(f"{__package__}._discover")  # imports every generator module once


def _render_module(spec: DatasetSpec, meta: Any) -> Any:
    return getattr(spec.render, "__module__", None)


# a dataset is owned by the module of its render function: another module's spec under a taken name is
# refused (two generator files calling themselves "tetrominoes"), the owner may register it again
_DATASETS: Registry[DatasetSpec] = Registry("dataset", DatasetError, discover=_discover, owner=_render_module)
_REGISTRY = _DATASETS.entries  # the table itself (tests patch it)


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Register ``spec`` under ``spec.name``; a name another module registered is refused unless ``replace``."""
    check_name(spec.name)
    for v in spec.variants:
        check_name(v, f"variant name of {spec.name!r}")
    for split in {s for sizes in spec.sizes.values() for s in sizes} | set(spec.views):
        check_name(split, f"split name of {spec.name!r}")
    if spec.kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {spec.kind!r}")
    if spec.default_variant not in spec.variants:
        raise ValueError(f"default variant {spec.default_variant!r} not among {list(spec.variants)}")
    for p in PROFILES:
        if p not in spec.sizes:
            raise ValueError(f"dataset {spec.name!r} gives no sizes for profile {p!r}")
    tests = {s for sizes in spec.sizes.values() for s in sizes if s.startswith("test")} | set(spec.views)
    for split, k in dict(spec.eval_slots).items():
        if split not in tests:
            raise ValueError(
                f"dataset {spec.name!r}: eval_slots names {split!r}, which is not one of its test "
                f"splits or views {sorted(tests)}"
            )
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(
                f"dataset {spec.name!r}: eval_slots[{split!r}] must be a positive integer (the "
                f"number of slots it is scored with), got {k!r}"
            )
    return _DATASETS.add(spec.name, spec, replace=replace)


def registry() -> dict[str, DatasetSpec]:
    return _DATASETS.as_dict()


def get_spec(name: str) -> DatasetSpec:
    return _DATASETS.get(name)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise DatasetError(f"unknown profile {profile!r}; valid profiles: {list(PROFILES)}")
    return profile


# --------------------------------------------------------------------------------------- seeds


def sample_seed(name: str, seed_key: str, version: str, split: str, index: int) -> int:
    """The seed of one sample: a 64-bit hash of its coordinates (profile-independent)."""
    major = str(version).split(".")[0]
    h = hashlib.sha256(f"ocbench|{name}|{seed_key}|v{major}|{split}|{int(index)}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def sample_seeds(spec: DatasetSpec, variant: str | None, split: str, indices: Iterable[int]) -> np.ndarray:
    v = spec.variant(variant)
    key = spec.variants[v].seed_key or v
    # a split may borrow another split's seeds (same scenes, other rendering), e.g. colours8 test sets
    base_split = spec.config(v, split).get("seed_split", split)
    return np.array([sample_seed(spec.name, key, spec.version, base_split, i) for i in indices], dtype=np.uint64)


def render_samples(name: str, indices: Iterable[int], split: str = "test", variant: str | None = None) -> dict:
    """Render samples ``indices`` of a split alone (the same bytes as in the stored split)."""
    spec = get_spec(name)
    idx = list(indices)
    out = spec.render(spec.config(variant, split), sample_seeds(spec, variant, split, idx))
    _check_batch(spec, out, len(idx))
    return out


def _check_batch(spec: DatasetSpec, out: dict, n: int) -> None:
    for key in ("video", "masks", "objects/n_objects"):
        if key not in out:
            raise RuntimeError(f"generator {spec.name!r} returned no {key!r}")
    v, m = out["video"], out["masks"]
    if v.dtype != np.uint8 or v.ndim != 5 or v.shape[0] != n:
        raise RuntimeError(f"{spec.name}: video must be uint8 [n,T,H,W,C], got {v.dtype} {v.shape}")
    if m.ndim != 4 or m.shape != v.shape[:4] or not np.issubdtype(m.dtype, np.integer):
        raise RuntimeError(f"{spec.name}: masks must be integer [n,T,H,W], got {m.dtype} {m.shape}")
    for k, a in out.items():
        if a.shape[0] != n:
            raise RuntimeError(f"{spec.name}: {k} has {a.shape[0]} rows for {n} samples")


# ------------------------------------------------------------------------------------ storage


def data_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ocbench" / "datasets"


def split_dir(
    name: str,
    split: str,
    variant: str | None = None,
    profile: str = DEFAULT_PROFILE,
    root: str | os.PathLike | None = None,
) -> Path:
    spec = get_spec(name)
    v = spec.variant(variant)
    check_profile(profile)
    return data_root(root) / spec.name / v / f"v{spec.version}" / profile / split


def _file_name(key: str) -> str:
    return key.replace("/", ".") + ".npy"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def _regen_command(name: str, variant: str, profile: str) -> str:
    return f"python -m benchmark generate {name} --variant {variant} --profile {profile} --force"


def _expected_layout(spec: DatasetSpec, variant: str, split: str, cfg: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape of one sample, dtype str) that every split of (spec, variant, split, cfg) holds.

    Rendered from sample 0 alone (cheap) and cached, so neither writing nor verifying a split has to
    trust the first chunk or the manifest for the layout.
    """
    ck = (spec.name, spec.version, variant, split, json.dumps(cfg, sort_keys=True, default=str), spec.render)
    if ck not in _LAYOUTS:
        out = spec.render(cfg, sample_seeds(spec, variant, split, [0]))
        _check_batch(spec, out, 1)
        _LAYOUTS[ck] = {k: (tuple(int(s) for s in a.shape[1:]), np.dtype(a.dtype).str) for k, a in out.items()}
    return _LAYOUTS[ck]


_LAYOUTS: dict[tuple, dict] = {}


def _render_chunk(args: tuple) -> tuple[int, int, str]:
    """Worker: render samples [lo, hi) and write them into the memmaps of ``tmp``."""
    name, variant, split, cfg, lo, hi, tmp, layout = args
    spec = get_spec(name)
    out = spec.render(cfg, sample_seeds(spec, variant, split, range(lo, hi)))
    _check_batch(spec, out, hi - lo)
    if set(out) != set(layout):
        raise RuntimeError(f"{name}: chunk [{lo},{hi}) has arrays {sorted(out)}, sample 0 alone has {sorted(layout)}")
    for key, (shape, dtype) in layout.items():
        a = out[key]
        if tuple(a.shape[1:]) != tuple(shape[1:]):
            raise RuntimeError(f"{name}: {key} shape {a.shape[1:]} differs from sample 0's {tuple(shape[1:])}")
        mm = np.load(Path(tmp) / _file_name(key), mmap_mode="r+")
        mm[lo:hi] = a.astype(dtype, copy=False)
        mm.flush()
        del mm
    return lo, hi, ""


# ------------------------------------------------------------------ full disks


def _disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _no_space(folder: Path, what: str, need: int, cause: str = "") -> DatasetError:
    free = _free_bytes(folder)
    have = f"{_mb(free)} free" if free is not None else "free space unknown"
    return DatasetError(
        f"no space left in {folder} to write {what} (needs about {_mb(need)}, {have}{cause}); "
        f"nothing was kept: free some space or choose another data root "
        f"(--data-root or ${ENV_ROOT})"
    )


def _write_split(
    spec: DatasetSpec,
    v: str,
    profile: str,
    split: str,
    n: int,
    cfg: dict,
    tmp: Path,
    layout: dict,
    workers: int,
    progress: Callable[[int, int], None] | None,
    t0: float,
) -> None:
    """Render every sample into reserved memmaps in ``tmp``, then hash them and write the manifest."""
    shapes = {k: ((n,) + shape, dtype) for k, (shape, dtype) in layout.items()}
    for key, (shape, dtype) in shapes.items():
        mm = np.lib.format.open_memmap(tmp / _file_name(key), mode="w+", dtype=np.dtype(dtype), shape=shape)
        del mm
        _reserve(tmp / _file_name(key))
    tasks = [
        (spec.name, v, split, cfg, lo, min(n, lo + spec.chunk), str(tmp), shapes) for lo in range(0, n, spec.chunk)
    ]
    done = 0
    if progress:
        progress(done, n)

    def chunk_done(lo: int, hi: int) -> None:
        nonlocal done
        done += hi - lo
        with contextlib.suppress(OSError):
            os.utime(tmp)  # heartbeat: the sweep of another host leaves a folder touched within the hour
        if progress:
            progress(done, n)

    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for lo, hi, _ in ex.map(_render_chunk, tasks):
                chunk_done(lo, hi)
    else:
        for t in tasks:
            chunk_done(*_render_chunk(t)[:2])
    files = {}
    for key, (shape, dtype) in shapes.items():
        fn = _file_name(key)
        files[fn] = {
            "sha256": sha256_file(tmp / fn),
            "bytes": (tmp / fn).stat().st_size,
            "key": key,
            "shape": list(shape),
            "dtype": dtype,
        }
    manifest = {
        "format": FORMAT_VERSION,
        "generator": spec.name,
        "version": spec.version,
        "variant": v,
        "profile": profile,
        "split": split,
        "kind": spec.kind,
        "count": n,
        "seed_rule": SEED_RULE,
        "seed_key": spec.variants[v].seed_key or v,
        "config": cfg,
        "files": files,
        "seconds": round(time.time() - t0, 3),
    }
    # inside the temporary folder, which is swapped in whole; the shared write adds the fsync
    atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))


def generate_split(
    name: str,
    split: str,
    variant: str | None = None,
    profile: str = DEFAULT_PROFILE,
    root: str | os.PathLike | None = None,
    workers: int = 1,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate one split atomically; returns its folder. Existing verified splits are kept.

    Orphaned temporary folders of dead writers are swept first; the space the split needs is
    checked and reserved before anything is rendered; any failure removes the temporary folder and
    leaves the old split (if any) as it was; a full disk is one :class:`DatasetError`.
    """
    spec = get_spec(name)
    v = spec.variant(variant)
    n = spec.size(profile, split, v)
    final = split_dir(name, split, v, profile, root)
    parent = final.parent
    cfg = spec.config(v, split)
    if spec.check is not None:
        spec.check(profile, cfg)
    expect = {"generator": spec.name, "variant": v, "profile": profile, "split": split}
    if parent.is_dir():
        with split_lock(parent, exclusive=True):
            sweep_orphans(parent)
        if not force:
            with split_lock(parent):
                if os.path.lexists(final):
                    try:
                        verify_split(final, expect=expect)
                        return final
                    except DatasetError:
                        pass  # corrupt or stale: regenerate below
    layout = _expected_layout(spec, v, split, cfg)
    # what the split needs on disk: each .npy's data plus its header (<= 4 KiB), and the manifest
    need = sum(n * math.prod(shape) * np.dtype(dtype).itemsize + 4096 for shape, dtype in layout.values()) + (1 << 16)
    what = f"{spec.name}/{v}/{profile}/{split} ({n} samples)"
    t0 = time.time()
    tmp = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        free = _free_bytes(parent)
        if free is not None and free < need:
            raise _no_space(parent, what, need)
        tmp = _make_temp(parent, split)
        _write_split(spec, v, profile, split, n, cfg, tmp, layout, workers, progress, t0)
        with split_lock(parent, exclusive=True):
            _swap_in(tmp, final)
            tmp = None
    except BaseException as e:
        if tmp is not None:
            _remove(tmp)
        if _disk_full(e):
            raise _no_space(parent, what, need, f"; {e.strerror or e}") from e
        raise
    _VERIFIED.pop(str(final), None)
    return final


def generate(
    name: str,
    variant: str | None = None,
    profile: str = DEFAULT_PROFILE,
    root: str | os.PathLike | None = None,
    workers: int = 1,
    force: bool = False,
    splits: Iterable[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Path]:
    """Generate every split of (dataset, variant, profile)."""
    spec = get_spec(name)
    v = spec.variant(variant)
    names = list(splits) if splits is not None else spec.split_names(profile, v)
    out = {}
    for s in names:
        cb = (lambda d, n, s=s: progress(s, d, n)) if progress else None
        out[s] = generate_split(name, s, v, profile, root, workers, force, cb)
    return out


# ------------------------------------------------------------------------------- verification

_VERIFIED: dict[str, tuple] = {}


def _stamp(folder: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))


def _short(x: Any) -> str:
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _npy_header(path: Path) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) from a ``.npy`` header, without reading the data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        return tuple(shape), bool(fortran), np.dtype(dtype), f.tell()


def verify_split(folder: str | os.PathLike, expect: Mapping[str, str] | None = None) -> dict:
    """Check the manifest against the generator and every file against the manifest; return the
    manifest or raise DatasetError.

    A manifest is a file anyone can edit and the loader trusts what passes here, so every field is
    checked: generator, version, variant, profile, split, kind, seed rule and key against the registry
    (and against ``expect``, the names the caller asked for), ``count`` against the spec's size,
    ``config`` against the generator's current config, and the file list, shapes and dtypes against
    rendering sample 0 alone; each ``.npy`` header and size must agree, and the folder holds nothing
    else. Only the sha256 pass reads the arrays, once per change of the folder (cached on its stamp).
    Call it under :func:`split_lock` when a writer may be swapping the split.
    """
    folder = Path(folder)
    mf = folder / "manifest.json"
    exp = dict(expect or {})
    if not mf.is_file():
        raise DatasetError(f"{folder} has no manifest.json: the split is missing or was never finished")

    def cmd() -> str:
        names = [
            exp.get(k, manifest.get(k) if isinstance(manifest, dict) else None)
            for k in ("generator", "variant", "profile")
        ]
        if all(isinstance(x, str) and _NAME_RE.fullmatch(x) for x in names) and names[2] in PROFILES:
            return _regen_command(*names)
        return f"delete {folder} and regenerate it"

    def tamper(why: str) -> DatasetError:
        return DatasetError(
            f"{mf} disagrees with its split or its generator: {why} (tampered or corrupt); regenerate with: {cmd()}"
        )

    manifest: Any = None
    try:
        if mf.stat().st_size > _MANIFEST_MAX_BYTES:
            raise ValueError(f"{mf.stat().st_size} bytes, more than any manifest")
        manifest = json.loads(mf.read_text())
    except (ValueError, OSError, RecursionError) as e:
        raise DatasetError(f"{mf} is corrupt ({_short(str(e))}); delete {folder} and regenerate it") from e
    if not isinstance(manifest, dict):
        manifest = None
        raise tamper("it is not a JSON object")
    if set(manifest) != _MANIFEST_KEYS:
        raise tamper(
            f"fields missing {sorted(_MANIFEST_KEYS - set(manifest))}, "
            f"unexpected {_short(sorted(map(str, set(manifest) - _MANIFEST_KEYS)))}"
        )
    for k in ("generator", "variant", "profile", "split"):
        if not isinstance(manifest[k], str):
            raise tamper(f"{k} is {_short(manifest[k])}, not a name")
        if k in exp and manifest[k] != exp[k]:
            raise tamper(f"{k} is {_short(manifest[k])}, the folder holds {exp[k]!r}")
    name, v, profile, split = (manifest[k] for k in ("generator", "variant", "profile", "split"))
    try:
        spec = get_spec(name)
        spec.variant(v)
        size = spec.size(profile, split, v)
    except DatasetError as e:
        raise tamper(str(e).split(";")[0]) from None
    checks = [
        ("format", FORMAT_VERSION),
        ("version", spec.version),
        ("kind", spec.kind),
        ("count", size),
        ("seed_rule", SEED_RULE),
        ("seed_key", spec.variants[v].seed_key or v),
    ]
    for k, want in checks:
        if manifest[k] != want or type(manifest[k]) is not type(want):
            raise tamper(f"{k} is {_short(manifest[k])}, the generator says {want!r}")
    sec = manifest["seconds"]
    if not isinstance(sec, (int, float)) or isinstance(sec, bool) or not math.isfinite(sec) or sec < 0:
        raise tamper(f"seconds is {_short(sec)}")
    if not isinstance(manifest["config"], dict):
        raise tamper(f"config is {_short(manifest['config'])}, not a mapping")
    cfg = spec.config(v, split)
    check_config(manifest, cfg, folder)
    layout = _expected_layout(spec, v, split, cfg)
    want_files = {_file_name(k): k for k in layout}
    files = manifest["files"]
    if not isinstance(files, dict) or set(files) != set(want_files):
        listed = sorted(map(str, files)) if isinstance(files, dict) else files
        raise tamper(f"files lists {_short(listed)}, the generator writes {sorted(want_files)}")
    on_disk = {p.name for p in folder.iterdir()}
    extra = sorted(on_disk - set(want_files) - {"manifest.json"})
    if extra:
        raise tamper(f"{folder} also holds {_short(extra)}, which no split has")
    for fn, key in want_files.items():
        p = folder / fn
        if not os.path.lexists(p):
            raise DatasetError(f"{p} is missing; regenerate with: {cmd()}")
        if p.is_symlink() or not p.is_file():
            raise tamper(f"{fn} is not a regular file")
        info = files[fn]
        shape, dtype = (size,) + layout[key][0], layout[key][1]
        if not isinstance(info, dict) or set(info) != _FILE_KEYS:
            raise tamper(f"the entry of {fn} is {_short(info)}")
        if info["key"] != key or info["shape"] != list(shape) or info["dtype"] != dtype:
            raise tamper(
                f"{fn} is listed as {_short(info['key'])} {_short(info['shape'])} {_short(info['dtype'])}, "
                f"the generator writes {key!r} {list(shape)} {dtype!r}"
            )
        if not isinstance(info["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", info["sha256"]):
            raise tamper(f"the sha256 of {fn} is {_short(info['sha256'])}")
        actual = p.stat().st_size
        if actual != info["bytes"]:
            raise DatasetError(
                f"{p} has {actual} bytes, manifest says {_short(info['bytes'])} "
                f"(truncated or replaced); regenerate with: {cmd()}"
            )
        try:
            h_shape, fortran, h_dtype, offset = _npy_header(p)
        except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, TokenError, ...
            raise tamper(f"{fn} has no valid .npy header ({_short(str(e))})") from None
        if h_shape != shape or fortran or h_dtype.str != dtype or h_dtype.hasobject:
            raise tamper(
                f"the header of {fn} says {h_dtype.str} {list(h_shape)}"
                f"{' (Fortran order)' if fortran else ''}, the manifest {dtype!r} {list(shape)}"
            )
        if offset + math.prod(shape) * h_dtype.itemsize != actual:
            raise tamper(f"{fn} has {actual} bytes, its header needs {offset + math.prod(shape) * h_dtype.itemsize}")
    stamp = _stamp(folder)
    if _VERIFIED.get(str(folder)) == stamp:
        return manifest
    for fn in want_files:
        p = folder / fn
        if sha256_file(p) != files[fn]["sha256"]:
            raise DatasetError(f"{p} does not match its sha256 in {mf} (tampered or corrupt); regenerate with: {cmd()}")
    _VERIFIED[str(folder)] = stamp
    return manifest


def check_config(manifest: Mapping, config: Mapping, folder: Path) -> None:
    """A split made from another config (an older generator, another MNIST copy) is stale."""
    if manifest.get("config") != config:
        old, new = manifest.get("config") or {}, config
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise DatasetError(
            f"{folder} was generated with a different config (keys {_short(diff)}); regenerate with: "
            f"{_regen_command(manifest['generator'], manifest['variant'], manifest['profile'])}"
        )


def manifest_hash(manifest: Mapping) -> str:
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()[:16]


def status(
    name: str, variant: str | None = None, profile: str = DEFAULT_PROFILE, root: str | os.PathLike | None = None
) -> dict[str, str]:
    """split -> 'verified' | 'missing' | 'corrupt: ...' (any manifest field that disagrees is corrupt)."""
    spec = get_spec(name)
    v = spec.variant(variant)
    out = {}
    for s in spec.split_names(profile, v):
        d = split_dir(name, s, v, profile, root)
        with split_lock(d.parent):
            if not os.path.lexists(d):
                out[s] = "missing"
                continue
            try:
                verify_split(d, expect={"generator": spec.name, "variant": v, "profile": profile, "split": s})
                out[s] = "verified"
            except DatasetError as e:
                out[s] = f"corrupt: {e}"
    return out
