"""Checkpoints are data, never code: a crafted one is refused unrun, a truncated one is a clear error
naming the file, ``--force`` trains from scratch, and checkpoints stay inside the work dir."""

import errno
import functools
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from baselines.base import FitContext
from baselines.trainer import CHECKPOINT_NAME, TrainSettings, train_model
from benchmark.cli import main
from benchmark.store import ResultsStore
from tests._toys import green_square, register_square_toy
from tests.test_baselines_learned import toy_split


class Net(nn.Module):
    """A per-pixel softmax over K slots, each a learned colour: the smallest model the trainer takes."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.logits = nn.Conv2d(3, k, 1)
        self.colour = nn.Parameter(torch.rand(k, 3))

    def decompose(self, x):
        soft = self.logits(x).softmax(1)
        return torch.einsum("bkhw,kc->bchw", soft, self.colour.sigmoid()), soft

    def forward(self, x):
        return ((self.decompose(x)[0] - x) ** 2).mean()


def _train(ckdir, steps: int = 2) -> dict:
    torch.manual_seed(0)
    cfg = TrainSettings(steps=steps, batch_size=2, checkpoint_every=1, val_every=1, log_every=1)
    ctx = FitContext(device="cpu", progress=False, seed=0, checkpoint_dir=ckdir)
    return train_model(Net(), cfg, toy_split(4, size=8), None, ctx)


@functools.lru_cache(maxsize=1)
def _good_checkpoint() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        _train(Path(d))
        return (Path(d) / CHECKPOINT_NAME).read_bytes()


def test_a_checkpoint_is_tensors_and_plain_values_only(tmp_path):
    _train(tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)  # no code-running unpickler needed
    assert state["step"] == 2 and isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)


class _Crafted:
    """Unpickling this opens (so creates) a file: the stand-in for any code a checkpoint could run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code_ran"
    state = {
        "model": _Crafted(str(marker)),
        "optimizer": {},
        "scheduler": {},
        "rng": {},
        "step": 0,
        "curve": [],
        "seconds": 0.0,
    }
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(Exception) as e:
        _train(tmp_path)
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert type(e.value).__name__ == "CheckpointError"
    assert str(tmp_path / CHECKPOINT_NAME) in str(e.value) and "was not loaded" in str(e.value)


def test_a_checkpoint_changed_after_it_was_written_is_refused(tmp_path):
    _train(tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    state["model"]["colour"][0, 0] += 1.0  # loads fine, but is not what training wrote
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(Exception) as e:
        _train(tmp_path, steps=3)
    assert type(e.value).__name__ == "CheckpointError" and "altered" in str(e.value)
    assert str(tmp_path / CHECKPOINT_NAME) in str(e.value)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_a_truncated_or_garbled_checkpoint_is_a_clear_error_naming_it(data):
    good = _good_checkpoint()
    if data.draw(st.booleans(), label="truncate"):
        bad = good[: data.draw(st.integers(0, len(good) - 1), label="cut")]
    else:  # overwrite a random stretch with random bytes: it may still load (weights are not checksummed)
        at = data.draw(st.integers(0, len(good) - 1), label="at")
        junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")[: len(good) - at]
        bad = good[:at] + junk + good[at + len(junk) :]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / CHECKPOINT_NAME
        path.write_bytes(bad)
        try:
            info = _train(Path(d), steps=3)
        except Exception as e:
            assert type(e).__name__ == "CheckpointError", f"{type(e).__name__}: {e}"
            assert str(path) in str(e) and "--force" in str(e)
        else:
            assert len(bad) == len(good) and info["steps"] == 3


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint_and_leaves_no_debris(tmp_path, monkeypatch):
    _train(tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        Path(f).write_bytes(Path(f).read_bytes()[:100])  # half written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _train(tmp_path, steps=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


# ------------------------------------------------------------------------------ through the run


register_square_toy("_toyckpt", green_square, n_test=2)

PLUGIN = textwrap.dedent("""
    import dataclasses
    import torch
    from torch import nn
    from baselines import register_method
    from baselines.trainer import LearnedImageMethod, TrainSettings

    @dataclasses.dataclass
    class Cfg(TrainSettings):
        steps: int = 2
        batch_size: int = 2
        checkpoint_every: int = 1
        val_every: int = 1

    class Net(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.logits = nn.Conv2d(3, k, 1)
            self.colour = nn.Parameter(torch.rand(k, 3))

        def decompose(self, x):
            soft = self.logits(x).softmax(1)
            return torch.einsum("bkhw,kc->bchw", soft, self.colour.sigmoid()), soft

        def forward(self, x):
            return ((self.decompose(x)[0] - x) ** 2).mean()

    @register_method("tiny_learned", kinds={"image", "colour"}, config=Cfg)
    class TinyLearned(LearnedImageMethod):
        def build_model(self):
            return Net(self.num_slots())

        def predict(self, batch):
            p = super().predict(batch)
            p.recon = None  # keeps the test fast: no LPIPS
            return p
""")


@pytest.fixture()
def plugin(tmp_path):
    p = tmp_path / "tiny_learned.py"
    p.write_text(PLUGIN)
    return str(p)


def _run(tmp_path, plugin, *extra):
    return main(
        [
            "run",
            "--datasets",
            "_toyckpt",
            "--methods",
            "tiny_learned",
            "--profile",
            "smoke",
            "--data-root",
            str(tmp_path / "data"),
            "--results",
            str(tmp_path / "res"),
            "--plugin",
            plugin,
            "--work-dir",
            str(tmp_path / "runs"),
            "--no-leaderboard",
            "--no-progress",
            "--device",
            "cpu",
            *extra,
        ]
    )


def _record(tmp_path) -> dict:
    (rec,) = ResultsStore(tmp_path / "res").records("smoke")
    return rec


def _checkpoint(tmp_path) -> Path:
    (ck,) = (tmp_path / "runs").rglob(CHECKPOINT_NAME)
    return ck


def test_force_trains_from_scratch_instead_of_resuming_at_the_end(tmp_path, plugin, capsys):
    assert _run(tmp_path, plugin) == 0
    assert _record(tmp_path)["fit_info"]["steps"] == 2 and _checkpoint(tmp_path).exists()
    capsys.readouterr()
    assert _run(tmp_path, plugin, "--force") == 0
    info = _record(tmp_path)["fit_info"]
    assert "resumed_from_step" not in info and info["steps"] == 2
    assert "--force: removed the checkpoints in" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated", "crafted"])
def test_a_bad_checkpoint_fails_its_unit_naming_the_file_and_force_recovers(tmp_path, plugin, damage):
    assert _run(tmp_path, plugin) == 0
    ck = _checkpoint(tmp_path)
    marker = tmp_path / "code_ran"
    if damage == "truncated":
        ck.write_bytes(ck.read_bytes()[: len(ck.read_bytes()) // 2])
    else:
        torch.save({"model": _Crafted(str(marker))}, ck)
    for rec in (tmp_path / "res").rglob("*.json"):
        rec.unlink()  # the unit runs again, and resumes from its checkpoint
    assert _run(tmp_path, plugin) == 1
    rec = _record(tmp_path)
    assert not marker.exists()
    assert rec["status"] == "failed" and rec["phase"] == "fit"
    first = rec["error"].splitlines()[0]
    assert first.startswith(f"CheckpointError: checkpoint {ck} ") and "--force" in first
    assert _run(tmp_path, plugin, "--force") == 0
    assert _record(tmp_path)["status"] == "ok" and "resumed_from_step" not in _record(tmp_path)["fit_info"]


def test_checkpoints_stay_inside_the_work_dir(tmp_path, plugin):
    """A profile folder linked elsewhere is refused, not written through (nor deleted through by --force)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "smoke").symlink_to(outside, target_is_directory=True)
    assert _run(tmp_path, plugin, "--force") == 1
    rec = _record(tmp_path)
    assert rec["status"] == "failed" and "outside" in rec["error"].splitlines()[0]
    assert list(outside.iterdir()) == []
    shutil.rmtree(tmp_path / "runs")
