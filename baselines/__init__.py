"""Registered methods: the method contract (``base``), shared nn blocks and trainer, one module per method."""

from .base import (
    DatasetInfo,
    FitContext,
    Method,
    MethodError,
    Prediction,
    config_hash,
    get_method,
    load_plugin,
    methods,
    register_method,
)

__all__ = [
    "DatasetInfo",
    "FitContext",
    "Method",
    "MethodError",
    "Prediction",
    "config_hash",
    "get_method",
    "load_plugin",
    "methods",
    "register_method",
]
