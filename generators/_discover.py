"""Import every generator module of the package once, so that each registers its datasets."""

import importlib
import pkgutil

from . import __path__ as _pkg_path

for _m in pkgutil.iter_modules(_pkg_path):
    if not _m.name.startswith("_") and _m.name not in ("core", "loader", "show"):
        importlib.import_module(f"{__package__}.{_m.name}")
