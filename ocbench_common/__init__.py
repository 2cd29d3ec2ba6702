"""Blocks every ocbench package shares: the safe-name rule, the atomic file write, the generic registry.

A leaf: it imports nothing from the project, so ``generators``, ``metrics``, ``baselines`` and
``benchmark`` may all import it without breaking the one-way arrows of DESIGN.md ("Layout").
``leaderboard`` stays standalone and does not use it.
"""

from .files import atomic_write, atomic_write_bytes, atomic_write_text
from .names import NAME_PATTERN, check_name, is_safe_name
from .registry import Registry

__all__ = [
    "NAME_PATTERN",
    "Registry",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_name",
    "is_safe_name",
]
