"""The one loader of every dataset: a verified split as a torch-usable dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .core import (
    DEFAULT_PROFILE,
    DatasetError,
    generate_split,
    get_spec,
    manifest_hash,
    split_dir,
    split_lock,
    verify_split,
)


class SplitDataset:
    """A stored split: ``len``, integer indexing (a dict of torch tensors), batching, ``to(device)``.

    Arrays are memory-mapped numpy: ``video`` uint8 [N,T,H,W,C], ``masks`` [N,T,H,W] and
    ``objects`` {field: [N,K_max,...]}. ``ds[i]`` returns {"video", "masks", "index"} as torch
    tensors plus "objects/<field>"; ``ds.to(device)`` holds the whole split on a device.
    """

    def __init__(self, folder: Path, manifest: dict, limit: int | None = None, name: str | None = None):
        self.folder = Path(folder)
        self.manifest = manifest
        self.dataset = manifest["generator"]
        self.variant = manifest["variant"]
        self.profile = manifest["profile"]
        self.split = name or manifest["split"]
        self.kind = manifest["kind"]
        self.config = manifest["config"]
        self.manifest_hash = manifest_hash(manifest)
        arrays = {
            info["key"]: np.load(self.folder / fn, mmap_mode="r", allow_pickle=False)
            for fn, info in manifest["files"].items()
        }
        n = manifest["count"] if limit is None else min(limit, manifest["count"])
        self._n = n
        self.video = arrays.pop("video")[:n]
        self.masks = arrays.pop("masks")[:n]
        self.objects = {k.split("/", 1)[1]: a[:n] for k, a in arrays.items() if k.startswith("objects/")}

    # shape facts -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, H, W, C) of one sample."""
        return tuple(int(s) for s in self.video.shape[1:])  # type: ignore[return-value]

    @property
    def max_objects(self) -> int:
        return int(self.masks.max()) if self._n else 0

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"SplitDataset({self.dataset}/{self.variant}/{self.profile}/{self.split}: {self._n} x "
            f"{self.shape}, {self.kind})"
        )

    def _index(self, i) -> np.ndarray:
        idx = np.arange(self._n)[i]
        return np.atleast_1d(idx)

    def __getitem__(self, i):
        import torch

        if isinstance(i, (int, np.integer)):
            if not -self._n <= i < self._n:
                raise IndexError(f"index {i} out of range for split of {self._n} samples")
            i = int(i) % self._n
            out = {
                "video": torch.from_numpy(np.array(self.video[i])),
                "masks": torch.from_numpy(np.array(self.masks[i]).astype(np.int64)),
                "index": torch.tensor(i),
            }
            for k, a in self.objects.items():
                out[f"objects/{k}"] = torch.from_numpy(np.array(a[i]))
            return out
        return self.batch(self._index(i))

    def batch(self, indices) -> dict:
        import torch

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        # read the memmap in ascending order (sequential I/O), return rows in the order asked for
        uniq, back = np.unique(idx, return_inverse=True)
        return {
            "video": torch.from_numpy(np.ascontiguousarray(self.video[uniq][back])),
            "masks": torch.from_numpy(self.masks[uniq][back].astype(np.int64)),
            "index": torch.from_numpy(idx),
        }

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> Iterator[dict]:
        order = np.random.default_rng(seed).permutation(self._n) if shuffle else np.arange(self._n)
        for lo in range(0, self._n, batch_size):
            sel = order[lo : lo + batch_size]
            if drop_last and len(sel) < batch_size:
                break
            yield self.batch(sel)

    def to(self, device) -> DeviceSplit:
        return DeviceSplit(self, device)

    def torch_loader(self, batch_size: int, shuffle: bool = False, **kw):
        """A ``torch.utils.data.DataLoader`` over this split (CPU path)."""
        import torch

        return torch.utils.data.DataLoader(self, batch_size=batch_size, shuffle=shuffle, **kw)


class DeviceSplit:
    """A whole split held as tensors on one device; batches are drawn there (no data loader)."""

    def __init__(self, split: SplitDataset, device):
        import torch

        self.source = split
        self.device = torch.device(device)
        self.video = torch.from_numpy(np.array(split.video)).to(self.device)
        self.masks = torch.from_numpy(np.array(split.masks)).to(self.device)
        for attr in ("dataset", "variant", "profile", "split", "kind", "config", "manifest_hash", "shape"):
            setattr(self, attr, getattr(split, attr))

    def __len__(self) -> int:
        return self.video.shape[0]

    def batch(self, indices) -> dict:
        import torch

        idx = torch.as_tensor(indices, device=self.device, dtype=torch.long)
        return {"video": self.video[idx], "masks": self.masks[idx].long(), "index": idx}

    def sample(self, batch_size: int, generator=None) -> dict:
        import torch

        idx = torch.randint(0, len(self), (batch_size,), device=self.device, generator=generator)
        return self.batch(idx)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        import torch

        n = len(self)
        if shuffle:
            g = torch.Generator(device="cpu").manual_seed(seed)
            order = torch.randperm(n, generator=g).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for lo in range(0, n, batch_size):
            sel = order[lo : lo + batch_size]
            if drop_last and len(sel) < batch_size:
                break
            yield self.batch(sel)


def load(
    name: str,
    split: str = "test",
    variant: str | None = None,
    profile: str = DEFAULT_PROFILE,
    root: str | os.PathLike | None = None,
    generate: bool = False,
    workers: int = 1,
) -> SplitDataset:
    """Load a verified split (``generate=True`` makes it first when it is missing or corrupt).

    Views such as ``protocol320`` (the first 320 test samples) resolve to their stored split. The split
    is verified and its memory maps opened under the shared :func:`~generators.core.split_lock`, so a
    split being regenerated meanwhile is seen whole, old or new.
    """
    spec = get_spec(name)
    v = spec.variant(variant)
    limit = None
    stored = split
    if split in spec.views:
        stored, limit = spec.views[split]
    spec.size(profile, stored, v)  # raises with the valid names
    folder = split_dir(name, stored, v, profile, root)
    if generate:
        generate_split(name, stored, v, profile, root, workers=workers)
    with split_lock(folder.parent):
        if not os.path.lexists(folder):
            raise DatasetError(
                f"split {name}/{v}/{profile}/{stored} is not generated (looked in {folder}); "
                f"make it with: python -m benchmark generate {name} --variant {v} --profile {profile}"
            )
        manifest = verify_split(
            folder, expect={"generator": spec.name, "variant": v, "profile": profile, "split": stored}
        )
        return SplitDataset(folder, manifest, limit=limit, name=split)
