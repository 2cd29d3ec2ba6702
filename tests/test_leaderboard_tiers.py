"""The leaderboard's three tiers (papers' numbers, ocbench reference runs, the user's runs, with learned
runs of a short profile apart as a pipeline check), wide tables split by column group, the citations
of the paper rows, and the committed reference records' identities."""

from __future__ import annotations

import copy
import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

import leaderboard
from leaderboard import build, load_paper_rows
from leaderboard.records import validate_records
from leaderboard.tables import MAX_METRIC_COLUMNS, aggregate, build_tables, run_meta, tier_map
from metrics.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def rec(
    method,
    profile,
    *,
    dataset="tetrominoes",
    variant="default",
    split="test",
    seed=0,
    metrics=None,
    fit_info=None,
    device="cpu",
):
    return {
        "schema": 1,
        "run_id": f"{method}__{dataset}__{variant}__{split}__s{seed}__{profile}",
        "status": "ok",
        "error": None,
        "method": method,
        "dataset": dataset,
        "variant": variant,
        "split": split,
        "seed": seed,
        "profile": profile,
        "device": device,
        "created": "2026-11-22T16:00:00Z",
        "train_seconds": 1.0,
        "config": {"steps": 500000} if fit_info else {},
        "fit_info": fit_info or {},
        "metrics": {k: {"value": v, **CATALOGUE[k].identity()} for k, v in (metrics or {"fg_ari": 0.5}).items()},
    }


REF_FIT = {"steps": 83480, "total_steps": 500000, "budget_cut": True, "schedule_scale": 1.0}
SMOKE_FIT = {"steps": 2, "total_steps": 2, "budget_cut": False, "schedule_scale": 4e-6}


def store() -> list[dict]:
    return [
        rec("slot_attention", "paper", metrics={"fg_ari": 0.979}, fit_info=REF_FIT, device="cuda"),
        rec("conncomp", "smoke", metrics={"fg_ari": 0.973}),
        rec("slot_attention", "smoke", metrics={"fg_ari": 0.054}, fit_info=SMOKE_FIT),
        rec("conncomp", "quick", metrics={"fg_ari": 0.9}),
    ]


def only_tetrominoes():
    rows = load_paper_rows()
    return mock.patch.object(leaderboard, "load_paper_rows", lambda: rows[rows["dataset"] == "tetrominoes"])


def test_tier_of_each_run_comes_from_its_record():
    recs = validate_records(store())
    assert tier_map(recs) == {
        ("paper", "slot_attention"): "reference",
        ("smoke", "conncomp"): "yours",
        ("smoke", "slot_attention"): "pipeline",
        ("quick", "conncomp"): "yours",
    }
    meta = run_meta(recs)
    assert (
        meta[("paper", "tetrominoes", "default", "test", "slot_attention")]
        == "cuda · 83,480 / 500,000 steps, cut by the time budget · seed 0"
    )
    assert (
        meta[("smoke", "tetrominoes", "default", "test", "slot_attention")]
        == "cpu · 2 / 2 steps (paper schedule 500,000) · seed 0"
    )
    assert meta[("smoke", "tetrominoes", "default", "test", "conncomp")] == "cpu · seed 0"


def test_build_of_a_profile_shows_the_reference_tier_and_sets_learned_runs_apart(tmp_path):
    with only_tetrominoes():
        paths = build(store(), tmp_path, profile="smoke")
    md = paths["leaderboard.md"].read_text()
    table = md.split("### Tetrominoes · default · test\n\n")[1].split("\n\n")[0].splitlines()
    bands = [line.split("**")[1] for line in table if line.startswith("| **")]
    assert bands == ["ocbench reference runs", "Your runs (smoke profile)", "Pipeline check (smoke profile)"]
    order = [line.split(" | ")[0][2:] for line in table[2:]]
    assert order == [
        "**ocbench reference runs**",
        "Slot Attention",
        "**Your runs (smoke profile)**",
        "ConnComp",
        "**Pipeline check (smoke profile)**",
        "Slot Attention",
    ]  # quick's ConnComp is not on the page
    assert (
        "| 97.9 (n=1) | 1 ok | paper profile · cuda · 83,480 / 500,000 steps, cut by the time budget · seed 0 |" in md
    )
    assert "Beside them: 1 ocbench reference run of the 'paper' profile" in md
    csv = pd.read_csv(paths["leaderboard.csv"])
    got = set(zip(csv["tier"], csv["profile"].fillna(""), csv["method"]))
    assert {
        ("reference", "paper", "slot_attention"),
        ("yours", "smoke", "conncomp"),
        ("pipeline", "smoke", "slot_attention"),
        ("paper", "", "iodine"),
    } <= got
    page = paths["index.html"].read_text()
    assert re.findall(r'<tbody data-tier="(\w+)">', page)[:4] == ["reference", "yours", "pipeline", "paper"]
    # with reference=False the page holds the profile's runs only
    with only_tetrominoes():
        paths = build(store(), tmp_path, profile="smoke", reference=False, paper=False)
    assert set(pd.read_csv(paths["leaderboard.csv"])["tier"]) == {"yours", "pipeline"}


def test_figures_leave_the_pipeline_check_out(tmp_path):
    seen = {}

    def spy(seeds, seeds_by_length, paper, runs, out_dir):
        seen["methods"] = set(zip(seeds["profile"], seeds["method"]))
        return {}

    with mock.patch("leaderboard.figures.make_figures", spy):
        build(store(), tmp_path, profile="smoke", paper=False)
    assert seen["methods"] == {("paper", "slot_attention"), ("smoke", "conncomp")}


def test_wide_tables_split_by_column_group():
    keys = [k for k, m in CATALOGUE.items() if {"masks", "video", "recon"} >= m.needs]
    assert len(keys) > MAX_METRIC_COLUMNS
    recs = [
        rec(
            "conncomp",
            "quick",
            dataset="bouncing_balls",
            variant="binary",
            metrics={k: 0.5 for k in keys if CATALOGUE[k].family == "segmentation"},
        ),
        rec(
            "provide",
            "quick",
            dataset="bouncing_balls",
            variant="binary",
            metrics={k: 0.5 for k in keys},
            fit_info=SMOKE_FIT,
        ),
    ]
    tables = build_tables(
        aggregate(recs),
        pd.DataFrame(
            columns=[
                "profile",
                "dataset",
                "variant",
                "split",
                "method",
                "metric",
                "length",
                "mean",
                "std",
                "n",
                "n_missing",
                "n_failed",
            ]
        ),
        None,
    )
    parts = tables["bouncing_balls"]
    groups = [t.group.split(" ")[0] for t in parts]
    assert groups[0] == "segmentation" and groups[-1] == "reconstruction" and set(groups[1:-1]) == {"tracking"}
    assert all(len(t.columns) <= MAX_METRIC_COLUMNS for t in parts)
    assert sorted(c.metric for t in parts for c in t.columns) == sorted(keys)  # every column in one part
    fams = {t.group: {CATALOGUE[c.metric].family for c in t.columns} for t in parts}
    assert fams["segmentation"] == {"segmentation"} and fams["reconstruction"] == {"reconstruction", "perceptual"}
    assert all(fams[t.group] == {"tracking"} for t in parts[1:-1])
    n_track = sum(CATALOGUE[k].family == "tracking" for k in keys)  # 10 motmetrics keys, more with IDF1/HOTA
    if n_track > MAX_METRIC_COLUMNS:  # cut into even pieces, in column order: MOTA first
        k = len(parts) - 2
        assert [t.group for t in parts[1:-1]] == [f"tracking {i}/{k}" for i in range(1, k + 1)]
        assert parts[1].columns[0].metric == "mota" and parts[1].anchor.endswith(f"-tracking-1-{k}")
    # ConnComp reports no tracking or reconstruction metric here: it is only in the segmentation part
    assert [[r.method for r in t.rows] for t in parts] == [["conncomp", "provide"]] + [["provide"]] * (len(parts) - 1)
    assert parts[1].title == f"binary · test · {parts[1].group}"
    # a table of ten columns or fewer stays whole
    small = build_tables(aggregate(recs[:1]), aggregate(recs[:1]).iloc[0:0].assign(length=[]), None)
    assert [t.group for t in small["bouncing_balls"]] == [None]


def test_paper_rows_cite_author_year_and_table():
    p = load_paper_rows()
    cite = re.compile(r"^[A-Z][a-z]+ et al\. (19|20)\d\d, Table \d+( \(citing [A-Z][a-z]+ et al\. (19|20)\d\d\))?$")
    bad = sorted({s for s in p["source"] if not cite.match(s)})
    assert not bad, f"citations not of the form 'Greff et al. 2019, Table 1': {bad}"
    assert set(p["source"]) == {
        "Greff et al. 2019, Table 1",
        "Monnier et al. 2021, Table 1",
        "Monnier et al. 2021, Table 1 (citing Locatello et al. 2020)",
        "Monnier et al. 2021, Table 5",
        "Zablotskaia et al. 2020, Table 1",
        "Zablotskaia et al. 2020, Table 2",
    }
    assert "seed 0" not in (ROOT / "leaderboard" / "paper_results.csv").read_text()


# ------------------------------------------------------------------ the committed reference records


def _restamp():
    import importlib.util

    spec = importlib.util.spec_from_file_location("restamp_identity", ROOT / "scripts" / "restamp_identity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_reference_records_carry_the_catalogue_identity():
    files = sorted((ROOT / "results" / "paper").glob("*.json"))
    assert files, "results/paper/*.json (the committed GPU reference records) are missing"
    restamp = _restamp().restamp
    for f in files:
        r = json.loads(f.read_text())
        assert (
            r["profile"] == "paper" and r["device"] == "cuda" and r["fit_info"]["steps"] < r["fit_info"]["total_steps"]
        )
        for k, e in r["metrics"].items():
            assert {f: e[f] for f in CATALOGUE[k].identity()} == CATALOGUE[k].identity(), (f.name, k)
        assert restamp(r) == (r, [])  # up to date: rerunning the script changes nothing


def test_restamp_adds_identity_only_and_refuses_another_convention(tmp_path):
    mod = _restamp()
    src = sorted((ROOT / "results" / "paper").glob("*.json"))[0]
    stamped = json.loads(src.read_text())
    old = copy.deepcopy(stamped)
    for e in old["metrics"].values():
        for f in ("label", "unit", "higher_is_better", "family"):
            e.pop(f, None)
    f = tmp_path / src.name
    f.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    with redirect_stdout(io.StringIO()):
        assert mod.main(["--check", str(tmp_path)]) == 1
        assert mod.main([str(tmp_path)]) == 0
        assert mod.main(["--check", str(tmp_path)]) == 0
    assert json.loads(f.read_text()) == stamped  # values, versions and every other field untouched
    old["metrics"]["fg_ari"]["version"] = "fg_ari/0 something else"
    with pytest.raises(mod.ConventionMismatch, match="fg_ari.*re-run"):
        mod.restamp(old)
    f.write_text(json.dumps(old))
    with redirect_stderr(io.StringIO()) as err, redirect_stdout(io.StringIO()):
        assert mod.main([str(tmp_path)]) == 2
    assert "fg_ari" in err.getvalue() and json.loads(f.read_text()) == old


def test_cli_leaderboard_of_a_profile_shows_the_stores_reference_records(tmp_path):
    from benchmark.cli import main

    for r in (rec("conncomp", "smoke", metrics={"fg_ari": 0.973}),):
        (tmp_path / "smoke").mkdir(exist_ok=True)
        (tmp_path / "smoke" / f"{r['run_id']}.json").write_text(json.dumps(r))
    (tmp_path / "paper").mkdir()
    for f in (ROOT / "results" / "paper").glob("*.json"):
        (tmp_path / "paper" / f.name).write_text(f.read_text())
    with only_tetrominoes(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        assert main(["leaderboard", "--profile", "smoke", "--results", str(tmp_path)]) == 0
    assert "warning" not in err.getvalue()
    md = (tmp_path / "leaderboard" / "smoke" / "leaderboard.md").read_text()
    assert "**ocbench reference runs**" in md and "**Your runs (smoke profile)**" in md
    assert (
        "| Slot Attention | 97.9 (n=1) | 10.2 (n=1) | 35.2 (n=1) | 35.2 (n=1) | 0.0006 (n=1) |"
        in md.split("### Tetrominoes · default · protocol320")[1]
    )
    assert "83,480 / 500,000 steps, cut by the time budget · seed 0" in md
