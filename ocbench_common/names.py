"""THE pattern of every name that becomes part of a path (dataset, variant, split, view, method, profile).

Lower-case letters, digits, ``_ . -``; no ``/``, no leading dot, no ``__`` (the run id's separator), at most
48 characters. Each registry raises its own error class (``DatasetError``, ``MethodError``) with the same text.
"""

from __future__ import annotations

import re
from typing import Any

NAME_PATTERN = r"(?!.*__)[a-z0-9_][a-z0-9_.-]{0,47}"
NAME_RE = re.compile(NAME_PATTERN)
NAME_RULES = "lower-case letters, digits, '_', '.', '-'; no '/', no leading '.', no '__', at most 48 characters"


def is_safe_name(value: Any) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def check_name(value: Any, what: str = "name", error: type[Exception] = ValueError) -> str:
    """``value`` if it is a safe name (:data:`NAME_PATTERN`), else ``error`` saying what is at fault and why."""
    if not is_safe_name(value):
        raise error(f"invalid {what} {value!r}: names must match {NAME_PATTERN} ({NAME_RULES})")
    return value
