"""Leaderboard: aggregation over seeds, paper rows, and the files ``build`` writes."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import leaderboard
from leaderboard import aggregate, build, load_paper_rows
from leaderboard.labels import MetricInfo, format_cell, main_metric, metric_kind
from leaderboard.records import read_records
from leaderboard.tables import aggregate_by_length, long_table, read_leaderboard_csv, seed_values
from metrics.catalogue import CATALOGUE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def info(key: str) -> MetricInfo:
    """The identity the scorer stores for a catalogue key, as the leaderboard reads it back."""
    d = CATALOGUE[key].identity()
    return MetricInfo(key, d["label"], d["unit"], d["higher_is_better"], d["family"])


def rec(
    method,
    seed,
    status="ok",
    *,
    dataset="tetrominoes",
    variant="default",
    split="test",
    profile="quick",
    metrics=None,
    by_length=None,
    created="2026-11-22T16:00:00Z",
    error="RuntimeError: loss is NaN",
    identity=True,
):
    """A run record as the harness writes it (schema 1): each metric entry with its catalogue identity
    (``identity=False``: as records written before the catalogue, value and version only)."""
    r = {
        "schema": 1,
        "run_id": f"{method}-{dataset}-{split}-{seed}-{created}",
        "status": status,
        "error": None if status == "ok" else error,
        "method": method,
        "dataset": dataset,
        "variant": variant,
        "split": split,
        "seed": seed,
        "profile": profile,
        "metrics": {
            k: {
                "value": v,
                "std": 0.05,
                "n": 100,
                "n_skipped": 0,
                "version": "t/1",
                **(CATALOGUE[k].identity() if identity and k in CATALOGUE else {}),
            }
            for k, v in (metrics or {}).items()
        },
        "train_seconds": 10.0 + seed,
        "eval_seconds": 1.0,
        "device": "cpu",
        "packages": {"torch": "2"},
        "git_revision": "abc123",
        "config": {},
        "config_hash": "h",
        "dataset_manifest_hash": "m",
        "created": created,
    }
    if by_length is not None:
        r["by_length"] = by_length
    return r


def row(df, **kw):
    sel = df
    for k, v in kw.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, f"expected one row for {kw}, got {len(sel)}"
    return sel.iloc[0]


# --------------------------------------------------------------------------------------------- aggregate


def test_aggregate_mean_std_n_over_seeds():
    recs = [
        rec("slot_attention", s, metrics={"fg_ari": v, "mse": m})
        for s, v, m in [(0, 0.8, 0.001), (1, 0.9, 0.002), (2, 1.0, 0.003)]
    ]
    recs += [
        rec("iodine", 0, metrics={"fg_ari": 0.5, "mse": 0.01}),
        rec("iodine", 1, "failed"),
        rec("iodine", 2, "failed"),
    ]
    df = aggregate(recs)
    sa = row(df, method="slot_attention", metric="fg_ari")
    assert sa["mean"] == pytest.approx(0.9)
    assert sa["std"] == pytest.approx(0.1)  # sample std, ddof=1 (population std would be 0.0816)
    assert (sa["n"], sa["n_failed"], sa["n_missing"]) == (3, 0, 0)
    assert sa["seeds"] == "0,1,2"
    assert row(df, method="slot_attention", metric="mse")["mean"] == pytest.approx(0.002)
    io = row(df, method="iodine", metric="fg_ari")
    assert io["mean"] == pytest.approx(0.5) and io["n"] == 1 and io["n_failed"] == 2
    assert math.isnan(io["std"])  # n = 1: no std, shown as "n=1"
    assert set(df.columns) >= {"dataset", "variant", "split", "method", "metric", "mean", "std", "n", "n_failed"}


def test_failed_records_never_enter_means():
    # a failed record that still carries metric values must be ignored, not averaged
    bad = rec("monet", 1, "failed")
    bad["metrics"] = {"fg_ari": {"value": 0.0}}
    df = aggregate([rec("monet", 0, metrics={"fg_ari": 0.7}), bad])
    r = row(df, method="monet", metric="fg_ari")
    assert r["mean"] == pytest.approx(0.7) and r["n"] == 1 and r["n_failed"] == 1


def test_all_failed_method_is_listed_with_zero_runs():
    df = aggregate(
        [
            rec("slot_attention", 0, metrics={"fg_ari": 0.9, "ari": 0.8}),
            rec("monet", 0, "failed"),
            rec("monet", 1, "failed"),
        ]
    )
    mo = df[df["method"] == "monet"]
    assert sorted(mo["metric"]) == ["ari", "fg_ari"]
    assert (mo["n"] == 0).all() and (mo["n_failed"] == 2).all() and mo["mean"].isna().all()


def test_missing_values_and_profiles_and_duplicates():
    recs = [
        rec("conncomp", 0, metrics={"lpips_vgg": None, "fg_ari": 0.4}),
        rec("conncomp", 1, metrics={"lpips_vgg": float("nan"), "fg_ari": 0.6}),
        rec("conncomp", 0, profile="smoke", metrics={"fg_ari": 0.1}),
        # seed 2 failed, then was re-run successfully: the later record replaces the failure
        rec("conncomp", 2, "failed", created="2026-11-22T10:00:00Z"),
        rec("conncomp", 2, metrics={"fg_ari": 0.5, "lpips_vgg": None}, created="2026-11-22T11:00:00Z"),
    ]
    quick = aggregate(recs, profile="quick")
    assert set(quick["profile"]) == {"quick"}
    fg = row(quick, metric="fg_ari")
    assert fg["mean"] == pytest.approx(0.5) and fg["n"] == 3 and fg["n_failed"] == 0
    lp = row(quick, metric="lpips_vgg")
    assert lp["n"] == 0 and lp["n_missing"] == 3 and math.isnan(lp["mean"])
    both = aggregate(recs)
    assert row(both, profile="smoke", metric="fg_ari")["mean"] == pytest.approx(0.1)


def test_aggregate_by_length():
    bl = lambda a: {"fg_ari": {"10": a, "20": a - 0.1}}  # noqa: E731
    df = aggregate_by_length(
        [
            rec("provide", 0, dataset="bouncing_balls", variant="binary", by_length=bl(0.9), metrics={"fg_ari": 0.8}),
            rec("provide", 1, dataset="bouncing_balls", variant="binary", by_length=bl(0.7), metrics={"fg_ari": 0.8}),
        ]
    )
    r = row(df, length=20)
    assert r["mean"] == pytest.approx(0.7) and r["std"] == pytest.approx(math.sqrt(0.02)) and r["n"] == 2


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: r.update(status="done"), r"records\[0\]\.status"),
        (lambda r: r.pop("seed"), r"records\[0\].*seed"),
        (lambda r: r.update(schema=2), r"records\[0\]\.schema"),
        (lambda r: r.update(metrics={"fg_ari": {"value": "high"}}), r"records\[0\]\.metrics\.fg_ari"),
        (lambda r: r.update(by_length={"fg_ari": {"ten": 0.5}}), r"length keys must be integers"),
    ],
)
def test_bad_records_name_the_field(mutate, match):
    r = rec("iodine", 0, metrics={"fg_ari": 0.5})
    mutate(r)
    with pytest.raises(ValueError, match=match):
        aggregate([r])


def test_bad_arguments():
    with pytest.raises(TypeError, match="records"):
        aggregate(rec("iodine", 0))  # one dict instead of a list
    with pytest.raises(TypeError, match="profile"):
        aggregate([rec("iodine", 0, metrics={"ari": 1.0})], profile=3)


def test_read_records_jsonl_and_folder(tmp_path):
    import json

    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(rec("iodine", s, metrics={"ari": 0.5})) for s in (0, 1)))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(json.dumps(rec("monet", 0, "failed")))
    recs = read_records(tmp_path)
    assert sorted((r["method"], r["seed"]) for r in recs) == [("iodine", 0), ("iodine", 1), ("monet", 0)]
    with pytest.raises(FileNotFoundError, match="path"):
        read_records(tmp_path / "nope")


def test_display_formats():
    assert format_cell(0.9912, 0.0031, 3, info("fg_ari")) == "99.1 ± 0.3"
    assert format_cell(0.93, float("nan"), 1, info("mota")) == "93.0 (n=1)"
    assert format_cell(0.00112, 0.0001, 3, info("mse")) == "0.0011 ± 0.0001"
    assert format_cell(2.5e-5, 1e-6, 2, info("mse")) == "2.50e-05 ± 1.00e-06"
    assert format_cell(212.4, 3.0, 2, info("mse_sum")) == "212.4 ± 3.0"
    assert format_cell(0.2, 0.01, 2, info("lpips_vgg")) == "0.200 ± 0.010"
    assert format_cell(5.5, 0.7, 2, info("num_switches")) == "6 ± 1"
    assert format_cell(float("nan"), float("nan"), 0, info("ari")) == "—"
    assert [
        metric_kind(info(m))
        for m in ("semantic_miou", "motp_iou", "mse_sum", "num_misses", "lpips_vgg", "cluster_accuracy")
    ] == ["percent", "percent", "mse", "count", "lpips", "percent"]
    # a bare name says nothing: no guessing from tokens (records written before identities are neutral)
    assert metric_kind("fg_ari") == "other" and format_cell(0.9912, 0.0031, 3, "fg_ari") == "0.9912 ± 0.0031"
    assert info("fg_ari").header() == "FG-ARI (%)" and info("fg_ari").arrow == "↑"
    assert info("num_switches").arrow == "↓" and info("num_objects").arrow == ""
    assert main_metric("scattered_mnist") == "mota" and main_metric("bouncing_balls") == "fg_ari"


def test_identity_comes_from_the_records():
    """Label, unit and direction are the records' (latest wins); old records are neutral; bad ones named."""
    old = rec("conncomp", 0, metrics={"fg_ari": 0.5, "mystery": 3.0}, identity=False, created="2026-11-22T10:00:00Z")
    df = aggregate([old])
    assert row(df, metric="fg_ari")["label"] is None and row(df, metric="fg_ari")["higher_is_better"] is None
    new = rec("iodine", 0, metrics={"fg_ari": 0.7}, created="2026-11-22T12:00:00Z")
    relabelled = rec("monet", 0, metrics={"fg_ari": 0.6}, created="2026-11-22T11:00:00Z")
    relabelled["metrics"]["fg_ari"].update(label="old label", higher_is_better=False)
    df = aggregate([old, new, relabelled])
    assert set(df[df["metric"] == "fg_ari"]["label"]) == {"FG-ARI"}  # one identity per key, every row
    assert set(df[df["metric"] == "fg_ari"]["higher_is_better"]) == {True}
    assert row(df, metric="mystery", method="conncomp")["label"] is None
    sv = seed_values([old, new])
    assert set(sv[sv["metric"] == "fg_ari"]["unit"]) == {"fraction"}
    for field, bad in (("label", 3), ("unit", ""), ("higher_is_better", "yes"), ("family", ["x"])):
        r = rec("iodine", 0, metrics={"fg_ari": 0.5})
        r["metrics"]["fg_ari"][field] = bad
        with pytest.raises(ValueError, match=rf"records\[0\]\.metrics\.fg_ari\.{field}: expected"):
            aggregate([r])


def test_old_records_are_neutral_on_the_page(tmp_path):
    """Records without identities still build: their columns are labelled by key, without ↑/↓, and the
    page says why; a paper row printed in percent still makes its metric a fraction."""
    recs = [rec("conncomp", s, metrics={"fg_ari": 0.9, "num_switches": 4.0}, identity=False) for s in range(2)]
    paths = build(recs, tmp_path)
    md = paths["leaderboard.md"].read_text()
    head = next(line for line in md.splitlines() if line.startswith("| method |") and "fg" in line)
    assert "fg\\_ari (%)" in head and "num\\_switches |" in head and "↑" not in head and "↓" not in head
    cc = next(line for line in md.splitlines() if line.startswith("| ConnComp |"))
    assert "| 90.0 ± 0.0 |" in cc and "| 4 ± 0 |" in cc  # fg_ari: Tetrominoes paper rows are in %
    note = md.split("Labelled by their key")[1].split("\n")[0]
    assert "fg\\_ari, num\\_switches; their records were written before" in note
    assert "semantic\\_macc" in md.split("Held only by paper rows")[1].split("\n")[0]  # multi_dsprites paper rows
    assert "Labelled by their key" in paths["index.html"].read_text()
    # once a record states them, the same columns are labelled
    paths = build(recs + [rec("iodine", 0, metrics={"fg_ari": 0.5, "num_switches": 2.0})], tmp_path)
    md = paths["leaderboard.md"].read_text()
    assert "FG-ARI (%) ↑" in md and "ID switches ↓" in md and "Labelled by their key" not in md


# --------------------------------------------------------------------------------------------- paper rows


def _spec_text() -> str | None:
    here = Path(__file__).resolve()
    for base in (os.environ.get("OCBENCH_SHARED"), here.parents[1] / "shared", here.parents[2] / "shared"):
        if base and (Path(base) / "specs" / "baselines.md").is_file():
            return (Path(base) / "specs" / "baselines.md").read_text(encoding="utf-8")
    return None


def test_paper_rows_schema_and_known_values():
    p = load_paper_rows()
    assert list(p.columns[:11]) == [
        "dataset",
        "variant",
        "split",
        "method",
        "metric",
        "length",
        "value",
        "std",
        "seeds",
        "protocol",
        "source",
    ]
    assert set(p["scale"]) == {"percent", "fraction"}
    assert set(p["dataset"]) == {"tetrominoes", "multi_dsprites", "bouncing_balls"}
    assert set(p["method"]) <= {
        "slot_attention",
        "iodine",
        "monet",
        "dti_sprites",
        "rnem",
        "seq_iodine",
        "provide",
        "conncomp",
    }
    assert set(p["metric"]) <= {"ari", "fg_ari", "mse", "semantic_macc", "semantic_miou"}
    sa = row(p, dataset="tetrominoes", method="slot_attention", metric="fg_ari")
    assert (sa["split"], sa["value"], sa["std"], sa["seeds"], sa["protocol"], sa["scale"]) == (
        "protocol320",
        pytest.approx(0.995),
        pytest.approx(0.002),
        4,
        "P320",
        "percent",
    )
    dti = row(p, dataset="multi_dsprites", variant="colored_on_grayscale", method="dti_sprites", metric="semantic_miou")
    assert dti["value"] == pytest.approx(0.840) and dti["std"] == pytest.approx(0.014) and dti["seeds"] == 4
    assert row(p, variant="binarized", method="iodine")["std"] == pytest.approx(0.172)
    pv = row(p, dataset="bouncing_balls", variant="binary", split="test", method="provide", metric="ari", length=40)
    assert pv["value"] == pytest.approx(0.7294) and pd.isna(pv["std"]) and pd.isna(pv["seeds"])
    io = p[(p["method"] == "iodine") & (p["dataset"] == "bouncing_balls")]
    assert (io["protocol"] == "per-frame").all() and io["length"].isna().all()
    assert row(p, split="test_678_colours8", method="provide", metric="mse")["value"] == pytest.approx(0.0114)
    # every (dataset, variant, split, method, metric, length) appears once
    keys = p[["dataset", "variant", "split", "method", "metric", "length"]].astype(str)
    assert not keys.duplicated().any()


def _nums(text: str) -> list[float]:
    return [float(x.replace("−", "-")) for x in re.findall(r"[−-]?\d*\.\d+|[−-]?\d+", text)]


def test_paper_rows_match_the_spec_text():
    spec = _spec_text()
    if spec is None:
        pytest.skip("specs/baselines.md not found (set OCBENCH_SHARED to the shared folder)")
    p = load_paper_rows()
    table = {
        tuple(c.strip() for c in line.strip("|").split("|")): line
        for line in spec.splitlines()
        if line.startswith("| ") and ("P320" in line or "BB" in line or "K = " in line)
    }
    assert len(table) >= 19, "the reference table of baselines.md was not found"
    ds_map = {
        "Tetrominoes": ("tetrominoes", "default"),
        "Multi-dSprites c-o-g": ("multi_dsprites", "colored_on_grayscale"),
        "Multi-dSprites binarized": ("multi_dsprites", "binarized"),
    }
    meth = {
        "IODINE": "iodine",
        "Slot Attention": "slot_attention",
        "DTI-Sprites": "dti_sprites",
        "MONet": "monet",
        "R-NEM": "rnem",
        "SEQ-IODINE": "seq_iodine",
        "PROVIDE": "provide",
    }
    checked = 0
    for cells in table:
        ds, metric, methods, values = cells[0], cells[1], cells[2], cells[3]
        if ds in ds_map:  # image rows: "a ± s / b ± s" against "fg_ari / ari" or "macc / miou" per method
            dsn, var = ds_map[ds]
            names = (
                ["semantic_macc", "semantic_miou"]
                if "semantic" in metric
                else ["fg_ari", "ari"]
                if "/ ari" in metric
                else ["fg_ari"]
            )
            per_method = [m.strip() for m in methods.split("/")]
            pairs = [v.strip() for v in values.split("/")]
            scale = 100 if "(%)" in metric else 1
            combos = (
                [(per_method[0], n, v) for n, v in zip(names, pairs)]
                if len(per_method) == 1
                else [(m, names[0], v) for m, v in zip(per_method, pairs)]
            )
            for m, name, v in combos:
                mean, std = _nums(v)
                r = row(p, dataset=dsn, variant=var, split="protocol320", method=meth[m], metric=name)
                assert r["value"] == pytest.approx(mean / scale) and r["std"] == pytest.approx(std / scale), cells
                checked += 1
        elif ds.startswith("BB") and "L = " in metric:  # "a/b/c/d; e/f/g/h; i/j/k/l" = ari; fg_ari; mse by L
            var = "binary" if "binary" in ds else "colour"
            for name, chunk in zip(("ari", "fg_ari", "mse"), values.split(";")):
                vals = _nums(chunk.split("(")[0])
                vals = vals * 4 if len(vals) == 1 else vals  # ".9999 (all L)"
                for L, v in zip((10, 20, 30, 40), vals):
                    r = row(
                        p,
                        dataset="bouncing_balls",
                        variant=var,
                        split="test",
                        method=meth[methods],
                        metric=name,
                        length=L,
                    )
                    assert r["value"] == pytest.approx(v), (cells, L)
                    checked += 1
        elif ds.startswith("BB"):  # "a / b / c" per method (methods separated by ";")
            var = "binary" if "binary" in ds else "colour"
            split = "test" if "4 balls" in ds else "test_678_colours8" if "colours8" in ds else "test_678"
            for m, chunk in zip(methods.split(";"), values.split(";")):
                for name, v in zip(("ari", "fg_ari", "mse"), _nums(chunk)):
                    r = row(
                        p[p["length"].isna()],
                        dataset="bouncing_balls",
                        variant=var,
                        split=split,
                        method=meth[m.strip()],
                        metric=name,
                    )
                    assert r["value"] == pytest.approx(v), cells
                    checked += 1
    assert checked == len(p), f"checked {checked} of {len(p)} paper rows against the spec"


# --------------------------------------------------------------------------------------------- build


def small_store() -> list[dict]:
    recs = []
    for s in range(3):
        recs.append(rec("slot_attention", s, metrics={"fg_ari": 0.9 + 0.01 * s, "ari": 0.8, "mse": 0.002}))
        recs.append(rec("conncomp", s, metrics={"fg_ari": 0.6, "ari": 0.5 - 0.1 * s, "mse": 0.01}))
        recs.append(rec("slot_attention", s, split="protocol320", metrics={"fg_ari": 0.92}))
    recs.append(rec("monet", 0, "failed"))
    for s in range(2):
        bl = {"fg_ari": {"10": 0.9, "20": 0.85 + 0.01 * s}, "mse": {"10": 0.001, "20": 0.002}}
        recs.append(
            rec(
                "provide",
                s,
                dataset="bouncing_balls",
                variant="binary",
                by_length=bl,
                metrics={"fg_ari": 0.88, "ari": 0.7, "mse": 0.001},
            )
        )
        for split in ("test", "test_n1", "test_n2", "test_n3"):
            recs.append(
                rec(
                    "conncomp",
                    s,
                    dataset="scattered_mnist",
                    variant="max6",
                    split=split,
                    metrics={"mota": 0.9 - 0.1 * s, "motp_iou": 0.8, "num_switches": 3},
                )
            )
    return recs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("lb")
    recs = small_store()
    return out, recs, build(recs, out)


def test_build_writes_all_files(built):
    out, _, paths = built
    for name in ("leaderboard.md", "leaderboard.csv", "index.html"):
        assert paths[name] == out / name and (out / name).stat().st_size > 500
    figs = {k for k in paths if k.startswith("figures/")}
    assert {
        "figures/bars_tetrominoes.png",
        "figures/bars_bouncing_balls.png",
        "figures/by_length_bouncing_balls.png",
        "figures/bars_scattered_mnist.png",
        "figures/by_count_scattered_mnist.png",
        "figures/bars_multi_dsprites.png",
    } <= figs  # multi_dsprites: paper rows only
    from PIL import Image

    for k in figs:
        data = paths[k].read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, k
        with Image.open(paths[k]) as im:
            assert im.size[0] >= 600 and im.size[1] >= 300
            assert np.asarray(im.convert("L")).std() > 5  # not a blank canvas


def test_markdown_tables_and_paper_rows(built):
    out, _, _ = built
    md = (out / "leaderboard.md").read_text()
    assert "### Tetrominoes · default · test" in md and "### Bouncing Balls · binary · test · by clip length" in md
    sa = next(line for line in md.splitlines() if line.startswith("| Slot Attention |"))
    assert "91.0 ± 1.0" in sa and "3 ok" in sa and "0.0020 ± 0.0000" in sa
    assert re.search(r"\| MONet \|.*0 ok, 1 failed", md)
    assert "Failed runs: MONet seed 0: RuntimeError: loss is NaN" in md
    assert "*Slot Attention (paper, P320, 4 seeds)* | 99.5 ± 0.2" in md
    assert "*DTI-Sprites (paper, P320, 4 seeds)*" in md  # multi_dsprites, 4 of 5 runs
    assert "*PROVIDE (paper, first L frames, seeds unknown)*" in md
    assert "*IODINE (paper, per-frame, seeds unknown)*" in md
    assert "| Monnier et al. 2021, Table 1 (citing Locatello et al. 2020); 1 outlier run of 5 dropped |" in md
    assert "seed 00" not in md  # sources are cited by author, year and table, never by our file names
    assert "### Scattered MNIST · max6 · test_n* · MOTA by object count" in md and "MOTA (%) n=3" in md


def test_csv_round_trip_and_sources(built):
    out, recs, _ = built
    back = read_leaderboard_csv(out / "leaderboard.csv")
    expected = long_table(aggregate(recs), aggregate_by_length(recs), load_paper_rows())
    pd.testing.assert_frame_equal(back, expected)
    raw = pd.read_csv(out / "leaderboard.csv")
    assert set(raw["source"]) == {"ocbench", "paper"}
    assert (raw["source"] == "paper").sum() == len(load_paper_rows())
    sa = raw[
        (raw["source"] == "ocbench")
        & (raw["method"] == "slot_attention")
        & (raw["metric"] == "fg_ari")
        & (raw["split"] == "test")
    ]
    assert sa["mean"].item() == pytest.approx(0.91) and sa["n"].item() == 3
    assert (raw[raw["source"] == "ocbench"]["length"].dropna() > 0).all()


def test_html_has_every_dataset_section(built):
    out, _, _ = built
    page = (out / "index.html").read_text()
    for ds in ("tetrominoes", "multi_dsprites", "bouncing_balls", "scattered_mnist"):
        assert f'<section class="dataset" id="ds-{ds}"' in page and f'href="#ds-{ds}"' in page
    # one paper row per (table, method, protocol); a table split by column group repeats it in each part
    seen = set()
    for head, body in re.findall(r'<table class="lb sortable" ([^>]*)>(.*?)</table>', page, flags=re.S):
        where = re.sub(r' data-group="[^"]*"', "", head)
        seen |= {(where, label) for label in re.findall(r'<tr class="paper"[^>]*><td data-value="([^"]*)"', body)}
    assert len(seen) == len(
        load_paper_rows()[lambda d: d["length"].isna()].groupby(["dataset", "variant", "split", "method", "protocol"])
    ) + len(load_paper_rows()[lambda d: d["length"].notna()].groupby(["dataset", "variant", "split", "method"]))
    assert page.count("data:image/png;base64,") == 6
    # self-contained: no external script, style sheet or image
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(https?:)?//", page)
    assert "<script>" in page and "sortable" in page


def test_build_profile_filter_paper_off_and_stale_figures(tmp_path, built):
    out, recs, _ = built
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "bars_old_dataset.png").write_bytes(PNG_MAGIC)
    only = [r for r in recs if r["dataset"] == "tetrominoes"] + [
        rec("iodine", 0, profile="smoke", metrics={"fg_ari": 0.1})
    ]
    paths = build(only, tmp_path, profile="smoke", paper=False)
    assert not (tmp_path / "figures" / "bars_old_dataset.png").exists()
    raw = pd.read_csv(paths["leaderboard.csv"])
    assert set(raw["source"]) == {"ocbench"} and set(raw["profile"]) == {"smoke"} and set(raw["method"]) == {"iodine"}
    md = paths["leaderboard.md"].read_text()
    assert "paper" not in md.split("## Contents")[1] and "(smoke)" in md


def test_build_with_no_records(tmp_path):
    paths = build([], tmp_path, paper=False)
    assert "No runs recorded yet." in paths["leaderboard.md"].read_text()
    assert len(pd.read_csv(paths["leaderboard.csv"])) == 0
    with pytest.raises(NotADirectoryError, match="out_dir"):
        build([], paths["leaderboard.md"])


def test_public_api():
    assert callable(leaderboard.build) and callable(leaderboard.aggregate) and callable(leaderboard.load_paper_rows)
