"""The grid on Ray and on Slurm (submitit): one idempotent job per unit, the same records as the local run."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from benchmark import runner
from benchmark.cli import main
from benchmark.launchers import SlurmLauncher, make_launcher
from benchmark.store import ResultsStore

# a plugin that registers its own dataset and method, so that a fresh worker (a Ray task, a submitit job)
# knows both by loading the plugin file, as every unit's process does
PLUGIN = textwrap.dedent("""
    import dataclasses
    import numpy as np
    from baselines import Method, Prediction, register_method
    from generators.core import DatasetSpec, Variant, register_dataset

    def _render(cfg, seeds):
        n, T, S = len(seeds), cfg["frames"], 10
        video = np.zeros((n, T, S, S, 3), np.uint8)
        masks = np.zeros((n, T, S, S), np.uint8)
        for i, s in enumerate(seeds):
            r = int(np.random.default_rng(int(s)).integers(0, 5))
            for t in range(T):
                masks[i, t, r : r + 3, t : t + 3] = 1
                video[i, t, r : r + 3, t : t + 3] = (255, 0, 0)
                masks[i, t, 6:9, 5 + t : 8 + t] = 2
                video[i, t, 6:9, 5 + t : 8 + t] = (0, 255, 0)
        return {"video": video, "masks": masks, "objects/n_objects": np.full(n, 2, np.int16)}

    register_dataset(
        DatasetSpec(
            name="_toyq", version="1.0.0", kind="video", base_config={"frames": 2},
            variants={"default": Variant()}, default_variant="default",
            sizes={p: {"train": 4, "val": 2, "test": 3} for p in ("smoke", "quick", "paper")}, render=_render,
        ),
        replace=True,
    )

    @dataclasses.dataclass
    class Cfg:
        mode: str = "good"

    @register_method("toy_q", kinds={"video", "image", "colour", "binary"}, config=Cfg)
    class ToyQ(Method):
        def fit(self, train, val, ctx):
            if self.config.mode == "raise":
                raise RuntimeError("boom in fit")
            ctx.info["fitted_on"] = len(train)

        def predict(self, batch):
            v = np.asarray(batch["video"])
            masks = (v[..., 0] > 0).astype(np.int64) + 2 * (v[..., 1] > 0)
            return Prediction(masks=masks, recon=v.astype(np.float32) / 255.0)
""")

# what may differ between two runs of the same unit: clocks, the host, the tree's git state
VOLATILE = {"created", "train_seconds", "eval_seconds", "git_revision"}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    p = tmp_path_factory.mktemp("plugin") / "toy_q.py"
    p.write_text(PLUGIN)
    return str(p)


def _run(root: Path, plugin: str, *extra: str) -> int:
    return main(
        [
            "run",
            "--datasets",
            "_toyq",
            "--methods",
            "toy_q",
            "--seeds",
            "0",
            "1",
            "--profile",
            "smoke",
            "--data-root",
            str(root.parent / "data"),
            "--results",
            str(root / "res"),
            "--work-dir",
            str(root / "runs"),
            "--plugin",
            plugin,
            "--no-leaderboard",
            "--no-progress",
            "--device",
            "cpu",
            *extra,
        ]
    )


def _records(root: Path) -> dict:
    out = {}
    for r in ResultsStore(root / "res").records("smoke"):
        out[r["run_id"]] = {k: v for k, v in r.items() if k not in VOLATILE}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def ray_cluster():
    """A real Ray cluster on loopback only (a head node, 2 CPUs), its `ray start` in a session of its own, so
    that stopping it ends exactly the processes this test started (their process group)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's switch for 127.0.0.1 as the node address
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    pytest.importorskip("ray")
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:
        pytest.skip("ray was imported before this test could keep it on loopback")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="rq", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    common = ["--num-cpus=2", "--disable-usage-stats", f"--temp-dir={temp}"]
    nodes = []
    try:
        # one head node whose two worker processes run the tasks: Ray refuses a second node on loopback
        for args in (["--head", f"--port={port}", "--include-dashboard=false"],):
            p = subprocess.Popen(
                [ray_bin, "start", "--node-ip-address=127.0.0.1", *args, *common],
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            nodes.append(p)
            out, _ = p.communicate(timeout=90)
            assert p.returncode == 0, out
            assert "192." not in out.split("Local node IP")[-1][:40], out  # the node address is loopback
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        for p in reversed(nodes):  # `ray start` led the group its daemons run in
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(2)
        for p in nodes:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_same_records_local_submitit_and_ray(tmp_path, plugin, ray_cluster):
    """One grid run three ways leaves the same records, but for clocks and git state; each rerun skips."""
    roots = {k: tmp_path / k for k in ("local", "submitit", "ray")}
    t0 = time.time()
    assert _run(roots["local"], plugin) == 0
    assert (
        _run(
            roots["submitit"],
            plugin,
            "--launcher",
            "slurm",
            "--slurm-executor",
            "local",
            "--slurm-folder",
            str(tmp_path / "sl"),
        )
        == 0
    )
    assert _run(roots["ray"], plugin, "--launcher", "ray", "--ray-address", ray_cluster) == 0
    recs = {k: _records(r) for k, r in roots.items()}
    assert len(recs["local"]) == 2 and all(r["status"] == "ok" for r in recs["local"].values())
    assert recs["submitit"] == recs["local"]
    assert recs["ray"] == recs["local"]
    # the files themselves: same keys in the same order, so the same bytes once the clocks are set equal
    name = next(iter(recs["local"])) + ".json"
    texts = [json.loads((r / "res" / "smoke" / name).read_text()) for r in roots.values()]
    assert [list(t) for t in texts[1:]] == [list(texts[0])] * 2
    print(f"three-way run: {time.time() - t0:.1f}s")


def test_submitit_job_retries_and_leaves_a_failed_record(tmp_path, plugin, capsys):
    sl = tmp_path / "sl"
    rc = _run(
        tmp_path / "a", plugin, "--launcher", "slurm", "--slurm-executor", "local", "--slurm-folder", str(sl),
        "--retries", "1", "--seeds", "0", "--set", 'toy_q.mode="raise"',
    )  # fmt: skip
    assert rc == 1
    (rec,) = ResultsStore(tmp_path / "a" / "res").records("smoke")
    assert rec["status"] == "failed" and "boom in fit" in rec["error"] and rec["phase"] == "fit"
    err = capsys.readouterr().err
    assert "1 units submitted as one array job" in err and "2 tries" in err
    logs = "".join(p.read_text() for p in sl.rglob("*_log.err"))
    assert "retrying toy_q on _toyq/default seed 0 (try 2 of 2)" in logs


def test_local_launcher_retries(tmp_path, plugin, capsys):
    rc = _run(tmp_path / "a", plugin, "--retries", "2", "--seeds", "0", "--set", 'toy_q.mode="raise"')
    assert rc == 1
    err = capsys.readouterr().err
    assert "(try 3 of 3)" in err and "(try 4" not in err
    (rec,) = ResultsStore(tmp_path / "a" / "res").records("smoke")
    assert rec["status"] == "failed" and rec["phase"] == "fit"


def test_unit_job_skips_itself_when_its_records_exist(tmp_path, plugin):
    assert _run(tmp_path / "a", plugin, "--seeds", "0") == 0
    opts = runner.RunOptions(
        profile="smoke", device="cpu", results=tmp_path / "a" / "res", data_root=str(tmp_path / "data"),
        plugins=(plugin,),
    )  # fmt: skip
    out = runner.unit_job(runner.Unit("toy_q", "_toyq", "default", 0), opts, None)
    assert out.skipped and out.records == []


def test_a_failed_job_leaves_failed_records(tmp_path, plugin):
    """A job that dies outside the unit (node lost, cancelled) gets a failed record for each split."""
    from baselines import load_plugin

    load_plugin(plugin)

    class Dead:
        name = "slurm"

        def run(self, units, opts, limit, log):
            for u in units:
                yield runner.UnitOutcome(u, error="NodeFail: node n12 went away")

    opts = runner.RunOptions(
        profile="smoke", device="cpu", results=tmp_path / "res", data_root=str(tmp_path / "data"),
        work_dir=tmp_path / "runs",
    )  # fmt: skip
    s = runner.run_grid([runner.Unit("toy_q", "_toyq", "default", 0)], opts, launcher=Dead(), log=lambda s: None)
    assert s["failed"] == 1 and s["ok"] == 0
    (rec,) = ResultsStore(tmp_path / "res").records("smoke")
    assert rec["status"] == "failed" and rec["phase"] == "job" and "node n12 went away" in rec["error"]


def test_sbatch_script_is_one_array_with_the_options(tmp_path):
    pytest.importorskip("submitit")
    sl = SlurmLauncher(
        folder=tmp_path / "sl", partition="gpu", time_min=90, gpus_per_unit=1, cpus_per_unit=8,
        array_parallelism=4, setup=("source /opt/venv/bin/activate",),
    )  # fmt: skip
    text = sl.sbatch_script(10)
    lines = text.splitlines()
    for flag in (
        "--array=0-9%4",
        "--partition=gpu",
        "--time=90",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--job-name=ocbench",
    ):
        assert f"#SBATCH {flag}" in lines, (flag, text)
    assert lines.index("source /opt/venv/bin/activate") < next(i for i, ln in enumerate(lines) if "srun" in ln)
    assert f"-m submitit.core._submit {tmp_path / 'sl'}/%j" in text
    assert "%A_%a" in text  # one log per array task
    assert "--array=0-2%3" in sl.sbatch_script(3)  # fewer units than the limit: all at once


def test_make_launcher():
    assert make_launcher("local") is None
    r = make_launcher("ray", address="127.0.0.1:1", cpus_per_unit=2, gpus_per_unit=1, partition="x")
    assert (r.address, r.cpus_per_unit, r.gpus_per_unit) == ("127.0.0.1:1", 2, 1)
    s = make_launcher("slurm", partition="p", time_min=5, array_parallelism=2, address="ignored")
    assert (s.partition, s.time_min, s.array_parallelism) == ("p", 5, 2)
    with pytest.raises(ValueError, match="valid: local, ray, slurm"):
        make_launcher("kubernetes")
