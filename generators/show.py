"""A PNG grid of samples with their masks overlaid (videos: a few frames per row)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _palette(k: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    cols = (np.array([cmap(i % 20)[:3] for i in range(max(k, 1))]) * 255).astype(np.float32)
    return cols


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """frame [H,W,C] uint8, mask [H,W] ids -> [H,W,3] uint8 with each object tinted and outlined."""
    rgb = frame.astype(np.float32)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, -1)
    k = int(mask.max())
    pal = _palette(k + 1)
    out = rgb.copy()
    fg = mask > 0
    out[fg] = (1 - alpha) * rgb[fg] + alpha * pal[mask[fg] - 1]
    edge = np.zeros_like(fg)
    edge[:-1] |= mask[:-1] != mask[1:]
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    out[edge & fg] = pal[mask[edge & fg] - 1]
    return out.clip(0, 255).astype(np.uint8)


def save_grid(ds, out: str | Path, n: int = 8, frames: int = 6, scale: int = 3) -> Path:
    """Rows = samples; each row shows the frames, then the same frames with masks overlaid."""
    from PIL import Image

    n = min(n, len(ds))
    T = ds.shape[0]
    ts = np.unique(np.linspace(0, T - 1, min(frames, T)).round().astype(int))
    H, W = ds.shape[1:3]
    pad = 2
    rows = []
    for i in range(n):
        v = np.asarray(ds.video[i])
        m = np.asarray(ds.masks[i])
        tiles = []
        for t in ts:
            f = v[t] if v.shape[-1] == 3 else np.repeat(v[t], 3, -1)
            tiles.append(f)
        for t in ts:
            tiles.append(overlay(v[t], m[t]))
        row = np.full((H, len(tiles) * (W + pad) - pad, 3), 255, np.uint8)
        for j, tile in enumerate(tiles):
            row[:, j * (W + pad) : j * (W + pad) + W] = tile
        rows.append(row)
    grid = np.full((n * (H + pad) - pad, rows[0].shape[1], 3), 255, np.uint8)
    for i, r in enumerate(rows):
        grid[i * (H + pad) : i * (H + pad) + H] = r
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
