"""One safe-name pattern for every name that becomes a path, enforced where names are registered."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import baselines.base as B
import generators.core as G
import ocbench_common.names as N
from benchmark.store import UnsafeNameError, path_inside, run_id, safe_name
from generators.core import DatasetSpec, Variant

HOSTILE = [
    "../../../evil",
    "/abs/path",
    "a/b",
    "<script>x</script>",
    "",
    ".hidden",
    "..",
    "A",
    "a__b",
    "x" * 49,
    "a\\b",
    "a b",
    "a\nb",
    "é",
]


def test_both_registries_use_the_one_pattern():
    # neither package may import the other (DESIGN.md): both take it from the shared leaf package
    assert B.NAME_PATTERN is N.NAME_PATTERN and G.NAME_PATTERN is N.NAME_PATTERN


@pytest.mark.parametrize("bad", HOSTILE)
def test_each_package_refuses_with_its_own_error_and_the_same_text(bad):
    with pytest.raises(B.MethodError) as m:
        B.check_name(bad, "thing")
    with pytest.raises(G.DatasetError) as d:
        G.check_name(bad, "thing")
    with pytest.raises(UnsafeNameError) as s:
        safe_name(bad, "thing")
    assert str(m.value) == str(d.value) == str(s.value) and N.NAME_PATTERN in str(m.value)
    assert not N.is_safe_name(bad)


def test_pattern_accepts_the_names_in_use():
    for good in ("tetrominoes", "test_678", "colored_on_grayscale", "v1.0-rc", "_toy", "x" * 48):
        assert N.check_name(good) == good and B.check_name(good) == good and G.check_name(good) == good


def test_every_registered_name_is_safe():
    for name, spec in G.registry().items():
        for v in spec.variants:
            for split in {s for sizes in spec.sizes.values() for s in sizes} | set(spec.views):
                run_id("m", name, v, split, 0, "quick")  # raises on an unsafe part
    for name in B.methods():
        assert re.fullmatch(B.NAME_PATTERN, name)


@pytest.mark.parametrize("bad", HOSTILE)
def test_unsafe_method_name_refused_at_registration(bad):
    before = dict(B._METHODS)
    with pytest.raises(B.MethodError, match="invalid method name"):
        B.register_method(bad, kinds={"image"})(type("X", (B.Method,), {}))
    assert B._METHODS == before


@pytest.mark.parametrize("where", ["name", "variant", "split", "view"])
@pytest.mark.parametrize("bad", ["../x", "a/b", "<b>"])
def test_unsafe_dataset_names_refused_at_registration(where, bad):
    name = bad if where == "name" else "_safe_toy"
    variants = {bad if where == "variant" else "default": Variant()}
    sizes = {p: {(bad if where == "split" else "train"): 1} for p in G.PROFILES}
    views = {bad: ("train", 1)} if where == "view" else {}
    spec = DatasetSpec(
        name=name,
        version="1.0.0",
        kind="image",
        base_config={},
        variants=variants,
        default_variant=next(iter(variants)),
        sizes=sizes,
        render=lambda c, s: {},
        views=views,
    )
    with pytest.raises(G.DatasetError, match="invalid"):
        G.register_dataset(spec)
    assert name not in G._REGISTRY


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=60))
def test_accepted_names_never_leave_the_root(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("root")
    try:
        rid = run_id(text, "d", "v", "test", 0, "quick")
    except UnsafeNameError:
        assert not re.fullmatch(G.NAME_PATTERN, text)
        return
    p = path_inside(root, "quick", rid + ".json")
    assert p.resolve().parent == (root / "quick").resolve()


def test_path_inside_refuses_links_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeNameError, match="outside"):
        path_inside(tmp_path / "root", "link", "x.json")
    with pytest.raises(UnsafeNameError):
        path_inside(tmp_path / "root", "..", "x.json")
