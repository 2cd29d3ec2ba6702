"""Seeded dataset generators, fixed checksummed splits and the one loader.

``generators.load(name, split, variant=..., profile=...)`` returns a verified split.
Each module of this package registers its datasets with :func:`register_dataset`.
"""

from .core import (
    DEFAULT_PROFILE,
    PROFILES,
    DatasetError,
    DatasetSpec,
    Variant,
    data_root,
    generate,
    generate_split,
    get_spec,
    register_dataset,
    registry,
    render_samples,
    sample_seed,
    split_dir,
    status,
    verify_split,
)
from .loader import DeviceSplit, SplitDataset, load

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "DatasetError",
    "DatasetSpec",
    "Variant",
    "data_root",
    "generate",
    "generate_split",
    "get_spec",
    "register_dataset",
    "registry",
    "render_samples",
    "sample_seed",
    "split_dir",
    "status",
    "verify_split",
    "load",
    "SplitDataset",
    "DeviceSplit",
]
