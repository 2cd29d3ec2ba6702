"""Convention version string of every metric; the results store records it beside each value.

Bump the number after ``/`` whenever a convention changes the values a metric returns
(counted points, matching, aggregation, precision); the rest of the string says what it is.
"""
from __future__ import annotations

VERSIONS: dict[str, str] = {
    # §1: one contingency table per sample (video: over T·H·W), float64, degenerate -> 1.0 (sklearn)
    "ari": "ari/1 all-pixels per-sample(video=T·H·W) bincount float64 degenerate=1",
    "fg_ari": "fg_ari/1 gt-foreground-pixels per-sample(video=T·H·W) bincount float64 degenerate=1",
    "ari_frame": "ari_frame/1 mean-of-per-frame all-pixels float64 degenerate=1",
    "fg_ari_frame": "fg_ari_frame/1 mean-of-per-frame gt-foreground-pixels float64 degenerate=1",
}


def version(name: str) -> str:
    """The convention string of metric ``name`` (KeyError naming the known metrics otherwise)."""
    try:
        return VERSIONS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(VERSIONS)}") from None
