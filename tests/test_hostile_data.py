"""Hostile data on disk: tampered manifests (item 5), regeneration racing readers (item 7), full disks and
writers killed mid-split (item 8). Each ends in one clear DatasetError line, never a raw exception, and
leaves the store whole: the old split intact, no temporary folder behind.

Subprocess tests import this module to get the toy datasets (``python -c 'import tests.test_hostile_data'``).
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import generators
from generators import core
from generators.core import DatasetError, DatasetSpec, Variant, register_dataset

REPO = Path(__file__).resolve().parents[1]
NAME, BIG = "_hostile", "_hostile_big"
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _render(cfg, seeds):
    time.sleep(float(os.environ.get("HOSTILE_RENDER_DELAY", 0)))  # a slow generator, to be killed mid-split
    n, S = len(seeds), cfg["size"]
    video = np.zeros((n, 1, S, S, 3), np.uint8)
    masks = np.zeros((n, 1, S, S), np.uint8)
    nobj = np.zeros(n, np.int16)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        k = int(rng.integers(1, 3))
        nobj[i] = k
        for j in range(k):
            r, c = rng.integers(0, S - 2, 2)
            masks[i, :, r : r + 2, c : c + 2] = j + 1
            video[i, :, r : r + 2, c : c + 2] = 100 + 50 * j
    return {"video": video, "masks": masks, "objects/n_objects": nobj}


register_dataset(
    DatasetSpec(
        name=NAME,
        version="1.0.0",
        kind="image",
        base_config={"size": 8},
        variants={"a": Variant(), "b": Variant(config={"note": "b"})},
        default_variant="a",
        sizes={p: {"train": 10, "test": 7} for p in core.PROFILES},
        render=_render,
        chunk=3,
    )
)
# 28 samples of 128x128x3 + masks: about 1.8 MB, so a 3 MB disk holds one copy but not two
register_dataset(
    DatasetSpec(
        name=BIG,
        version="1.0.0",
        kind="image",
        base_config={"size": 128},
        variants={"a": Variant()},
        default_variant="a",
        sizes={p: {"train": 28} for p in core.PROFILES},
        render=_render,
        chunk=8,
    )
)


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _child(code: str, *args, **kw) -> subprocess.Popen:
    """A Python process with this module imported (the toy datasets registered); ``args`` -> sys.argv[1:]."""
    pre = f"import sys; sys.path.insert(0, {str(REPO)!r}); import tests.test_hostile_data as t, generators\n"
    return subprocess.Popen(
        [sys.executable, "-c", pre + code, *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


# ----------------------------------------------------------------------------- 5: manifest fields


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    generators.generate_split(NAME, "test", profile="smoke", root=root)
    return root


def _copy(pristine, dest) -> Path:
    root = Path(dest) / "root"
    shutil.copytree(pristine, root)
    return root


def _edit_manifest(root, edit) -> Path:
    folder = generators.split_dir(NAME, "test", profile="smoke", root=root)
    man = json.loads((folder / "manifest.json").read_text())
    edit(man)
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def _assert_refused_then_remade(root, *, fragment=None, remake=True):
    """load refuses with one line naming the fix; status says corrupt (so ``run`` remakes it); generate remakes it."""
    with pytest.raises(DatasetError) as e:
        generators.load(NAME, "test", profile="smoke", root=root)
    msg = str(e.value)
    assert "\n" not in msg and f"python -m benchmark generate {NAME}" in msg, msg
    if fragment:
        assert fragment in msg, msg
    assert generators.status(NAME, profile="smoke", root=root)["test"].startswith("corrupt: ")
    if not remake:
        return msg
    generators.generate_split(NAME, "test", profile="smoke", root=root)
    ds = generators.load(NAME, "test", profile="smoke", root=root)
    assert len(ds) == 7 and ds.kind == "image" and ds.video.shape == (7, 1, 8, 8, 3)
    return msg


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m.update(count=3), "count is 3"),  # was: 'verified', scored on 3 of 7 samples
        (lambda m: m.update(count=1000), "count is 1000"),  # was: 'verified', len 1000, the method blamed
        (lambda m: m["files"].pop("video.npy"), "files lists"),  # was: KeyError traceback
        (lambda m: m.update(kind="video"), "kind is 'video'"),  # was: tracking metrics on an image set
        (lambda m: m.update(version="1.0.1"), "version"),
        (lambda m: m.update(variant="b"), "variant"),
        (lambda m: m.update(profile="quick"), "profile"),
        (lambda m: m.update(split="train"), "split"),
        (lambda m: m.update(generator="tetrominoes"), "generator"),
        (lambda m: m["files"]["masks.npy"].update(shape=[7, 1, 8, 9]), "masks.npy"),
        (lambda m: m["files"]["masks.npy"].update(dtype="<i8"), "masks.npy"),
        (lambda m: m["config"].update(size=9), "different config"),
        (lambda m: m.update(seed_key="other"), "seed_key"),
    ],
    ids=[
        "count-fewer",
        "count-more",
        "files-entry-removed",
        "kind",
        "version",
        "variant",
        "profile",
        "split",
        "generator",
        "shape",
        "dtype",
        "config",
        "seed_key",
    ],
)
def test_manifest_field_edits_are_refused(pristine, tmp_path, edit, fragment):
    root = _copy(pristine, tmp_path)
    _edit_manifest(root, edit)
    _assert_refused_then_remade(root, fragment=fragment)


# every manifest field but seconds (the one free field: any time >= 0)
_KEYS = [
    "config",
    "count",
    "files",
    "format",
    "generator",
    "kind",
    "profile",
    "seed_key",
    "seed_rule",
    "split",
    "variant",
    "version",
]
_FILE_KEYS = ["bytes", "dtype", "key", "sha256", "shape"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=5,
)
_near = st.sampled_from(
    [
        6,
        8,
        0,
        -1,
        7.0,
        "7",
        True,
        "video",
        "image",
        "train",
        "quick",
        "b",
        "1.0.1",
        2,
        [7, 1, 8, 8, 3],
        "|u1",
        "<i2",
        "0" * 64,
        [],
        {},
    ]
)
_edits = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(_KEYS), _json | _near),
    st.tuples(st.just("drop"), st.sampled_from(_KEYS + ["seconds"]), st.none()),
    st.tuples(st.just("add"), st.text(min_size=1, max_size=6), _json),
    st.tuples(st.just("file_drop"), st.sampled_from(["video.npy", "masks.npy", "objects.n_objects.npy"]), st.none()),
    st.tuples(st.just("file_add"), st.sampled_from(["extra.npy", "../x.npy", "/etc/passwd", "objects.pos.npy"]), _json),
    st.tuples(
        st.just("file_set"),
        st.tuples(st.sampled_from(["video.npy", "masks.npy", "objects.n_objects.npy"]), st.sampled_from(_FILE_KEYS)),
        _json | _near,
    ),
    st.tuples(st.just("config_set"), st.sampled_from(["size", "split", "note", "new"]), _json | _near),
)


@SETTINGS
@given(edit=_edits)
def test_random_manifest_edits_are_refused(pristine, edit):
    kind, where, value = edit
    with tempfile.TemporaryDirectory() as d:
        root = _copy(pristine, d)
        folder = generators.split_dir(NAME, "test", profile="smoke", root=root)
        original = json.loads((folder / "manifest.json").read_text())
        man = json.loads(json.dumps(original))
        if kind == "set":
            man[where] = value
        elif kind == "drop":
            del man[where]
        elif kind == "add":
            man.setdefault(where, value)
        elif kind == "file_drop":
            del man["files"][where]
        elif kind == "file_add":
            man["files"].setdefault(where, value)
        elif kind == "file_set":
            man["files"][where[0]][where[1]] = value
        else:
            man["config"][where] = value
        if json.dumps(man, sort_keys=True) == json.dumps(original, sort_keys=True):
            return  # the edit changed nothing
        (folder / "manifest.json").write_text(json.dumps(man))
        _assert_refused_then_remade(root, remake=False)


def _rewrite_npy(folder: Path, fn: str, array, *, fix_manifest: dict | None = None):
    """Replace one array and, like a careful tamperer, update its sha256 and size in the manifest."""
    np.save(folder / fn, array, allow_pickle=True)
    man = json.loads((folder / "manifest.json").read_text())
    man["files"][fn].update(
        sha256=core.sha256_file(folder / fn), bytes=(folder / fn).stat().st_size, **(fix_manifest or {})
    )
    (folder / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize(
    "damage", ["fewer-rows", "wider-dtype", "object-dtype", "fortran", "extra-file", "symlink", "garbage-header"]
)
def test_arrays_disagreeing_with_the_manifest_are_refused(pristine, tmp_path, damage):
    """Checksums that match do not make a split valid: each header must say what the generator writes."""
    root = _copy(pristine, tmp_path)
    folder = generators.split_dir(NAME, "test", profile="smoke", root=root)
    masks = np.load(folder / "masks.npy")
    if damage == "fewer-rows":  # count and shape edited to match: the generator's size still says 7
        _rewrite_npy(folder, "masks.npy", masks[:3], fix_manifest={"shape": [3, 1, 8, 8]})
    elif damage == "wider-dtype":  # header and data int64, manifest still says uint8
        _rewrite_npy(folder, "masks.npy", masks.astype(np.int64))
    elif damage == "object-dtype":  # a pickle in disguise: refused from its header, never unpickled
        _rewrite_npy(folder, "masks.npy", np.array([object()] * 7, dtype=object))
    elif damage == "fortran":
        _rewrite_npy(folder, "masks.npy", np.asfortranarray(masks))
    elif damage == "extra-file":
        (folder / "notes.txt").write_text("not part of any split")
    elif damage == "symlink":  # e.g. to /dev/zero: sha256 would never end
        (folder / "masks.npy").unlink()
        (folder / "masks.npy").symlink_to(tmp_path / "elsewhere.npy")
        np.save(tmp_path / "elsewhere.npy", masks)
    else:
        raw = (folder / "masks.npy").read_bytes()
        _rewrite_npy(folder, "masks.npy", masks)
        (folder / "masks.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': oops}  \n" + raw[64:])
        man = json.loads((folder / "manifest.json").read_text())
        man["files"]["masks.npy"].update(
            sha256=core.sha256_file(folder / "masks.npy"), bytes=(folder / "masks.npy").stat().st_size
        )
        (folder / "manifest.json").write_text(json.dumps(man))
    _assert_refused_then_remade(root)


@SETTINGS
@given(data=st.data())
def test_random_byte_flips_in_arrays_are_refused(pristine, data):
    with tempfile.TemporaryDirectory() as d:
        root = _copy(pristine, d)
        folder = generators.split_dir(NAME, "test", profile="smoke", root=root)
        fn = data.draw(st.sampled_from(["video.npy", "masks.npy", "objects.n_objects.npy"]))
        raw = bytearray((folder / fn).read_bytes())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
        (folder / fn).write_bytes(bytes(raw))
        _assert_refused_then_remade(root, remake=False)


def test_hostile_manifest_values_never_become_a_command(pristine, tmp_path):
    """Values from the manifest are not echoed into the regenerate command they could inject into."""
    root = _copy(pristine, tmp_path)
    folder = _edit_manifest(root, lambda m: m.update(generator="x; rm -rf ~", variant="a\nb"))
    with pytest.raises(DatasetError) as e:
        core.verify_split(folder)
    assert "rm -rf" not in str(e.value).split("regenerate with:")[1] and "\n" not in str(e.value)
    assert "delete " in str(e.value)


# ----------------------------------------------------------------------- 7: swap under readers

_WRITER = """
import json, os, sys, time
root, go, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
_replace = os.replace
def descheduled(src, dst, *a, **k):  # the writer loses the CPU right after its split stepped aside
    _replace(src, dst, *a, **k)
    if os.path.basename(str(src)) == 'train':
        time.sleep(0.03)
os.replace = descheduled
open(out + '.ready', 'w').close()
while not os.path.exists(go):
    time.sleep(0.005)
errors = []
for _ in range(n):
    try:
        generators.generate_split(t.NAME, 'train', profile='smoke', root=root, force=True)
    except Exception as e:
        errors.append(f'{type(e).__name__}: {e}')
json.dump({'done': n, 'errors': errors}, open(out, 'w'))
"""

_READER = """
import json, os, sys, time
import numpy as np
root, go, out, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
open(out + '.ready', 'w').close()
while not os.path.exists(go):
    time.sleep(0.005)
loads, missing, errors, t_end = 0, 0, [], time.time() + 90
while (loads < 3 or not all(os.path.exists(s) for s in stop)) and time.time() < t_end:
    try:
        ds = generators.load(t.NAME, 'train', profile='smoke', root=root)
        assert len(ds) == 10 and int(np.asarray(ds.masks).max()) > 0
        loads += 1
    except generators.DatasetError as e:
        if 'not generated' in str(e):
            missing += 1
        else:
            errors.append(f'DatasetError: {e}')
    except Exception as e:
        errors.append(f'{type(e).__name__}: {e}')
json.dump({'loads': loads, 'missing': missing, 'errors': errors}, open(out, 'w'))
"""


def test_regeneration_never_leaves_readers_without_a_split(tmp_path):
    """Two writers force-regenerate one split while a reader loads it in a loop: the reader always finds a
    whole split (old or new), and nobody sees a raw exception. Before: FileNotFoundError, 'not generated'.
    The writers pause right after the old split steps aside, as a busy machine may make them, so the
    window that was there all along is hit every time rather than once in fifty."""
    root, go = tmp_path / "data", tmp_path / "go"
    generators.generate_split(NAME, "train", profile="smoke", root=root)
    outs = [tmp_path / "w1.json", tmp_path / "w2.json", tmp_path / "r.json"]
    procs = [
        _child(_WRITER, root, go, outs[0], 10),
        _child(_WRITER, root, go, outs[1], 10),
        _child(_READER, root, go, outs[2], outs[0], outs[1]),
    ]
    try:
        deadline = time.time() + 60
        while not all(Path(f"{o}.ready").exists() for o in outs):
            assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.02)
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    w1, w2, r = (json.loads(o.read_text()) for o in outs)
    assert w1["errors"] == [] and w2["errors"] == [], (w1["errors"][:3], w2["errors"][:3])
    assert r["errors"] == [] and r["missing"] == 0, r
    assert r["loads"] >= 3
    parent = generators.split_dir(NAME, "train", profile="smoke", root=root).parent
    assert _hidden(parent) == []  # neither temporary nor old folders are left
    assert len(generators.load(NAME, "train", profile="smoke", root=root)) == 10


# ------------------------------------------------------------ 8: killed writers, full disks

_SLOW = """
generators.generate_split(t.NAME, 'train', profile='smoke', root=sys.argv[1])
"""


def test_killed_writer_is_swept_at_the_next_start(tmp_path):
    """kill -9 mid-split leaves a temporary folder; the next generate removes it and makes the split."""
    root = tmp_path / "data"
    parent = generators.split_dir(NAME, "train", profile="smoke", root=root).parent
    proc = _child(_SLOW, root, env={**os.environ, "HOSTILE_RENDER_DELAY": "0.4"})
    try:
        deadline = time.time() + 60
        while not (parent.is_dir() and any((p / "video.npy").exists() for p in parent.glob(".train.tmp-*"))):
            assert time.time() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    orphans = _hidden(parent)
    assert len(orphans) == 1 and orphans[0].startswith(".train.tmp-")
    generators.generate_split(NAME, "train", profile="smoke", root=root)
    assert _hidden(parent) == []
    assert len(generators.load(NAME, "train", profile="smoke", root=root)) == 10


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_keeps_live_and_foreign_writers_and_restores_a_cut_swap(tmp_path):
    root = tmp_path / "data"
    final = generators.generate_split(NAME, "train", profile="smoke", root=root)
    parent = final.parent
    host, me = core._host(), os.getpid()
    live = parent / f".train.tmp-{host}-{me}-{core._start_ticks(me)}-0a0a0a0a"  # this process: alive
    foreign = parent / f".train.tmp-otherhost-{_dead_pid()}-0-0b0b0b0b"  # touched a moment ago
    foreign_stale = parent / f".train.tmp-otherhost-{_dead_pid()}-0-0f0f0f0f"  # no heartbeat for 2 hours
    dead = parent / f".test.tmp-{host}-{_dead_pid()}-0-0c0c0c0c"  # its writer is gone
    reused = parent / f".test.tmp-{host}-{me}-{core._start_ticks(me) + 1}-0d0d0d0d"  # pid reused by another process
    legacy_old = parent / ".train.tmp-abcd_123"  # earlier versions' name, 2 days old
    legacy_new = parent / ".test.tmp-wxyz_789"  # ... written a moment ago
    unrelated = parent / ".keep-me"
    for p in (live, foreign, foreign_stale, dead, reused, legacy_old, legacy_new, unrelated):
        p.mkdir()
        (p / "video.npy").write_bytes(b"x" * 100)
    os.utime(legacy_old, (time.time() - 2 * 86400,) * 2)
    os.utime(foreign_stale, (time.time() - 2 * 3600,) * 2)
    # a swap cut between its renames: the split stepped aside and its writer died
    cut = parent / f".train.old-{host}-{_dead_pid()}-0-0e0e0e0e"
    os.replace(final, cut)
    inode = (cut / "manifest.json").stat().st_ino
    generators.generate_split(NAME, "train", profile="smoke", root=root)
    assert _hidden(parent) == sorted(p.name for p in (live, foreign, legacy_new, unrelated))
    # the old split came back (and verified), it was not regenerated
    assert (final / "manifest.json").stat().st_ino == inode


@SETTINGS
@given(
    names=st.lists(
        st.from_regex(r"\.[a-z0-9_.-]{1,30}", fullmatch=True).filter(lambda n: n != ".."), max_size=6, unique=True
    )
)
def test_sweep_removes_nothing_it_cannot_prove_orphaned(names):
    with tempfile.TemporaryDirectory() as d:
        parent = Path(d)
        for n in names:
            (parent / n).mkdir()
        core.sweep_orphans(parent)
        assert sorted(p.name for p in parent.iterdir()) == sorted(names)


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fault", ["free-space", "fallocate", "fsync"])
@pytest.mark.parametrize("old", [True, False], ids=["over-old-split", "first-split"])
def test_simulated_full_disk_is_one_clear_error(tmp_path, monkeypatch, fault, old):
    """ENOSPC before, while reserving, or after writing: one DatasetError line, no debris, old split intact."""
    root = tmp_path / "data"
    final = generators.split_dir(NAME, "train", profile="smoke", root=root)
    if old:
        generators.generate_split(NAME, "train", profile="smoke", root=root)
        before = (final / "manifest.json").read_text()
    else:
        final.parent.mkdir(parents=True)
    if fault == "free-space":
        monkeypatch.setattr(shutil, "disk_usage", lambda p: types.SimpleNamespace(total=10**9, used=10**9, free=1000))
    elif fault == "fallocate":
        monkeypatch.setattr(os, "posix_fallocate", _enospc)
    else:
        monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(DatasetError) as e:
        generators.generate_split(NAME, "train", profile="smoke", root=root, force=True)
    msg = str(e.value)
    assert msg.startswith("no space left in ") and "\n" not in msg and f"{NAME}/a/smoke/train" in msg, msg
    monkeypatch.undo()
    assert _hidden(final.parent) == []
    if old:
        assert (final / "manifest.json").read_text() == before
        assert len(generators.load(NAME, "train", profile="smoke", root=root)) == 10
    else:
        assert not final.exists()


_CLI = """
from benchmark.cli import main
if sys.argv[2] == 'no-precheck':
    generators.core._free_bytes = lambda folder: None  # reach the reservation itself
sys.exit(main(['generate', t.BIG, '--profile', 'smoke', '--data-root', sys.argv[1]] + sys.argv[3:]))
"""


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("mode", ["precheck", "no-precheck"])
def test_real_full_disk_is_one_clear_error(tiny_disk, mode):
    """A 3 MB tmpfs holds one copy of the split, not two: forcing it again fails cleanly (before: SIGBUS,
    exit 135, nothing printed, a hidden .train.tmp-* folder filling the disk)."""
    final = generators.generate_split(BIG, "train", profile="smoke", root=tiny_disk)
    before = (final / "manifest.json").read_text()
    second = _child(_CLI, tiny_disk, mode, "--force")  # in a child: before, it died of SIGBUS
    out, err = second.communicate(timeout=120)
    assert second.returncode == 2, (second.returncode, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no space left in "), err[-2000:]
    assert _hidden(final.parent) == []
    assert (final / "manifest.json").read_text() == before
    assert len(generators.load(BIG, "train", profile="smoke", root=tiny_disk)) == 28
