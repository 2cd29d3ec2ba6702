"""CLI smoke tests: datasets, generate, show, methods, results, leaderboard; and the module entry point."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main


def test_datasets_lists_every_dataset_and_status(tmp_path, capsys):
    assert main(["datasets", "--profile", "smoke", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("tetrominoes", "multi_dsprites", "bouncing_balls", "scattered_mnist", "scattered_shapes"):
        assert name in out
    assert "colored_on_grayscale" in out and "test_678_colours8" in out and "missing" in out
    assert main(["datasets", "--profile", "smoke", "--data-root", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    tetro = [r for r in rows if r["dataset"] == "tetrominoes"][0]
    assert "paper 71000" in tetro["sizes"] and tetro["smoke"] == "missing"


def test_generate_then_verified_then_show(tmp_path, capsys):
    root = str(tmp_path / "d")
    assert main(["generate", "tetrominoes", "--profile", "smoke", "--data-root", root, "--workers", "1"]) == 0
    assert "test: 32 samples verified" in capsys.readouterr().out.replace("tetrominoes/default/smoke/", "")
    assert main(["datasets", "--profile", "smoke", "--data-root", root, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r for r in rows if r["dataset"] == "tetrominoes"][0]["smoke"] == "verified"
    png = tmp_path / "grid.png"
    assert (
        main(
            [
                "show",
                "tetrominoes",
                "--split",
                "test",
                "--profile",
                "smoke",
                "--data-root",
                root,
                "--n",
                "3",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    img = np.asarray(Image.open(png))
    assert img.shape[0] > 3 * 35 and img.std() > 10  # three rows of real pictures, not a blank


def test_show_video_generates_on_demand(tmp_path):
    png = tmp_path / "balls.png"
    assert (
        main(
            [
                "show",
                "bouncing_balls",
                "--variant",
                "colour",
                "--split",
                "test",
                "--profile",
                "smoke",
                "--data-root",
                str(tmp_path / "d"),
                "--n",
                "2",
                "--frames",
                "4",
                "--generate",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    img = np.asarray(Image.open(png))
    # 2 rows; 4 frames + 4 overlays of 64 px (scale 3) per row
    assert img.shape[1] >= 8 * 64 * 3 and img.shape[0] >= 2 * 64 * 3


def test_unknown_names_exit_2_with_valid_names(tmp_path, capsys):
    assert main(["generate", "nope", "--profile", "smoke", "--data-root", str(tmp_path)]) == 2
    assert "valid datasets" in capsys.readouterr().err
    assert main(["generate", "tetrominoes", "--variant", "zz", "--profile", "smoke", "--data-root", str(tmp_path)]) == 2
    assert "valid variants" in capsys.readouterr().err
    assert main(["show", "tetrominoes", "--split", "nope", "--profile", "smoke", "--data-root", str(tmp_path)]) == 2
    assert "valid splits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "tetrominoes", "--profile", "huge"])


def test_methods_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "benchmark", "methods"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for m in ("conncomp", "slot_attention", "monet", "iodine"):
        assert m in out.stdout


def test_leaderboard_command_builds_from_store(tmp_path, capsys):
    rec = {
        "run_id": "conncomp__tetrominoes__default__test__s0__smoke",
        "status": "ok",
        "error": None,
        "method": "conncomp",
        "dataset": "tetrominoes",
        "variant": "default",
        "split": "test",
        "seed": 0,
        "profile": "smoke",
        "metrics": {"fg_ari": {"value": 0.9, "n": 32, "n_skipped": 0, "version": "x"}},
        "created": "2026-01-01T00:00:00Z",
    }
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    assert main(["leaderboard", "--results", str(tmp_path), "--profile", "smoke"]) == 0
    md = (tmp_path / "leaderboard" / "smoke" / "leaderboard.md").read_text()
    assert "ConnComp" in md and "90.0" in md
    assert main(["results", "--results", str(tmp_path), "--method", "conncomp"]) == 0
    assert "0.9000" in capsys.readouterr().out
