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
sha256 of every file). It is written into a temporary sibling folder and renamed into place.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

PROFILES = ("smoke", "quick", "paper")
DEFAULT_PROFILE = "quick"
ENV_ROOT = "OCBENCH_DATA"
FORMAT_VERSION = 1


class DatasetError(Exception):
    """Unknown names, missing or corrupt splits: always with a message that says what to do."""


# Every name that becomes part of a path (dataset, variant, split, view, profile); the same pattern is
# ``baselines.base.NAME_PATTERN`` (a test keeps them equal: neither package may import the other).
NAME_PATTERN = r"(?!.*__)[a-z0-9_][a-z0-9_.-]{0,47}"
_NAME_RE = re.compile(NAME_PATTERN)


def check_name(value: Any, what: str = "dataset name") -> str:
    """``value`` if it is a safe name (:data:`NAME_PATTERN`), else :class:`DatasetError` saying why."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise DatasetError(f"invalid {what} {value!r}: names must match {NAME_PATTERN} (lower-case letters, "
                           f"digits, '_', '.', '-'; no '/', no leading '.', no '__', at most 48 characters)")
    return value


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
            raise DatasetError(
                f"unknown split {split!r} of {self.name!r} ({profile}); valid splits: {names}"
            )
        return int(self.sizes[profile][split])


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
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
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, DatasetSpec]:
    from . import _discover  # noqa: F401  (imports every generator module once)

    return dict(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    reg = registry()
    if name not in reg:
        raise DatasetError(f"unknown dataset {name!r}; valid datasets: {sorted(reg)}")
    return reg[name]


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


def split_dir(name: str, split: str, variant: str | None = None, profile: str = DEFAULT_PROFILE,
              root: str | os.PathLike | None = None) -> Path:
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


def _render_chunk(args: tuple) -> tuple[int, int, str]:
    """Worker: render samples [lo, hi) and write them into the memmaps of ``tmp``."""
    name, variant, split, cfg, lo, hi, tmp, layout = args
    spec = get_spec(name)
    out = spec.render(cfg, sample_seeds(spec, variant, split, range(lo, hi)))
    _check_batch(spec, out, hi - lo)
    for key, (shape, dtype) in layout.items():
        if key not in out:
            raise RuntimeError(f"{name}: chunk [{lo},{hi}) lacks {key!r}")
        a = out[key]
        if tuple(a.shape[1:]) != tuple(shape[1:]):
            raise RuntimeError(f"{name}: {key} shape {a.shape[1:]} differs from first chunk {shape[1:]}")
        mm = np.load(Path(tmp) / _file_name(key), mmap_mode="r+")
        mm[lo:hi] = a.astype(dtype, copy=False)
        mm.flush()
        del mm
    return lo, hi, ""


def generate_split(name: str, split: str, variant: str | None = None, profile: str = DEFAULT_PROFILE,
                   root: str | os.PathLike | None = None, workers: int = 1, force: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate one split atomically; returns its folder. Existing verified splits are kept."""
    spec = get_spec(name)
    v = spec.variant(variant)
    n = spec.size(profile, split, v)
    final = split_dir(name, split, v, profile, root)
    cfg = spec.config(v, split)
    if spec.check is not None:
        spec.check(profile, cfg)
    if final.exists() and not force:
        try:
            if verify_split(final)["config"] == cfg:
                return final
        except DatasetError:
            pass  # corrupt or stale: regenerate below
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=final.parent))
    t0 = time.time()
    try:
        # the first chunk in this process fixes the layout (shapes, dtypes) of every array
        first_hi = min(n, spec.chunk)
        first = spec.render(cfg, sample_seeds(spec, v, split, range(0, first_hi)))
        _check_batch(spec, first, first_hi)
        layout = {k: ((n,) + tuple(a.shape[1:]), a.dtype) for k, a in first.items()}
        for key, (shape, dtype) in layout.items():
            mm = np.lib.format.open_memmap(tmp / _file_name(key), mode="w+", dtype=dtype, shape=shape)
            mm[:first_hi] = first[key]
            mm.flush()
            del mm
        del first
        tasks = [(spec.name, v, split, cfg, lo, min(n, lo + spec.chunk), str(tmp),
                  {k: (s, np.dtype(d).str) for k, (s, d) in layout.items()})
                 for lo in range(first_hi, n, spec.chunk)]
        done = first_hi
        if progress:
            progress(done, n)
        if workers > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=workers) as ex:
                for lo, hi, _ in ex.map(_render_chunk, tasks):
                    done += hi - lo
                    if progress:
                        progress(done, n)
        else:
            for t in tasks:
                lo, hi, _ = _render_chunk(t)
                done += hi - lo
                if progress:
                    progress(done, n)
        files = {}
        for key in layout:
            fn = _file_name(key)
            files[fn] = {"sha256": sha256_file(tmp / fn), "bytes": (tmp / fn).stat().st_size, "key": key,
                         "shape": list(layout[key][0]), "dtype": np.dtype(layout[key][1]).str}
        manifest = {
            "format": FORMAT_VERSION,
            "generator": spec.name,
            "version": spec.version,
            "variant": v,
            "profile": profile,
            "split": split,
            "kind": spec.kind,
            "count": n,
            "seed_rule": "sha256('ocbench|name|seed_key|v<major>|split|index')[:8] little-endian",
            "seed_key": spec.variants[v].seed_key or v,
            "config": cfg,
            "files": files,
            "seconds": round(time.time() - t0, 3),
        }
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():
            old = final.with_name(final.name + f".old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _VERIFIED.pop(str(final), None)
    return final


def generate(name: str, variant: str | None = None, profile: str = DEFAULT_PROFILE,
             root: str | os.PathLike | None = None, workers: int = 1, force: bool = False,
             splits: Iterable[str] | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Path]:
    """Generate every split of (dataset, variant, profile)."""
    spec = get_spec(name)
    v = spec.variant(variant)
    names = list(splits) if splits is not None else spec.split_names(profile, v)
    out = {}
    for s in names:
        cb = (lambda d, n, s=s: progress(s, d, n)) if progress else None
        out[s] = generate_split(name, s, v, profile, root, workers, force, cb)
    return out


_VERIFIED: dict[str, tuple] = {}


def _stamp(folder: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))


def verify_split(folder: str | os.PathLike) -> dict:
    """Check every file against the manifest; return the manifest or raise DatasetError."""
    folder = Path(folder)
    mf = folder / "manifest.json"
    if not mf.exists():
        raise DatasetError(f"{folder} has no manifest.json: the split is missing or was never finished")
    try:
        manifest = json.loads(mf.read_text())
        name, variant, profile = manifest["generator"], manifest["variant"], manifest["profile"]
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{mf} is corrupt ({e}); delete {folder} and regenerate it") from e
    cmd = _regen_command(name, variant, profile)
    stamp = _stamp(folder)
    if _VERIFIED.get(str(folder)) == stamp:
        return manifest
    for fn, info in files.items():
        p = folder / fn
        if not p.exists():
            raise DatasetError(f"{p} is missing; regenerate with: {cmd}")
        if p.stat().st_size != info["bytes"]:
            raise DatasetError(f"{p} has {p.stat().st_size} bytes, manifest says {info['bytes']} "
                               f"(truncated or replaced); regenerate with: {cmd}")
        if sha256_file(p) != info["sha256"]:
            raise DatasetError(f"{p} does not match its sha256 in {mf} (tampered or corrupt); "
                               f"regenerate with: {cmd}")
    _VERIFIED[str(folder)] = stamp
    return manifest


def check_config(manifest: Mapping, config: Mapping, folder: Path) -> None:
    """A split made from another config (an older generator, another MNIST copy) is stale."""
    if manifest.get("config") != config:
        old, new = manifest.get("config") or {}, config
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise DatasetError(
            f"{folder} was generated with a different config (keys {diff}); regenerate with: "
            f"{_regen_command(manifest['generator'], manifest['variant'], manifest['profile'])}")


def manifest_hash(manifest: Mapping) -> str:
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()[:16]


def status(name: str, variant: str | None = None, profile: str = DEFAULT_PROFILE,
           root: str | os.PathLike | None = None) -> dict[str, str]:
    """split -> 'verified' | 'missing' | 'corrupt: ...'"""
    spec = get_spec(name)
    v = spec.variant(variant)
    out = {}
    for s in spec.split_names(profile, v):
        d = split_dir(name, s, v, profile, root)
        if not d.exists():
            out[s] = "missing"
            continue
        try:
            check_config(verify_split(d), spec.config(v, s), d)
            out[s] = "verified"
        except DatasetError as e:
            out[s] = f"corrupt: {e}"
    return out
