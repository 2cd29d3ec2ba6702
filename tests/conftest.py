"""Test-wide settings: one torch thread per test process (pytest-xdist runs one process per core)."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
