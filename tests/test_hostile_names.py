"""Hostile names, plugins and predictions files (issue "Hardening", items 1, 2 and 4).

Names become paths: every CLI entry refuses an unsafe one with one ``error:`` line and exit 2, before
writing anything. A plugin may not take a built-in method's name unasked, and a plugin that fails
leaves the registry as it was. ``score`` never overwrites a record unasked, and reads only the arrays it
needs from a predictions file, refusing a member that declares more than the split can need.
"""

import contextlib
import hashlib
import io
import json
import os
import struct
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import baselines.base as bb
import generators
from baselines import MethodError, load_plugin, methods
from benchmark.cli import main
from generators.core import DatasetSpec, Variant, register_dataset

TOY = "hostile_toy"
N, T, S = 4, 2, 8


def _render(cfg, seeds):
    n = len(seeds)
    video = np.zeros((n, T, S, S, 3), np.uint8)
    masks = np.zeros((n, T, S, S), np.uint8)
    for i, s in enumerate(seeds):
        r = int(s % 4)
        video[i, :, r : r + 3, 1:4] = (255, 0, 0)
        masks[i, :, r : r + 3, 1:4] = 1
    return {"video": video, "masks": masks, "objects/n_objects": np.ones(n, np.int16)}


register_dataset(
    DatasetSpec(
        name=TOY,
        version="1.0.0",
        kind="video",
        base_config={},
        variants={"default": Variant()},
        default_variant="default",
        sizes={p: {"train": 4, "val": 2, "test": N} for p in ("smoke", "quick", "paper")},
        render=_render,
    )
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A sandbox: generated data, a store with two records, a good predictions file, an empty cwd."""
    root = tmp_path_factory.mktemp("hostile")
    generators.generate(TOY, profile="smoke", root=root / "data")
    ds = generators.load(TOY, "test", profile="smoke", root=root / "data")
    preds = root / "preds.npz"
    np.savez(preds, masks=np.asarray(ds.masks).astype(np.int32))
    (root / "cwd").mkdir()
    # the store lies deep enough that '../../../x' from its profile folder still lands in the sandbox
    w = {
        "root": root,
        "data": root / "data",
        "res": root / "deep" / "er" / "res",
        "preds": preds,
        "cwd": root / "cwd",
        "gt": np.asarray(ds.masks),
    }
    assert _main(w, "score", TOY, "--method", "seeded", "--predictions", str(preds))[0] == 0
    (w["res"] / "smoke" / "handmade.json").write_text('{"run_id": "x"}\n')  # even a corrupt one stays
    return w


@pytest.fixture()
def registry():
    """The method registry as it was, restored after the test (plugins here replace built-ins)."""
    methods()
    saved = (dict(bb._METHODS), dict(getattr(bb, "_ORIGINS", {})), dict(bb._PLUGINS))
    yield
    bb._METHODS.clear()
    bb._METHODS.update(saved[0])
    if hasattr(bb, "_ORIGINS"):
        bb._ORIGINS.clear()
        bb._ORIGINS.update(saved[1])
    bb._PLUGINS.clear()
    bb._PLUGINS.update(saved[2])


def _main(w, cmd, *args):
    """Run the CLI in the sandbox's cwd; (exit code, stdout, stderr). Data commands get the sandbox."""
    argv = [cmd, *args]
    if cmd in ("score", "run", "export", "show", "generate"):
        argv += ["--data-root", str(w["data"])]
    if cmd in ("score", "run", "results", "leaderboard"):
        argv += ["--results", str(w["res"])]
    if cmd in ("score", "run", "export", "show", "generate") and "--profile" not in args:
        argv += ["--profile", "smoke"]
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(w["cwd"])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(root.rglob("*"))}


def _one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], err


UNSAFE = ["../../../evil", "a/b", "<script>alert(1)</script>", "", ".hidden", "a__b", "Conncomp", "x" * 49, "ABSOLUTE"]


# ------------------------------------------------------------------------------ 1. names at the CLI


@pytest.mark.parametrize("name", UNSAFE)
def test_score_refuses_unsafe_method_names_and_writes_nothing(world, name):
    if name == "ABSOLUTE":
        name = str(world["root"] / "outside" / "evil")
    before = _tree(world["root"])
    code, _, err = _main(world, "score", TOY, f"--method={name}", "--predictions", str(world["preds"]))
    assert code == 2
    _one_error_line(err, "invalid method name")
    assert _tree(world["root"]) == before


BAD_ENTRIES = [
    ("score", TOY, "--split", "../test", "--predictions", "P"),
    ("score", TOY, "--variant", "a/b", "--predictions", "P"),
    ("score", "../" + TOY, "--predictions", "P"),
    ("run", "--methods", "conncomp", "../x", "--datasets", TOY, "--no-leaderboard"),
    ("run", "--methods", "conncomp", "--datasets", f"{TOY}:../default", "--no-leaderboard"),
    ("run", "--methods", "conncomp", "--datasets", "a/b", "--no-leaderboard"),
    ("run", "--methods", "conncomp", "--datasets", TOY, "--set", "../x.steps=1", "--no-leaderboard"),
    ("results", "--method", "../x"),
    ("results", "--dataset", "<b>"),
    ("results", "--variant", "a/b"),
    ("results", "--split", ".."),
    ("results", "--profile", "../.."),
    ("leaderboard", "--profile", "../../lb"),
    ("export", "../x", "--out", "x.npz"),
    ("export", TOY, "--split", "/etc", "--out", "x.npz"),
    ("show", TOY, "--variant", "../default"),
    ("show", TOY, "--split", "a/../test"),
    ("generate", "../" + TOY),
    ("generate", TOY, "--variant", "DEFAULT"),
]


@pytest.mark.parametrize("argv", BAD_ENTRIES, ids=[" ".join(a[:3]) for a in BAD_ENTRIES])
def test_every_cli_entry_refuses_unsafe_names(world, argv):
    argv = [str(world["preds"]) if a == "P" else a for a in argv]
    before = _tree(world["root"])
    code, _, err = _main(world, *argv)
    assert code == 2
    _one_error_line(err, "invalid", "name")
    assert _tree(world["root"]) == before


@pytest.mark.parametrize(
    "argv, words",
    [
        (("score", TOY, "--split", "nope", "--predictions", "P"), "valid splits"),
        (("run", "--methods", "nope", "--datasets", TOY, "--no-leaderboard"), "valid methods"),
        (("run", "--datasets", f"{TOY}:nope", "--no-leaderboard"), "valid variants"),
        (("generate", "nope"), "valid datasets"),
    ],
)
def test_unknown_but_safe_names_keep_their_messages(world, argv, words):
    argv = [str(world["preds"]) if a == "P" else a for a in argv]
    code, _, err = _main(world, *argv)
    assert code == 2
    _one_error_line(err, "unknown", words)


NAMES = st.one_of(st.text(max_size=12), st.text(alphabet="ab_.-/\\<>:*$ A\n", max_size=10))


@settings(max_examples=30, deadline=None)
@given(cmd=st.sampled_from(["score", "run", "results"]), name=NAMES)
@example(cmd="score", name="../../../evil")
@example(cmd="score", name="ok.name-1")
@example(cmd="run", name="a/b")
@example(cmd="run", name="--")  # argparse reads `--methods=--` as an empty list
@example(cmd="results", name="../smoke")
def test_random_names_never_leave_the_store(world, cmd, name):
    if cmd == "score":
        argv = ("score", TOY, f"--method={name}", "--predictions", str(world["preds"]))
    elif cmd == "run":
        if name in methods():
            return  # a real run of a registered method is not what this test is about
        argv = ("run", f"--methods={name}", "--datasets", TOY, "--no-leaderboard")
    else:
        argv = ("results", f"--method={name}")
    res = world["res"]
    before = _tree(world["root"])
    code, _, err = _main(world, *argv)
    after = _tree(world["root"])
    assert code in (0, 2), err
    if code == 2:
        _one_error_line(err)
    # nothing changed, nothing appeared outside the results folder; nothing stored there was touched
    assert {k: v for k, v in before.items()} == {k: v for k, v in after.items() if k in before}
    new = sorted(set(after) - set(before))
    for k in new:
        assert (world["root"] / k).resolve().is_relative_to(res.resolve()), k
    if code == 0 and cmd == "score":  # a safe, new name: exactly its own record, where results can see it
        rec = res / "smoke" / f"{name}__{TOY}__default__test__s0__smoke.json"
        assert new == [str(rec.relative_to(world["root"]))]
        code, out, _ = _main(world, "results", f"--method={name}", "--json")
        assert code == 0 and [r["method"] for r in json.loads(out)] == [name]
    else:
        assert new == []


# ------------------------------------------------------------------------------ 1 + 2. plugins


def _plugin(tmp_path, body: str, name: str = "plug.py") -> Path:
    p = tmp_path / name
    p.write_text(
        "import numpy as np\nfrom baselines import Method, Prediction, register_method\n" + textwrap.dedent(body)
    )
    return p


CC_PLUGIN = """
@register_method("also_new", kinds={"video", "image", "colour", "binary"}, learned=False)
class New(Method):
    def fit(self, train, val, ctx):
        pass

    def predict(self, batch):
        return Prediction(masks=np.zeros(np.asarray(batch["video"]).shape[:4], np.int64))

@register_method("conncomp", kinds={"video", "image", "colour", "binary"}, learned=False)
class Fake(New):
    pass
"""


@pytest.mark.parametrize("bad", ["../../../evil", "a/b", "<script>x</script>"])
def test_plugin_registering_an_unsafe_name_is_refused(tmp_path, registry, bad):
    p = _plugin(
        tmp_path,
        f"""
        @register_method("fine_one", kinds={{"video"}})
        class A(Method):
            pass

        @register_method({bad!r}, kinds={{"video"}})
        class B(Method):
            pass
    """,
    )
    before = methods()
    with pytest.raises(MethodError, match="invalid method name"):
        load_plugin(p)
    assert methods() == before  # not even the valid method registered before the bad one
    code, _, err = _main({"cwd": tmp_path}, "methods", "--plugin", str(p))
    assert code == 2
    _one_error_line(err, "invalid method name")


def test_plugin_cannot_replace_a_builtin_unasked(world, tmp_path, registry):
    p = _plugin(tmp_path, CC_PLUGIN)
    before = methods()
    with pytest.raises(MethodError, match="--replace-builtin"):
        load_plugin(p)
    assert methods() == before and "also_new" not in methods()
    code, _, err = _main({"cwd": tmp_path}, "methods", "--plugin", str(p))
    assert code == 2
    _one_error_line(err, "conncomp", "--replace-builtin")
    code, _, err = _main(
        dict(world, cwd=tmp_path), "run", "--methods", "also_new", "--plugin", str(p), "--datasets", TOY
    )
    assert code == 2
    _one_error_line(err, "--replace-builtin")


def test_plugin_that_swallows_the_refusal_is_refused_all_the_same(tmp_path, registry):
    p = _plugin(
        tmp_path,
        """
        import baselines.base as b

        class Fake(Method):
            pass

        try:
            register_method("conncomp", kinds={"video"})(Fake)
        except Exception:
            pass
        b._METHODS["conncomp"] = Fake
        register_method("swallower", kinds={"video"})(type("S", (Method,), {}))
    """,
    )
    cc = methods()["conncomp"]
    with pytest.raises(MethodError, match="built-in"):
        load_plugin(p)
    assert methods()["conncomp"] is cc and "swallower" not in methods()


@pytest.mark.parametrize("tail", ["raise RuntimeError('half way')", "import sys; sys.exit(3)"])
def test_plugin_failing_half_way_leaves_the_registry_as_it_was(tmp_path, registry, tail):
    p = _plugin(
        tmp_path,
        f"""
        @register_method("half_a", kinds={{"video"}})
        class A(Method):
            pass

        {tail}
    """,
    )
    before = methods()
    with pytest.raises(MethodError, match="failed to import"):
        load_plugin(p)
    assert methods() == before and "half_a" not in methods()


def test_replace_builtin_when_asked_and_records_say_which_file(world, tmp_path, registry):
    from benchmark import runner

    p = _plugin(tmp_path, CC_PLUGIN)
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    fresh = (dict(bb._METHODS), dict(bb._ORIGINS))
    builtin = runner.record_base("conncomp", TOY, "default", "test", 0, "smoke", "cpu")["origin"]
    assert builtin == {"kind": "builtin", "module": "baselines.conncomp"}
    code, out, err = _main({"cwd": tmp_path}, "methods", "--plugin", str(p), "--replace-builtin")
    assert code == 0, err
    line = [x for x in out.splitlines() if x.startswith("conncomp ")][0]
    assert str(p.resolve()) in line and sha[:12] in line
    assert bb.method_origin("conncomp") == {"kind": "plugin", "path": str(p.resolve()), "sha256": sha}
    # a unit in a fresh process re-imports the plugin with the run's permission (RunOptions)
    bb._restore(*fresh)
    bb._PLUGINS.clear()
    assert methods()["conncomp"].__module__ == "baselines.conncomp"
    opts = runner.RunOptions(
        profile="smoke",
        results=tmp_path / "res",
        data_root=str(world["data"]),
        work_dir=tmp_path / "runs",
        plugins=(str(p.resolve()),),
        replace_builtin=True,
        progress=False,
    )
    recs = runner.run_unit(runner.Unit("conncomp", TOY, "default", 0), opts, log=lambda s: None)
    assert recs and all(r["status"] == "ok" for r in recs)
    assert methods()["conncomp"].__name__ == "Fake"
    stored = json.loads((tmp_path / "res" / "smoke" / f"{recs[0]['run_id']}.json").read_text())
    assert stored["origin"] == {"kind": "plugin", "path": str(p.resolve()), "sha256": sha}


# ------------------------------------------------------------------------------ 2. score never overwrites unasked


def test_score_refuses_a_registered_method_name_unless_overwrite(world, tmp_path):
    w = dict(world, res=tmp_path / "res")
    code, _, err = _main(w, "score", TOY, "--method", "conncomp", "--predictions", str(w["preds"]))
    assert code == 2
    _one_error_line(err, "conncomp", "registered method", "--overwrite")
    assert not (tmp_path / "res").exists()
    code, _, err = _main(w, "score", TOY, "--method", "conncomp", "--predictions", str(w["preds"]), "--overwrite")
    assert code == 0, err
    rec = json.loads(next((tmp_path / "res" / "smoke").glob("conncomp__*.json")).read_text())
    assert rec["origin"] == {
        "kind": "external",
        "predictions": "preds.npz",
        "sha256": hashlib.sha256(w["preds"].read_bytes()).hexdigest(),
    }


def test_score_refuses_to_replace_a_stored_record_unless_overwrite(world, tmp_path):
    w = dict(world, res=tmp_path / "res")
    assert _main(w, "score", TOY, "--method", "mine", "--predictions", str(w["preds"]))[0] == 0
    path = tmp_path / "res" / "smoke" / f"mine__{TOY}__default__test__s0__smoke.json"
    first = path.read_bytes()
    other = tmp_path / "other.npz"
    np.savez(other, masks=np.zeros((N, T, S, S), np.int64))
    code, _, err = _main(w, "score", TOY, "--method", "mine", "--predictions", str(other))
    assert code == 2
    _one_error_line(err, "already exists", "--overwrite")
    assert path.read_bytes() == first
    assert _main(w, "score", TOY, "--method", "mine", "--predictions", str(other), "--overwrite")[0] == 0
    rec = json.loads(path.read_text())
    assert rec["origin"]["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert rec["metrics"]["ari"]["value"] != json.loads(first)["metrics"]["ari"]["value"]


# ------------------------------------------------------------------------------ 4. predictions files


def _npy_header(shape, dtype) -> bytes:
    d = f"{{'descr': {np.dtype(dtype).str!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    d += " " * (63 - (10 + len(d)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode("latin1")


def _deflate(data: bytes, zero_mib: int = 0) -> tuple[bytes, int, int]:
    """Raw deflate of ``data`` + ``zero_mib`` MiB of zeros: (stream, crc32, size), built in O(data)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [co.compress(data) + co.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(data)
    if zero_mib:
        mib = bytes(1 << 20)
        block = co.compress(mib) + co.flush(zlib.Z_FULL_FLUSH)  # self-contained: the window is reset
        out.append(block * zero_mib)
        for _ in range(zero_mib):
            crc = zlib.crc32(mib, crc)
    out.append(co.flush())
    return b"".join(out), crc, len(data) + (zero_mib << 20)


def _zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip of pre-deflated members (name, stream, crc, declared size), written by hand."""
    local, central = bytearray(), bytearray()
    for name, stream, crc, size in members:
        n = name.encode()
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                len(stream),
                size,
                len(n),
                0,
                0,
                0,
                0,
                0,
                len(local),
            )
            + n
        )
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(n), 0)
        local += n + stream
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local) + bytes(central) + eocd)
    return path


def _masks_member(gt) -> tuple[str, bytes, int, int]:
    m = np.ascontiguousarray(gt.astype(np.int32))
    return ("masks.npy", *_deflate(_npy_header(m.shape, m.dtype) + m.tobytes()))


def test_score_inflates_only_masks_and_recon(world, tmp_path):
    """A 2 MB file whose unused member declares 2 GiB: scored with a few MiB, the member never read."""
    from benchmark.external import score_file

    junk = ("junk.npy", *_deflate(_npy_header((2 << 30,), np.uint8), zero_mib=2048))
    path = _zip(tmp_path / "bomb.npz", [junk, _masks_member(world["gt"])])
    assert path.stat().st_size < 4 << 20
    tracemalloc.start()
    try:
        rec = score_file(TOY, "test", path, profile="smoke", data_root=world["data"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rec["metrics"]["ari"]["value"] == 1.0
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_member_declaring_more_than_the_split_needs_is_refused_before_inflating(world, tmp_path):
    from benchmark.external import PredictionFileError, score_file

    # the .npy header asks for a 4 GB array (the data is not even there)
    big = ("masks.npy", *_deflate(_npy_header((N * 10**6, T, S, S), np.int64) + bytes(64)))
    path = _zip(tmp_path / "big.npz", [big])
    with pytest.raises(PredictionFileError, match=r"masks.npy declares shape .* refusing"):
        score_file(TOY, "test", path, profile="smoke", data_root=world["data"])
    # the zip header declares 1 GiB for a member whose array is right: refused by its declared size
    name, stream, crc, _ = _masks_member(world["gt"])
    path = _zip(tmp_path / "liar.npz", [(name, stream, crc, 1 << 30)])
    with pytest.raises(PredictionFileError, match=r"declares 1073741824 bytes"):
        score_file(TOY, "test", path, profile="smoke", data_root=world["data"])
    # a recon member as large as it declares, but far more than the split can need
    recon = ("recon.npy", *_deflate(_npy_header((N * 50, T, S, S, 3), np.float64), zero_mib=1))
    path = _zip(tmp_path / "recon.npz", [_masks_member(world["gt"]), recon])
    with pytest.raises(PredictionFileError, match=r"recon.npy declares"):
        score_file(TOY, "test", path, profile="smoke", data_root=world["data"])


def test_npy_and_other_non_zip_files_get_a_clear_message(world, tmp_path):
    np.save(tmp_path / "p.npy", world["gt"].astype(np.int32))
    code, _, err = _main(world, "score", TOY, "--predictions", str(tmp_path / "p.npy"))
    assert code == 2
    _one_error_line(err, "single .npy array", "np.savez")
    (tmp_path / "p.txt").write_text("hello")
    code, _, err = _main(world, "score", TOY, "--predictions", str(tmp_path / "p.txt"))
    assert code == 2
    _one_error_line(err, "not a zip archive")
    # an object array is refused without unpickling
    np.savez(tmp_path / "obj.npz", masks=np.array([{"a": 1}], dtype=object))
    code, _, err = _main(world, "score", TOY, "--predictions", str(tmp_path / "obj.npz"))
    assert code == 2
    _one_error_line(err, "Python objects")
