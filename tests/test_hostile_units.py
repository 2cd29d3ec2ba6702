"""Units that exit, crash, hang or fill the disk: each runs in its own process under a wall-clock
limit, leaves a failed record saying what happened, and the grid goes on to its summary."""

import errno
import json
import os
import signal
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.cli import main
from benchmark.store import ResultsStore
from tests._toys import red_square, register_square_toy

register_square_toy("_toyhostile", red_square, n_test=4)

# ``hostile`` misbehaves as its config says; ``steady`` always works (it shows the grid went on). A
# hostile act that would take the test process with it (a signal, a hang, a patched fsync) is refused
# when fit runs in the grid's own process: there it is an ordinary exception, and the test fails cleanly.
PLUGIN = textwrap.dedent("""
    import dataclasses, errno, os, signal, subprocess, sys, time
    import numpy as np
    from baselines import Method, Prediction, register_method

    GRID_PID = {grid_pid}

    @dataclasses.dataclass
    class Cfg:
        mode: str = "good"
        code: int = 3
        notes: str = ""  # a folder for the unit's notes: its pid, its child's pid, when fit began

    class Base(Method):
        def predict(self, batch):
            v = np.asarray(batch["video"])
            return Prediction(masks=(v[..., 0] > 0).astype(np.int64))

    @register_method("steady", kinds={{"image", "colour"}}, learned=True)
    class Steady(Base):
        def fit(self, train, val, ctx):
            pass

    @register_method("hostile", kinds={{"image", "colour"}}, config=Cfg)
    class Hostile(Base):
        def fit(self, train, val, ctx):
            mode, notes = self.config.mode, self.config.notes
            if notes:
                with open(os.path.join(notes, f"fit_s{{ctx.seed}}"), "w") as f:
                    f.write(f"{{os.getpid()}} {{time.time()}}")
            if mode in ("kill", "os_exit", "sleep", "fill_disk") and os.getpid() == GRID_PID:
                raise RuntimeError("fit ran inside the grid's own process")
            if mode == "exit":
                sys.exit(self.config.code)
            if mode == "os_exit":
                os._exit(self.config.code)
            if mode == "kill":
                os.kill(os.getpid(), self.config.code)
            if mode == "sleep":  # a hang, with a child of its own that must not outlive it
                child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                with open(os.path.join(notes, f"child_s{{ctx.seed}}"), "w") as f:
                    f.write(str(child.pid))
                time.sleep(600)
            if mode == "say":
                print("said-on-stdout", flush=True)
                print("said-on-stderr", file=sys.stderr, flush=True)
                os.write(2, b"said-on-fd2\\n")  # as C code would
            if mode == "fill_disk":  # from now on every fsync of this process finds the disk full
                def full(fd):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync = full
""")


@pytest.fixture()
def plugin(tmp_path):
    p = tmp_path / "hostile_plugin.py"
    p.write_text(PLUGIN.format(grid_pid=os.getpid()))
    return str(p)


def _run(tmp_path, plugin, methods, *extra):
    return main(
        [
            "run",
            "--datasets",
            "_toyhostile",
            "--methods",
            *methods,
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


def _records(tmp_path) -> dict:
    return {(r["method"], r["seed"]): r for r in ResultsStore(tmp_path / "res").records("smoke")}


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has ended
    except FileNotFoundError:
        return True


def _wait_dead(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if _dead(pid):
            return True
        time.sleep(0.05)
    return _dead(pid)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    how=st.sampled_from(["exit", "os_exit", "kill"]),
    code=st.integers(1, 120),
    sig=st.sampled_from([signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL, signal.SIGTERM, signal.SIGBUS]),
)
def test_a_unit_that_exits_or_dies_by_a_signal_is_recorded_and_the_grid_goes_on(
    tmp_path_factory, capsys, how, code, sig
):
    tmp = tmp_path_factory.mktemp("die")
    p = tmp / "hostile_plugin.py"
    p.write_text(PLUGIN.format(grid_pid=os.getpid()))
    num = int(sig) if how == "kill" else code
    assert (
        _run(tmp, str(p), ["hostile", "steady"], "--set", f'hostile.mode="{how}"', "--set", f"hostile.code={num}") == 1
    )
    out = capsys.readouterr().out
    assert "runs: 2 planned" in out and "1 records ok, 1 failed" in out  # the summary, after the death
    recs = _records(tmp)
    bad = recs[("hostile", 0)]
    assert bad["status"] == "failed" and bad["phase"] == "fit"
    first = bad["error"].splitlines()[0]
    if how == "kill":
        assert first == f"the unit's process was killed by {signal.Signals(sig).name} during fit"
    else:
        assert first == f"the unit's process exited with code {code} during fit"
    assert recs[("steady", 0)]["status"] == "ok"


def test_a_segfault_leaves_its_python_stack_in_the_record(tmp_path, plugin, capsys):
    assert (
        _run(
            tmp_path,
            plugin,
            ["hostile", "steady"],
            "--set",
            'hostile.mode="kill"',
            "--set",
            f"hostile.code={int(signal.SIGSEGV)}",
        )
        == 1
    )
    bad = _records(tmp_path)[("hostile", 0)]
    assert bad["error"].startswith("the unit's process was killed by SIGSEGV during fit")
    assert "Fatal Python error: Segmentation fault" in bad["error"]
    assert "hostile_plugin.py" in bad["error"]  # the stack says where
    assert _records(tmp_path)[("steady", 0)]["status"] == "ok"
    assert "killed by SIGSEGV" in capsys.readouterr().err


def test_a_hanging_unit_is_killed_at_its_limit_with_everything_it_started(tmp_path, plugin, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    t0 = time.monotonic()
    assert (
        _run(
            tmp_path,
            plugin,
            ["hostile", "steady"],
            "--set",
            'hostile.mode="sleep"',
            "--set",
            f'hostile.notes="{notes}"',
            "--unit-timeout",
            "3",
        )
        == 1
    )
    assert time.monotonic() - t0 < 60
    recs = _records(tmp_path)
    bad = recs[("hostile", 0)]
    assert bad["status"] == "failed" and bad["phase"] == "fit"
    assert bad["error"].startswith("timed out after 3 s")
    assert recs[("steady", 0)]["status"] == "ok"
    unit_pid, _ = (notes / "fit_s0").read_text().split()
    child_pid = int((notes / "child_s0").read_text())
    assert _wait_dead(int(unit_pid)) and _wait_dead(child_pid), "the unit or its child is still running"
    out = capsys.readouterr().out
    assert "runs: 2 planned" in out and "timed out after 3 s" in out


def test_jobs_run_units_side_by_side_each_under_its_own_limit(tmp_path, plugin):
    notes = tmp_path / "notes"
    notes.mkdir()
    assert (
        _run(
            tmp_path,
            plugin,
            ["hostile", "steady"],
            "--seeds",
            "0",
            "1",
            "--jobs",
            "2",
            "--set",
            'hostile.mode="sleep"',
            "--set",
            f'hostile.notes="{notes}"',
            "--unit-timeout",
            "3",
        )
        == 1
    )
    recs = _records(tmp_path)
    assert sorted(recs) == [("hostile", 0), ("hostile", 1), ("steady", 0), ("steady", 1)]
    for s in (0, 1):
        assert recs[("hostile", s)]["error"].startswith("timed out after 3 s")
        assert recs[("steady", s)]["status"] == "ok"
        assert _wait_dead(int((notes / f"child_s{s}").read_text()))
    # the two hanging units were alive at the same time (one after the other, they would start 3 s apart)
    (pid0, t0), (pid1, t1) = ((notes / f"fit_s{s}").read_text().split() for s in (0, 1))
    assert pid0 != pid1 and abs(float(t0) - float(t1)) < 2.5


def test_the_output_of_a_unit_reaches_the_grids_stderr(tmp_path, plugin, capsys):
    assert _run(tmp_path, plugin, ["hostile"], "--set", 'hostile.mode="say"') == 0
    err = capsys.readouterr().err
    for said in ("said-on-stdout", "said-on-stderr", "said-on-fd2", "  fit hostile on _toyhostile/default seed 0"):
        assert said in err


def _store_files(tmp_path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path / "res")) for p in (tmp_path / "res").rglob("*") if p.is_file())


def test_a_full_disk_in_a_unit_stops_the_grid_with_one_line_and_the_summary(tmp_path, plugin, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    code = _run(
        tmp_path,
        plugin,
        ["steady", "hostile"],
        "--seeds",
        "0",
        "1",
        "--set",
        'hostile.mode="fill_disk"',
        "--set",
        f'hostile.notes="{notes}"',
    )
    assert code == 1
    cap = capsys.readouterr()
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "hostile___toyhostile" in errors[0]
    assert "Traceback" not in cap.err
    assert "runs: 4 planned" in cap.out and "2 records ok" in cap.out
    # steady's records are stored whole; the full disk left no partial record and no temporary file
    assert _store_files(tmp_path) == [f"smoke/steady___toyhostile__default__test__s{s}__smoke.json" for s in (0, 1)]
    for f in _store_files(tmp_path):
        assert json.loads((tmp_path / "res" / f).read_text())["status"] == "ok"
    # the grid stopped writing: the unit after the full disk was not started
    assert (notes / "fit_s0").exists() and not (notes / "fit_s1").exists()


def test_a_full_disk_in_the_grid_itself_stops_it_cleanly(tmp_path, plugin, capsys, monkeypatch):
    """The grid writes the records of units that died; a full disk there is the same one clear stop."""
    assert (
        main(["generate", "_toyhostile", "--profile", "smoke", "--data-root", str(tmp_path / "data"), "--workers", "1"])
        == 0
    )

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # this process only: the units' processes write as usual
    code = _run(tmp_path, plugin, ["hostile"], "--seeds", "0", "1", "--set", 'hostile.mode="exit"')
    assert code == 1
    cap = capsys.readouterr()
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert "runs: 2 planned" in cap.out
    assert "not run" in cap.out  # seed 1 was not started once the store was full
    assert _store_files(tmp_path) == []  # nothing partial, no temporary file
