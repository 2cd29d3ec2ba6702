"""Hostile records: a bad file in the results store never stops the leaderboard, the end of a run or a
resume; each is reported by its path and skipped. Names from records are escaped on the page and in
the figures, and figure files stay in their folder. Records are written world-readable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leaderboard
from benchmark import runner
from benchmark.cli import main
from benchmark.store import ResultsStore, run_id

PROFILE = "smoke"


def record(method="conncomp", seed=0, *, split="test", value=0.9, dataset="tetrominoes", **extra) -> dict:
    rid = f"{method}__{dataset}__default__{split}__s{seed}__{PROFILE}"  # run_id() would refuse hostile names
    rec = {
        "run_id": rid,
        "status": "ok",
        "error": None,
        "method": method,
        "dataset": dataset,
        "variant": "default",
        "split": split,
        "seed": seed,
        "profile": PROFILE,
        "metrics": {"fg_ari": {"value": value, "n": 32, "n_skipped": 0}},
        "by_length": {},
        "train_seconds": 1.0,
        "created": "2026-01-01T00:00:00Z",
        "schema": 1,
    }
    rec.update(extra)
    return rec


def put(root: Path, rec: dict, name: str | None = None) -> Path:
    p = root / PROFILE / f"{name or rec['run_id']}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec))
    return p


def good_store(root: Path) -> list[Path]:
    """Three good ConnComp seeds with FG-ARI 0.9: the page must say "90.0 ± 0.0" and "3 ok"."""
    return [put(root, record(seed=s)) for s in range(3)]


@contextlib.contextmanager
def few_paper_rows():
    """Paper rows of Tetrominoes only: the build draws one dataset's figures (fast), paper path still on."""
    rows = leaderboard.load_paper_rows()
    with mock.patch.object(leaderboard, "load_paper_rows", lambda: rows[rows["dataset"] == "tetrominoes"]):
        yield


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def assert_only_the_good_runs(md: str):
    row = next(line for line in md.splitlines() if line.startswith("| ConnComp |"))
    assert "| 90.0 ± 0.0 |" in row and "| 3 ok |" in row, row


def assert_page_has_only_the_good_runs(root: Path):
    md = (root / "leaderboard" / "all" / "leaderboard.md").read_text(encoding="utf-8")
    assert_only_the_good_runs(md)
    assert "invalid" not in md  # the store left the bad ones out before the build


def _bad(kind: str, root: Path, seed: int = 9) -> Path:
    """Write one bad record file of the given kind next to the good ones; return its path."""
    d = root / PROFILE
    d.mkdir(parents=True, exist_ok=True)
    bad = record(seed=seed)
    if kind == "seed_string":
        bad["seed"] = "0"
    elif kind == "metric_string":
        bad["metrics"] = {"fg_ari": {"value": "high"}}
    elif kind == "metrics_list":
        bad["metrics"] = [0.9]
    elif kind == "folder":
        (d / "folder.json").mkdir()
        return d / "folder.json"
    elif kind == "dangling_link":
        os.symlink(root / "nowhere", d / "link.json")
        return d / "link.json"
    elif kind == "mathtext_method":
        bad["method"] = r"$\frac{a$"
    elif kind == "other_runs_name":  # a valid record filed under another run's id: resume must not trust it
        return put(root, record(seed=0), name=run_id("conncomp", "tetrominoes", "default", "test", seed, PROFILE))
    elif kind == "not_utf8":
        p = d / "binary.json"
        p.write_bytes(b"\xff\xfe{\x00")
        return p
    elif kind == "deep_nesting":
        p = d / "deep.json"
        p.write_text("[" * 100_000 + "]" * 100_000)
        return p
    elif kind == "huge_number":
        bad["metrics"] = {"fg_ari": {"value": 10**400}}
    return put(root, bad)


KINDS = [
    "seed_string",
    "metric_string",
    "metrics_list",
    "folder",
    "dangling_link",
    "mathtext_method",
    "other_runs_name",
    "not_utf8",
    "deep_nesting",
    "huge_number",
]


# ------------------------------------------------------------------------ item 6: store, leaderboard, CLI


@pytest.mark.parametrize("kind", KINDS)
def test_store_reports_each_bad_record_by_path_and_the_leaderboard_builds(tmp_path, kind):
    good_store(tmp_path)
    bad = _bad(kind, tmp_path)
    store = ResultsStore(tmp_path)
    assert sorted(r["seed"] for r in store.records(PROFILE)) == [0, 1, 2]
    assert len(store.problems) == 1 and store.problems[0].startswith(f"{bad}: invalid record skipped ("), store.problems
    with few_paper_rows():
        rc, out, err = run_cli("leaderboard", "--results", str(tmp_path))
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and str(bad) in warnings[0], err
    assert "leaderboard.md" in out
    assert_page_has_only_the_good_runs(tmp_path)


def test_leaderboard_command_of_one_profile_exits_0_with_bad_records(tmp_path, monkeypatch):
    """``python -m benchmark leaderboard`` runs ``main``: the store from $OCBENCH_RESULTS, one profile."""
    good_store(tmp_path)
    bads = [_bad(k, tmp_path, seed=i) for i, k in enumerate(("seed_string", "folder", "mathtext_method"), 10)]
    monkeypatch.setenv("OCBENCH_RESULTS", str(tmp_path))
    with few_paper_rows():
        rc, out, err = run_cli("leaderboard", "--profile", PROFILE)
    assert rc == 0, err
    for b in bads:
        assert f"warning: {b}: invalid record skipped" in err
    assert_only_the_good_runs((tmp_path / "leaderboard" / PROFILE / "leaderboard.md").read_text())
    rc, out, err = run_cli("leaderboard", "--profile", "../escape")  # a profile is a name, not a path
    assert rc == 2 and err.startswith("error: invalid profile") and "'../escape'" in err and len(err.splitlines()) == 1


def test_resume_does_not_count_an_invalid_record_as_done(tmp_path):
    unit = runner.Unit("conncomp", "tetrominoes", "default", 0)
    opts = runner.RunOptions(profile=PROFILE, results=tmp_path)
    splits = runner.unit_splits(unit, PROFILE)
    for split in splits:
        put(tmp_path, record(split=split))
    store = ResultsStore(tmp_path)
    assert runner.unit_done(unit, opts, store)  # control: valid records are done
    rid = run_id("conncomp", "tetrominoes", "default", splits[-1], 0, PROFILE)
    for broken in (
        record(split=splits[-1], seed="0", run_id=rid),  # valid JSON, wrong type
        record(split=splits[-1], metrics=[1]),  # metrics not a dict
        record(seed=5, split=splits[-1]),
    ):  # another run's record
        put(tmp_path, broken, name=rid)
        store = ResultsStore(tmp_path)
        assert not runner.unit_done(unit, opts, store)
        assert len(store.problems) == 1 and f"{rid}.json: invalid record skipped (" in store.problems[0]
        assert store.get(rid, PROFILE) is None


def test_run_prints_its_summary_when_the_leaderboard_step_fails(tmp_path):
    summary = {"planned": 1, "skipped": 0, "ran": 1, "ok": 1, "failed": 0, "seconds": 1.0, "failures": []}
    args = [
        "run",
        "--methods",
        "conncomp",
        "--datasets",
        "tetrominoes",
        "--profile",
        PROFILE,
        "--results",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    good_store(tmp_path)
    _bad("mathtext_method", tmp_path, seed=10)
    _bad("seed_string", tmp_path, seed=11)
    with mock.patch.object(runner, "run_grid", return_value=summary), few_paper_rows():
        rc, out, err = run_cli(*args)  # bad records: reported, the page built, the summary printed
        assert rc == 0, err
        assert "runs: 1 planned" in out and "leaderboard:" in out
        assert err.count("invalid record skipped") == 2
        with mock.patch.object(leaderboard, "build", side_effect=RuntimeError("disk on fire")):
            rc, out, err = run_cli(*args)  # any failure of the leaderboard step: the summary still comes
    assert "runs: 1 planned, 0 skipped (already stored), 1 ran -> 1 records ok" in out
    assert rc == 1 and "error: leaderboard not rebuilt (RuntimeError: disk on fire)" in err


# ------------------------------------------------------------------------ item 6: leaderboard.build API


def test_build_skips_invalid_records_and_reports_each(tmp_path):
    good = [record(seed=s) for s in range(3)]
    bad = [
        record(seed="0"),
        {"status": "ok"},
        record(seed=4, metrics={"fg_ari": {"value": [1]}}),
        "not a dict",
        record(seed=5, by_length={"fg_ari": {"ten": 0.5}}),
        record(seed=6, dataset="d\x00"),
    ]
    problems: list[str] = []
    with few_paper_rows():
        paths = leaderboard.build(good + bad, tmp_path, problems=problems)
    assert [p.split(":")[0].split(".")[0] for p in problems] == [f"records[{i}]" for i in range(3, 9)], problems
    assert "records[3].seed: expected a 64-bit integer, got '0'" in problems[0]
    md = paths["leaderboard.md"].read_text()
    assert_only_the_good_runs(md)
    assert "6 invalid records left out" in md
    with pytest.warns(UserWarning, match=r"records\[3\]\.seed"), few_paper_rows():
        leaderboard.build(good + bad[:1], tmp_path)  # without a problems list: a warning per bad record
    with pytest.raises(ValueError, match=r"records\[3\]\.seed"):  # the strict API is unchanged
        leaderboard.aggregate(good + bad[:1])


@pytest.mark.parametrize(
    "rec, reason",
    [
        (record(seed="0"), r"^seed: expected a 64-bit integer, got '0'$"),
        (record(seed=2**64), r"^seed: expected a 64-bit integer"),
        (record(status="done"), r"^status: expected one of"),
        (record(metrics=[1]), r"^metrics: expected a dict of metric entries, got list$"),
        (record(metrics={"fg_ari": "high"}), r"^metrics\.fg_ari: expected a number or null, got str 'high'$"),
        (record(metrics={"fg_ari": {"value": 10**400}}), r"^metrics\.fg_ari\.value: number .* is too large$"),
        (record(by_length={"fg_ari": {"0": 0.5}}), r"^by_length\.fg_ari: length keys must be integers from 1"),
        (record(method=""), r"^method: expected a non-empty string"),
        (record(split="te\nst"), r"^split: .* control or invalid character"),
        (record(schema=True), r"^schema: expected 1, got True$"),
        ({"status": "ok"}, r"^record: missing field\(s\)"),
    ],
)
def test_check_record_says_which_field_is_wrong(rec, reason):
    with pytest.raises(ValueError, match=reason):
        leaderboard.check_record(rec)


def test_hostile_names_are_escaped_and_figures_stay_in_their_folder(tmp_path):
    from matplotlib.cbook import is_math_text
    from matplotlib.text import Text

    import leaderboard.figures as figures

    out = tmp_path / "out"
    names = {"method": r"$\frac{a$", "dataset": "../../escaped", "variant": "<b>v</b>|x`y`"}
    recs = [record(seed=s, metrics={"fg_ari": 0.5, "$x^2$": 0.1}, **names) for s in range(2)]
    recs += [
        record(method="$x^2$", seed=0, dataset="../../escaped", variant=names["variant"]),
        record(method="m", seed=0, dataset="a/b", split="test_n2"),
        record(method="m", seed=0, dataset="a/b", split="test_n3"),
    ]
    drawn: list[str] = []
    real_save = figures._save

    def save(fig, path):
        drawn.extend(t.get_text() for t in fig.findobj(Text))
        return real_save(fig, path)

    with mock.patch.object(figures, "_save", save):
        paths = leaderboard.build(recs, out, paper=False)
    # no file left the output folder; the figures are named after a safe form of the dataset name
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("*.png"))
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs and all(re.fullmatch(r"(bars|by_length|by_count)_[A-Za-z0-9][A-Za-z0-9_.-]*\.png", f) for f in figs)
    assert any(f.startswith("by_count_a-b-") for f in figs) and any(f.startswith("bars_escaped-") for f in figs)
    # the figures show the names as written: nothing is parsed as mathtext
    assert any("frac" in t for t in drawn) and any("x^2" in t for t in drawn)
    assert not [t for t in drawn if is_math_text(t)]
    # Markdown: cells escape |, <, >, backticks, $; a table row still has exactly its columns
    md = paths["leaderboard.md"].read_text()
    assert "<b>" not in md and "`y`" not in md and r"\<b\>v\</b\>\|x\`y\`" in md
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    row = next(line for line in md.splitlines() if "frac" in line and line.startswith("| "))
    cells = lambda line: re.split(r"(?<!\\)\|", line.strip().strip("|"))  # noqa: E731
    assert len(cells(row)) == len(cells(header)) == 5, (header, row)
    assert r"\$\\frac{a\$" in row
    assert "<b>" not in paths["index.html"].read_text()


# ------------------------------------------------------------------------ hypothesis: random corruptions

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=6,
)
_NOT_INT = _JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, int))
_TRUTHY_NOT_DICT = _JSON.filter(lambda v: bool(v) and not isinstance(v, dict))
_BAD_ENTRY = st.one_of(
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.booleans(),
    st.dictionaries(st.sampled_from(["std", "n"]), st.integers(), max_size=2),
    st.builds(lambda v: {"value": v}, st.text(max_size=5) | st.lists(st.integers(), max_size=2)),
)


def _corruption():
    """A (kind, payload) that makes a valid record invalid whatever the payload."""
    name_field = st.sampled_from(["method", "dataset", "variant", "split", "profile", "run_id"])
    return st.one_of(
        st.tuples(st.just("set"), st.just("seed"), _NOT_INT),
        st.tuples(st.just("set"), st.just("status"), _JSON.filter(lambda v: v not in ("ok", "failed"))),
        st.tuples(st.just("set"), name_field, _JSON),  # any change: run id mismatch, unsafe or not a string
        st.tuples(st.just("set"), st.just("metrics"), _TRUTHY_NOT_DICT),
        st.tuples(st.just("set"), st.just("metrics"), st.dictionaries(st.just("fg_ari"), _BAD_ENTRY, min_size=1)),
        st.tuples(st.just("set"), st.just("by_length"), _TRUTHY_NOT_DICT),
        st.tuples(st.just("set"), st.just("schema"), _JSON.filter(lambda v: v != 1 or isinstance(v, bool))),
        st.tuples(
            st.just("drop"),
            st.sampled_from(
                ["run_id", "status", "method", "dataset", "variant", "split", "seed", "profile", "metrics"]
            ),
            st.none(),
        ),
        st.tuples(st.just("bytes"), st.just(""), st.binary(max_size=40)),
        st.tuples(st.just("truncate"), st.just(""), st.floats(0, 0.99)),
        st.tuples(st.sampled_from(["folder", "dangling_link", "other_runs_name"]), st.just(""), st.none()),
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_corruption(), min_size=1, max_size=4))
def test_random_corruptions_never_stop_the_leaderboard(corruptions):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        good_store(root)
        bad_paths = []
        for i, (kind, key, payload) in enumerate(corruptions):
            rec = record(seed=10 + i)
            p = root / PROFILE / f"{rec['run_id']}.json"
            if kind == "set":
                if rec.get(key) == payload and key not in ("seed", "schema"):
                    payload = [payload]  # an unchanged name would still be valid
                rec[key] = payload
                p.write_text(json.dumps(rec))
            elif kind == "drop":
                del rec[key]
                p.write_text(json.dumps(rec))
            elif kind == "bytes":
                p.write_bytes(payload)
            elif kind == "truncate":
                text = json.dumps(rec)
                p.write_text(text[: int(payload * len(text))])
            elif kind == "folder":
                p.mkdir()
            elif kind == "dangling_link":
                os.symlink(root / "nowhere", p)
            elif kind == "other_runs_name":
                p.write_text(json.dumps(record(seed=0)))
            bad_paths.append(p)
            assert ResultsStore(root).get(p.stem, PROFILE) is None  # resume redoes that run
        with few_paper_rows():
            rc, out, err = run_cli("leaderboard", "--results", str(root))
        assert rc == 0, err
        warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
        assert len(warnings) == len(bad_paths), err
        for p in bad_paths:
            assert any(w.startswith(f"warning: {p}: invalid record skipped (") for w in warnings), (p, err)
        assert_page_has_only_the_good_runs(root)


# ------------------------------------------------------------------------ item 10 (part): permissions


def test_records_are_written_like_any_results_file(tmp_path):
    """0666 less the umask: 0644 by default (tempfile.mkstemp made 0600 records no one else could read)."""
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            p = ResultsStore(tmp_path / oct(umask)).write(record())
        finally:
            os.umask(old)
        assert stat.S_IMODE(p.stat().st_mode) == mode, (oct(umask), oct(p.stat().st_mode))
        assert [f.name for f in p.parent.iterdir()] == [p.name]  # no temporary left behind


@pytest.mark.parametrize("target", ["pandas.DataFrame.to_csv", "matplotlib.figure.Figure.savefig"])
def test_a_full_disk_leaves_no_leaderboard_temporaries(tmp_path, target):
    def full(self, path, *a, **kw):
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with mock.patch(target, full), pytest.raises(OSError, match="No space left"):
        leaderboard.build([record(seed=s) for s in range(2)], tmp_path, paper=False)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_temporary_files_of_killed_writers_are_swept_and_fresh_ones_kept(tmp_path):
    """kill -9 between create and rename leaves ``.<record>.<random>.tmp``: the next run removes it once it
    is an hour old (a live write takes milliseconds) and never touches records or fresh temporaries."""
    import os
    import time

    from benchmark.store import ResultsStore

    folder = tmp_path / "quick"
    folder.mkdir()
    old = folder / ".m__d__v__test__s0__quick.json.0a1b2c.tmp"
    fresh = folder / ".m__d__v__test__s0__quick.json.3d4e5f.tmp"
    record = folder / "m__d__v__test__s0__quick.json"
    for p in (old, fresh, record):
        p.write_text("{")
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(record, (past, past))
    assert ResultsStore(tmp_path).sweep_temporary("quick") == [old]
    assert not old.exists() and fresh.exists() and record.exists()
