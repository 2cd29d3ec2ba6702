"""The shape of the house (DESIGN.md "Layout"): one-way imports, one atomic write, one registry helper,
per-dataset method settings as data, one device resolver and seeding helper, the profile resolved once."""

from __future__ import annotations

import ast
import dataclasses
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

import baselines
import baselines.base as B
import generators
import generators.core as G
from benchmark import runner
from benchmark.store import ResultsStore
from ocbench_common.files import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    create_temporary,
)
from ocbench_common.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("benchmark", "generators", "metrics", "baselines", "leaderboard", "ocbench_common")
# what each package may import of the project (besides itself); tests may import anything
ALLOWED = {
    "benchmark": set(PROJECT),
    "baselines": {"metrics", "ocbench_common"},
    "generators": {"ocbench_common"},
    "metrics": {"ocbench_common"},
    "leaderboard": set(),
    "ocbench_common": set(),
}


def _modules(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """The top-level project packages ``source`` (module ``module``) imports, relative imports resolved,
    imports inside functions and ``importlib.import_module("constant")`` included."""
    found = set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                names = [".".join(up + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in PROJECT}
    return found


def test_the_import_checker_sees_what_it_must():
    src = (
        "import os\nfrom generators import x\ndef f():\n    import benchmark.cli\n    from .. import leaderboard\n"
        "importlib.import_module('metrics.catalogue')\n"
    )
    assert project_imports(src, "baselines.foo") == {"generators", "benchmark", "metrics"}
    assert project_imports("from ..metrics import a\nfrom . import b\n", "baselines.sub.mod") == {"baselines"}
    assert project_imports("from .core import a\n", "generators", is_package=True) == {"generators"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package):
    wrong = []
    for path in _modules(package):
        mod = _dotted(path)
        uses = project_imports(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py")
        bad = uses - ALLOWED[package] - {package}
        if bad:
            wrong.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])} of the project: {wrong}"


# ------------------------------------------------------------------------------- one atomic write

# os.replace / os.rename callers allowed: the shared write, the leaderboard's own (it imports no project
# package) and the split folder swap of generators/_storage.py, which renames whole folders, not files
RENAMERS = {
    ("ocbench_common/files.py", "atomic_write"),
    ("ocbench_common/files.py", "atomic_write_bytes"),
    ("leaderboard/__init__.py", "_replace"),
    ("generators/_storage.py", "_swap_in"),
    ("generators/_storage.py", "sweep_orphans"),
}


def _renames(path: Path) -> list[tuple[str, str]]:
    out = []

    def visit(node, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in ("replace", "rename")
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id == "os"
            ):
                out.append((path.relative_to(ROOT).as_posix(), func))
            visit(child, name)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>")
    return out


def test_one_atomic_write_outside_leaderboard():
    found = {r for p in _modules(*PROJECT, "scripts", "benchmarks") for r in _renames(p)}
    assert found - RENAMERS == set(), "write files with ocbench_common.files.atomic_write*, not os.replace"
    assert ("ocbench_common/files.py", "atomic_write") in found and ("leaderboard/__init__.py", "_replace") in found
    # the leaderboard's figures go through its one helper
    assert not [r for r in found if r[0] == "leaderboard/figures.py"]


def test_atomic_write_forms_mode_and_no_debris(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "sub" / "r.json"
    atomic_write_text(target, "é\n")
    assert target.read_bytes() == "é\n".encode() and stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    arrays = {"a": np.arange(3)}

    def savez(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    out = atomic_write(tmp_path / "x.npz", savez)
    assert np.load(out)["a"].tolist() == [0, 1, 2]

    def fails(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fails)
    assert target.read_bytes() == b"\x00\x01"  # the old file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]  # no temporary left behind


def test_store_sweep_matches_the_shared_temporary_names(tmp_path):
    folder = tmp_path / "quick"
    folder.mkdir()
    fd, tmp = create_temporary(folder, "m__d__v__test__s0__quick.json")
    os.close(fd)
    old = time.time() - 7200
    os.utime(tmp, (old, old))
    assert ResultsStore(tmp_path).sweep_temporary("quick") == [Path(tmp)]


# ------------------------------------------------------------------------------------ the registry


class Oops(Exception):
    pass


def test_registry_refuses_collisions_and_unsafe_names():
    reg: Registry = Registry("widget", Oops, owner=lambda v, meta: meta)
    reg.add("a", 1, "mod_x")
    reg.add("a", 2, "mod_x")  # the owner again (a reload): fine
    with pytest.raises(Oops, match=r"widget 'a' is already registered by mod_x; mod_y cannot take the name"):
        reg.add("a", 3, "mod_y")
    assert reg.entries == {"a": 2}
    reg.add("a", 3, "mod_y", replace=True)
    assert reg.get("a") == 3 and reg.owner("a") == "mod_y"
    for bad in ("../x", "a/b", "A", "a__b", "", ".x", 3):
        with pytest.raises(Oops, match="invalid widget name"):
            reg.add(bad, 0, "mod_x")
    assert list(reg) == ["a"]


def test_registry_discovers_once_and_names_the_valid_entries():
    calls = []
    reg: Registry = Registry("gadget", Oops, discover=lambda: calls.append(1) or reg.add("g1", "G"))
    assert calls == [] and "g1" not in reg  # lazy: nothing until the first read
    assert reg.get("g1") == "G" and reg.as_dict() == {"g1": "G"} and calls == [1]
    with pytest.raises(Oops, match=r"unknown gadget 'nope'; valid gadgets: \['g1'\]"):
        reg.get("nope")
    assert calls == [1]
    snap = reg.snapshot()
    reg.add("g2", "H")
    entries = reg.entries
    reg.restore(snap)
    assert reg.entries is entries and reg.as_dict() == {"g1": "G"}


def test_registry_retries_a_discovery_that_failed():
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] == 1:
            raise ImportError("half imported")

    reg: Registry = Registry("thing", Oops, discover=flaky)
    with pytest.raises(ImportError):
        reg.as_dict()
    assert reg.as_dict() == {} and state["n"] == 2


def test_dataset_and_method_registries_refuse_another_modules_name():
    spec = G.get_spec("tetrominoes")

    def render(config, seeds):  # a render of this module: another owner than generators.tetrominoes
        return spec.render(config, seeds)

    with pytest.raises(G.DatasetError, match="dataset 'tetrominoes' is already registered by generators.tetrominoes"):
        G.register_dataset(dataclasses.replace(spec, render=render))
    assert G.get_spec("tetrominoes") is spec
    G.register_dataset(spec)  # its own module again: fine
    cc = baselines.get_method("conncomp")
    with pytest.raises(B.MethodError, match="method 'conncomp' is already registered by module baselines.conncomp"):
        baselines.register_method("conncomp", kinds={"image"})(type("Fake", (B.Method,), {}))
    assert baselines.get_method("conncomp") is cc and B.method_origin("conncomp")["module"] == "baselines.conncomp"
    with pytest.raises(B.MethodError, match=r"unknown method 'nope'; valid methods: \[.*'conncomp'"):
        baselines.get_method("nope")


# --------------------------------------------------------------------- per-dataset settings as data

# Frozen from the if-chains (``Config.for_dataset``) before they became tables: what each (dataset, variant)
# changes from the Config's defaults. "_unknown" is a dataset no table names.
EXPECTED = {
    "conncomp": {
        ("bouncing_balls", "binary"): {},
        ("bouncing_balls", "colour"): {},
        ("multi_dsprites", "binarized"): {"colour_cos": 0.999, "fg_threshold": 0.02},
        ("multi_dsprites", "colored_on_grayscale"): {"colour_cos": 0.999, "fg_threshold": 0.02},
        ("scattered_mnist", "max12"): {"connectivity": 8, "fg_threshold": 0.25, "min_pixels": 4},
        ("scattered_mnist", "max6"): {"connectivity": 8, "fg_threshold": 0.25, "min_pixels": 4},
        ("scattered_shapes", "max12"): {"connectivity": 8},
        ("scattered_shapes", "max6"): {"connectivity": 8},
        ("scattered_shapes", "silot_code"): {"connectivity": 8},
        ("tetrominoes", "default"): {},
        ("_unknown", "x"): {},
    },
    "iodine": {
        ("bouncing_balls", "binary"): {"batch_size": 32, "num_slots": 5},
        ("bouncing_balls", "colour"): {"batch_size": 32, "num_slots": 5},
        ("multi_dsprites", "binarized"): {"num_slots": 6},
        ("multi_dsprites", "colored_on_grayscale"): {"num_slots": 6},
        ("scattered_mnist", "max12"): {"batch_size": 32, "num_slots": 13},
        ("scattered_mnist", "max6"): {"batch_size": 32, "num_slots": 7},
        ("scattered_shapes", "max12"): {"batch_size": 32, "num_slots": 13},
        ("scattered_shapes", "max6"): {"batch_size": 32, "num_slots": 7},
        ("scattered_shapes", "silot_code"): {"batch_size": 32, "num_slots": 7},
        ("tetrominoes", "default"): {"batch_size": 256, "latent": 32, "lstm": 0, "num_slots": 4},
        ("_unknown", "x"): {"batch_size": 32},
    },
    "monet": {
        ("bouncing_balls", "binary"): {"num_slots": 5},
        ("bouncing_balls", "colour"): {"num_slots": 5},
        ("multi_dsprites", "binarized"): {"num_slots": 6},
        ("multi_dsprites", "colored_on_grayscale"): {"num_slots": 6},
        ("scattered_mnist", "max12"): {"num_slots": 13},
        ("scattered_mnist", "max6"): {"num_slots": 7},
        ("scattered_shapes", "max12"): {"num_slots": 13},
        ("scattered_shapes", "max6"): {"num_slots": 7},
        ("scattered_shapes", "silot_code"): {"num_slots": 7},
        ("tetrominoes", "default"): {"num_slots": 4, "unet_blocks": 4},
        ("_unknown", "x"): {},
    },
    "slot_attention": {
        ("bouncing_balls", "binary"): {"num_slots": 5},
        ("bouncing_balls", "colour"): {"num_slots": 5},
        ("multi_dsprites", "binarized"): {"num_slots": 6},
        ("multi_dsprites", "colored_on_grayscale"): {"num_slots": 6},
        ("scattered_mnist", "max12"): {"num_slots": 13},
        ("scattered_mnist", "max6"): {"num_slots": 7},
        ("scattered_shapes", "max12"): {"num_slots": 13},
        ("scattered_shapes", "max6"): {"num_slots": 7},
        ("scattered_shapes", "silot_code"): {"num_slots": 7},
        ("tetrominoes", "default"): {"num_slots": 4, "slot_size": 32},
        ("_unknown", "x"): {},
    },
}


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_per_dataset_settings_give_the_configs_of_before(method):
    cls = baselines.get_method(method)
    defaults = dataclasses.asdict(cls.Config())
    # the built-in datasets (those rendered by a generators module; tests register toys of their own)
    builtin = {d: s for d, s in generators.registry().items() if s.render.__module__.startswith("generators.")}
    pairs = {(d, v) for d, spec in builtin.items() for v in spec.variants}
    assert pairs <= set(EXPECTED[method]), f"new datasets to freeze: {sorted(pairs - set(EXPECTED[method]))}"
    for (dataset, variant), changed in EXPECTED[method].items():
        cfg = cls.make_config(dataset, variant)
        assert dataclasses.asdict(cfg) == {**defaults, **changed}, (dataset, variant)
        assert cls.Config.for_dataset(dataset, variant) == cfg  # the old entry point reads the same table


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_settings_tables_name_real_datasets_and_fields(method):
    """A typo ("scatered_mnist", "num_slot") would silently fall back to the defaults: refuse it here."""
    cls = baselines.get_method(method)
    table = cls.dataset_settings
    assert table, f"{method} keeps its per-dataset values in dataset_settings"
    reg = generators.registry()
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for key, row in table.items():
        if isinstance(key, tuple):
            assert key[0] in reg and key[1] in reg[key[0]].variants, key
        else:
            assert key == "*" or key in reg, key
        assert set(row) <= fields, (key, sorted(set(row) - fields))


def test_a_settings_row_naming_a_missing_field_is_an_error():
    @dataclasses.dataclass
    class Cfg:
        k: int = 1

    assert B.config_for(Cfg, {"*": {"k": 2}, "d": {"k": 3}, ("d", "v"): {"k": 4}}, "d", "v").k == 4
    assert B.config_for(Cfg, {"*": {"k": 2}, "d": {"k": 3}}, "d", "w").k == 3
    with pytest.raises(B.MethodError, match=r"settings of 'd' name \['kk'\]"):
        B.config_for(Cfg, {"d": {"kk": 3}}, "d", "v")


# ------------------------------------------------------------ one device resolver, one seeding helper


def _defs(name: str) -> list[str]:
    return [
        p.relative_to(ROOT).as_posix()
        for p in _modules(*PROJECT)
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name == name
    ]


def _global_seed_calls() -> list[str]:
    out = []
    for p in _modules(*PROJECT):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                text = ast.unparse(node.func)
                if text in (
                    "torch.manual_seed",
                    "np.random.seed",
                    "numpy.random.seed",
                    "random.seed",
                    "torch.cuda.manual_seed_all",
                ):
                    out.append(p.relative_to(ROOT).as_posix())
    return out


def test_one_device_resolver_and_one_seeding_helper():
    from baselines.trainer import DeviceError, resolve_device

    assert _defs("resolve_device") == ["baselines/trainer.py"]
    assert _defs("seed_everything") == ["baselines/trainer.py"]
    assert _global_seed_calls() == ["baselines/trainer.py", "baselines/trainer.py"]  # inside seed_everything
    with pytest.raises(ValueError, match="not a device torch knows"):  # the CLI reports ValueErrors
        resolve_device("gpu")
    assert issubclass(DeviceError, RuntimeError) and str(resolve_device("cpu")) == "cpu"


# ------------------------------------------------------------------------ the profile, resolved once


def test_the_profile_is_resolved_once_per_run(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        runner.RunOptions(profile="nope")
    opts = runner.RunOptions(profile="quick", results=tmp_path)
    assert opts.run_profile.name == "quick"
    calls = []
    monkeypatch.setattr(runner, "get_run_profile", lambda name: calls.append(name))
    unit = runner.Unit("slot_attention", "bouncing_balls", "binary", 0)
    assert runner.unit_splits(unit, opts.run_profile) == ["test"]  # quick: learned methods on the main split
    recs = runner.failed_records(unit, opts, "boom", phase="fit")
    assert [r["split"] for r in recs] == ["test"] and not runner.unit_done(unit, opts, ResultsStore(tmp_path))
    assert calls == []
