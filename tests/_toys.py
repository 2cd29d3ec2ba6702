"""Tiny toy datasets the harness tests share: one coloured 3x3 square per 8x8 image, placed by the seed.

Render functions live at module level so a unit's own process can unpickle the spec by reference.
"""

import numpy as np

from generators.core import DatasetSpec, Variant, register_dataset


def _square(seeds, colour):
    n = len(seeds)
    video = np.zeros((n, 1, 8, 8, 3), np.uint8)
    masks = np.zeros((n, 1, 8, 8), np.uint8)
    for i, s in enumerate(seeds):
        r, c = np.random.default_rng(int(s)).integers(0, 5, 2)
        video[i, 0, r : r + 3, c : c + 3] = colour
        masks[i, 0, r : r + 3, c : c + 3] = 1
    return {"video": video, "masks": masks, "objects/n_objects": np.ones(n, np.int16)}


def red_square(cfg, seeds):
    """One red square (id 1)."""
    return _square(seeds, (255, 0, 0))


def green_square(cfg, seeds):
    """One green square (id 1)."""
    return _square(seeds, (0, 255, 0))


def register_square_toy(name: str, render, n_test: int) -> DatasetSpec:
    """An image dataset of ``render``'s squares: 4 train, 2 val and ``n_test`` test samples on every profile."""
    return register_dataset(
        DatasetSpec(
            name=name,
            version="1.0.0",
            kind="image",
            base_config={},
            variants={"default": Variant()},
            default_variant="default",
            sizes={p: {"train": 4, "val": 2, "test": n_test} for p in ("smoke", "quick", "paper")},
            render=render,
        )
    )
