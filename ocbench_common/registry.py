"""A small generic registry: what ``generators`` (datasets) and ``baselines`` (methods) register into.

One place for the rules both share: every name is a safe name (:mod:`ocbench_common.names`); a name taken
by one owner (a module, a plugin file) is refused to another unless the caller says ``replace=True`` (two
dataset files that both call themselves ``tetrominoes`` are a bug, not an override), while the owner itself
may register again (a reload, a test adjusting its own toy); a lazy discovery callback (import every
module of the package) runs once, on the first read; reads fail with ``unknown <what> 'x'; valid <whats>:
[...]``; ``snapshot``/``restore`` give the all-or-nothing of plugin loading.

``entries`` and ``meta`` are plain dicts kept for the registry's lifetime (never rebound), so a package may
expose them as its module-level tables and tests may patch them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .names import check_name

T = TypeVar("T")


def _module_of(value: Any, meta: Any) -> Any:
    return getattr(value, "__module__", None)


class Registry(Generic[T]):
    """name -> registered object, with optional metadata per name (e.g. where a method came from).

    ``what``: the singular noun of error messages ("dataset"); ``error``: the exception class raised;
    ``discover``: called once before the first read; ``owner(value, meta)``: who registers an entry (two
    different owners collide), by default the value's ``__module__``.
    """

    def __init__(
        self,
        what: str,
        error: type[Exception],
        *,
        discover: Callable[[], None] | None = None,
        owner: Callable[[T, Any], Any] = _module_of,
        plural: str | None = None,
    ):
        self.what = what
        self.plural = plural or f"{what}s"
        self.error = error
        self.entries: dict[str, T] = {}
        self.meta: dict[str, Any] = {}
        self._discover = discover
        self._owner = owner
        self.discovered = discover is None

    # ------------------------------------------------------------------------------------ writing

    def check(self, name: Any, what: str | None = None) -> str:
        """``name`` if it is safe, else ``error`` (``what`` names it in the message, e.g. "variant name")."""
        return check_name(name, what or f"{self.what} name", self.error)

    def owner(self, name: str) -> Any:
        """Who registered ``name`` (see the class docstring)."""
        return self._owner(self.entries[name], self.meta.get(name))

    def add(self, name: str, value: T, meta: Any = None, *, replace: bool = False) -> T:
        """Register ``value`` under ``name``; another owner's name is refused unless ``replace``."""
        self.check(name)
        if name in self.entries and not replace:
            held, new = self.owner(name), self._owner(value, meta)
            if held != new:
                raise self.error(
                    f"{self.what} {name!r} is already registered by {held}; {new} cannot take "
                    f"the name: rename one of them, or replace it explicitly (replace=True)"
                )
        self.entries[name] = value
        self.meta[name] = meta
        return value

    def snapshot(self) -> tuple[dict[str, T], dict[str, Any]]:
        """Copies of the entries and their metadata, for :meth:`restore`."""
        return dict(self.entries), dict(self.meta)

    def restore(self, snapshot: tuple[dict[str, T], dict[str, Any]]) -> None:
        """Put back what :meth:`snapshot` saw (in place: the dicts stay the same objects)."""
        entries, meta = snapshot
        self.entries.clear()
        self.entries.update(entries)
        self.meta.clear()
        self.meta.update(meta)

    # ------------------------------------------------------------------------------------ reading

    def discover(self) -> None:
        """Run the discovery callback once (again after it raised: a half import must not pass as done)."""
        if self.discovered:
            return
        self.discovered = True  # before the call: the modules it imports register into this registry
        try:
            self._discover()
        except BaseException:
            self.discovered = False
            raise

    def get(self, name: str) -> T:
        self.discover()
        if name not in self.entries:
            raise self.error(f"unknown {self.what} {name!r}; valid {self.plural}: {sorted(self.entries)}")
        return self.entries[name]

    def as_dict(self) -> dict[str, T]:
        """A copy of every entry, after discovery."""
        self.discover()
        return dict(self.entries)

    # the dunders read the raw table (no discovery): registration code uses them
    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)
