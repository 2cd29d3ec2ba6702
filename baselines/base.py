"""The method contract and registry.

A method is one class registered with :func:`register_method`::

    @register_method("my_method", kinds={"image", "video", "colour", "binary"}, config=MyConfig)
    class MyMethod(Method):
        def fit(self, train, val, ctx): ...
        def predict(self, batch) -> Prediction: ...

``train``/``val`` are :class:`generators.SplitDataset` (``ctx.device`` tells where to train; a
whole split moves there with ``train.to(device)``). ``batch`` is a dict with ``video`` uint8
``[B,T,H,W,C]`` (a torch tensor on ``ctx.device``). Image methods (``frame_by_frame=True``) see
videos as ``[B*T,1,H,W,C]`` and the harness folds their predictions back.

Hyper-parameters are one dataclass per method holding the paper's defaults; the per-dataset values are
data, the method's ``dataset_settings`` table (``{"*": {...}, dataset: {...}, (dataset, variant): {...}}``,
each value citing its source), which :meth:`Method.make_config` reads (:func:`dataset_overrides`). The
profile scales only steps and data (``ctx.scale_steps``).

Test-time slots: a split may declare the number of slots it is scored with (Bouncing Balls ``test_678``:
9, as PROVIDE). A method whose weights do not depend on K says ``variable_slots = True`` and implements
:meth:`Method.apply_eval_slots`; the harness then calls :meth:`Method.set_eval_slots` before scoring
such a split, and stores the K used in the record. Every other method is scored with its trained K.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import pkgutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ocbench_common import names as _names
from ocbench_common.registry import Registry

KINDS = frozenset({"image", "video", "colour", "binary"})
ENTRY_POINT_GROUP = "ocbench.methods"
# Every name that becomes part of a path (method, dataset, variant, split, profile): the project's one pattern
NAME_PATTERN = _names.NAME_PATTERN


def check_name(value: Any, what: str = "method name") -> str:
    """``value`` if it is a safe name (:data:`NAME_PATTERN`), else :class:`MethodError` saying why."""
    return _names.check_name(value, what, MethodError)


class MethodError(Exception):
    """Unknown method names, bad plugins, predictions that break the contract."""


@dataclasses.dataclass
class Prediction:
    """What ``predict`` returns for a batch of B samples of T frames.

    masks: integer ``[B,T,H,W]`` segment ids (0 may mean background; ids stable over time for
    tracking methods). recon: float ``[B,T,H,W,C]`` in [0,1]. soft_masks: ``[B,T,K,H,W]``.
    classes: integer ``[B,K]`` (image methods run frame by frame: ``[B,T,K]``), the class the method
    gives each segment id: ``classes[b, k]`` for the pixels of id k, so K > the largest id in masks
    and ``classes[b, 0]`` is what id 0 (often background) is called. Class ids are the method's own
    (a prototype, sprite or slot-cluster index, >= 0); the harness maps them onto the dataset's
    classes (0 = background) with the Hungarian matching. Where the dataset has ground-truth classes
    (Tetrominoes, Multi-dSprites, Scattered MNIST/Shapes), returning them adds the semantic scores
    over pixels (``semantic_acc/macc/miou``, and DTI-Sprites' ``*_dti`` where a class without pixels
    counts 0) and clustering accuracy over objects
    (``cluster_accuracy``, ``cluster_accuracy_m2o``: each object's majority class). None: not scored.
    background_ids: segment ids the method declares as background (dropped by tracking metrics).
    """

    masks: Any
    recon: Any = None
    soft_masks: Any = None
    classes: Any = None
    background_ids: tuple[int, ...] = ()


@dataclasses.dataclass
class FitContext:
    device: str = "cpu"
    seed: int = 0
    profile: str = "quick"
    dataset: str = ""
    variant: str = ""
    checkpoint_dir: Path | None = None
    log: Callable[[str], None] = print
    # fraction of the paper schedule a profile runs, and an absolute cap; see scale_steps
    step_scale: float = 1.0
    max_steps: int | None = None
    time_budget_s: float | None = None
    progress: bool = True
    # filled by the method during fit: e.g. {"curve": [...], "steps": n}; stored in the record
    info: dict = dataclasses.field(default_factory=dict)

    def scale_steps(self, paper_steps: int, minimum: int = 1) -> int:
        n = max(minimum, int(round(paper_steps * self.step_scale)))
        if self.max_steps is not None:
            n = min(n, self.max_steps)
        return max(1, n)


@dataclasses.dataclass
class DatasetInfo:
    """What a method may know about the data before fitting."""

    name: str
    variant: str
    kind: str  # image | video
    shape: tuple[int, int, int, int]  # T, H, W, C
    max_objects: int  # most ground-truth objects in one sample (excluding background)

    @property
    def colour(self) -> bool:
        return self.shape[3] == 3


class Method:
    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset] = frozenset()
    Config: ClassVar[type | None] = None
    frame_by_frame: ClassVar[bool] = False  # image methods on video datasets
    learned: ClassVar[bool] = True
    # the trained weights do not depend on the number of slots, so predict may use another K
    # (set_eval_slots); Slot Attention, IODINE and MONet can, a method with per-slot weights cannot
    variable_slots: ClassVar[bool] = False

    def __init__(self, config: Any, info: DatasetInfo):
        self.config = config
        self.info = info

    def num_slots(self) -> int | None:
        """The number of slots the method is trained with; None for a method without slots (ConnComp)."""
        return None

    def eval_slots(self) -> int | None:
        """The number of slots ``predict`` uses now (the trained one unless ``set_eval_slots`` changed it)."""
        return self.num_slots()

    def set_eval_slots(self, k: int | None) -> None:
        """Predict with ``k`` slots from now on; None goes back to the trained number. Call after ``fit``.

        Refused (:class:`MethodError`) for a method that does not declare ``variable_slots``: its weights
        were made for the trained K, and the harness scores it with that K and says so in the record.
        """
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise MethodError(f"{self.name}: the number of slots must be a positive integer, got {k!r}")
        trained = self.num_slots()
        if not self.variable_slots or trained is None:
            raise MethodError(
                f"{self.name} cannot change its number of slots at test time (variable_slots is "
                f"not set{'; it has no slots' if trained is None else ''}); score it with its trained K"
            )
        self.apply_eval_slots(trained if k is None else int(k))

    def apply_eval_slots(self, k: int) -> None:  # pragma: no cover - interface
        """Make the fitted model use ``k`` slots (only for ``variable_slots`` methods; ``k`` is checked)."""
        raise NotImplementedError(f"{self.name} declares variable_slots but does not implement apply_eval_slots")

    def fit(self, train, val, ctx: FitContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, batch: Mapping[str, Any]) -> Prediction:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def supports(cls, info: DatasetInfo) -> bool:
        kinds = cls.kinds
        if info.kind == "video" and "video" not in kinds and not ("image" in kinds and cls.frame_by_frame):
            return False
        if info.kind == "image" and "image" not in kinds:
            return False
        if info.colour and "colour" not in kinds:
            return False
        if not info.colour and "binary" not in kinds:
            return False
        return True

    # per-dataset hyper-parameters as data: {"*": every dataset, dataset: ..., (dataset, variant): ...},
    # merged in that order over the Config's defaults (see dataset_overrides); a comment cites each value
    dataset_settings: ClassVar[Mapping[Any, Mapping[str, Any]]] = {}

    @classmethod
    def make_config(cls, dataset: str, variant: str, overrides: Mapping[str, Any] | None = None):
        """The Config for (dataset, variant): the paper's defaults, the ``dataset_settings`` rows that apply,
        then ``overrides`` (``--set``). A plugin Config may still define ``for_dataset`` instead of a table."""
        if cls.Config is None:
            return None
        maker = getattr(cls.Config, "for_dataset", None)
        if cls.dataset_settings or maker is None:
            cfg = config_for(cls.Config, cls.dataset_settings, dataset, variant, what=cls.name)
        else:
            cfg = maker(dataset, variant)
        if overrides:
            names = {f.name for f in dataclasses.fields(cfg)}
            bad = sorted(set(overrides) - names)
            if bad:
                raise MethodError(f"{cls.name}: unknown hyper-parameters {bad}; valid: {sorted(names)}")
            cfg = dataclasses.replace(cfg, **dict(overrides))
        return cfg


def dataset_overrides(table: Mapping[Any, Mapping[str, Any]], dataset: str, variant: str | None) -> dict:
    """The hyper-parameters ``table`` sets for (dataset, variant): its ``"*"`` row, then the dataset's, then the
    ``(dataset, variant)`` row, later rows winning (a variant lists only what differs from its dataset)."""
    out: dict[str, Any] = {}
    for key in ("*", dataset, (dataset, variant)):
        out.update(table.get(key, {}))
    return out


def config_for(
    config: type, table: Mapping[Any, Mapping[str, Any]], dataset: str, variant: str | None, what: str = ""
) -> Any:
    """``config(**dataset_overrides(...))``; a row naming a field the Config lacks is a MethodError."""
    values = dataset_overrides(table, dataset, variant)
    names = {f.name for f in dataclasses.fields(config)}
    bad = sorted(set(values) - names)
    if bad:
        raise MethodError(
            f"{what or config.__name__}: the per-dataset settings of {dataset!r} name {bad}, which "
            f"{config.__name__} does not have; valid: {sorted(names)}"
        )
    return config(**values)


class ModelSlots:
    """Mixin (before the method's base class) for a method whose fitted ``self.model`` keeps its slot count
    in ``model.k`` and changes it with ``model.set_num_slots(k)``, its weights being the same for every K."""

    variable_slots: ClassVar[bool] = True

    def eval_slots(self) -> int | None:
        model = getattr(self, "model", None)
        return int(model.k) if model is not None else self.num_slots()

    def apply_eval_slots(self, k: int) -> None:
        model = getattr(self, "model", None)
        if model is None:
            raise MethodError(f"{self.name}: set_eval_slots was called before fit; there is no model to change")
        model.set_num_slots(k)


def _method_owner(cls: type, origin: dict | None) -> str:
    """Who registered a method, for the registry's collision check: a plugin file, an entry point, a module."""
    o = origin or {}
    if o.get("path"):
        return f"plugin {o['path']}"
    if o.get("kind") == "entry_point":
        return f"entry point {o.get('name')} = {o.get('value')}"
    return f"module {o.get('module') or getattr(cls, '__module__', '?')}"


# the methods, and where each came from (stored in every record it makes, ``method_origin``):
# {"kind": "builtin", "module": ...}, {"kind": "entry_point", "name": ..., "value": ...},
# {"kind": "plugin", "path": ..., "sha256": <of the file as imported>} or {"kind": "module", "module": ...}
_REG: Registry[type[Method]] = Registry(
    "method", MethodError, discover=lambda: _discover_modules(), owner=_method_owner
)
_METHODS: dict[str, type[Method]] = _REG.entries
_ORIGINS: dict[str, dict] = _REG.meta
# the origin of the code being imported right now (set by _discover and load_plugin), None otherwise
_LOADING: dict | None = None


class PluginRefused(MethodError):
    """A plugin (or entry point) that tried to take the name of a method it may not replace."""


def _origin_of(cls: type) -> dict:
    if _LOADING is not None:
        return {k: v for k, v in _LOADING.items() if k != "replace_builtin"}
    module = getattr(cls, "__module__", "") or ""
    kind = "builtin" if module.split(".")[0] == __package__ else "module"
    return {"kind": kind, "module": module}


def register_method(
    name: str,
    *,
    kinds: set[str] | frozenset[str],
    config: type | None = None,
    frame_by_frame: bool | None = None,
    learned: bool = True,
):
    check_name(name)
    bad = set(kinds) - KINDS
    if bad:
        raise ValueError(f"unknown kinds {sorted(bad)}; valid: {sorted(KINDS)}")

    def deco(cls: type[Method]) -> type[Method]:
        origin = _origin_of(cls)
        held = _ORIGINS.get(name)
        # a plugin or entry point may replace another plugin's method, never a built-in one unasked: its
        # records would land under the harness's own run ids
        if (
            origin["kind"] in ("plugin", "entry_point")
            and held is not None
            and held["kind"] != "plugin"
            and not (_LOADING or {}).get("replace_builtin")
        ):
            where = origin.get("path") or f"entry point {origin.get('name')} = {origin.get('value')}"
            raise PluginRefused(
                f"{where} registers {name!r}, the name of a {held['kind']} method "
                f"({held.get('module') or held.get('name')}); rename the method, or pass "
                f"--replace-builtin to replace it"
            )
        cls.name = name
        cls.kinds = frozenset(kinds)
        if config is not None:
            cls.Config = config
        if frame_by_frame is not None:
            cls.frame_by_frame = frame_by_frame
        else:
            cls.frame_by_frame = "video" not in kinds
        cls.learned = learned
        # a plugin may take another plugin's name, and a built-in one when asked (--replace-builtin); any
        # other owner's name is refused by the registry (two modules calling themselves "slot_attention")
        replacing = origin["kind"] in ("plugin", "entry_point") and (
            held is None or held["kind"] == "plugin" or bool((_LOADING or {}).get("replace_builtin"))
        )
        _REG.add(name, cls, origin, replace=replacing)
        return cls

    return deco


def method_origin(name: str) -> dict | None:
    """Where the registered method ``name`` came from (a copy), or None for a name nobody registered."""
    _REG.discover()
    o = _ORIGINS.get(name)
    return dict(o) if o is not None and name in _METHODS else None


def _restore(methods_before: dict, origins_before: dict) -> None:
    _REG.restore((methods_before, origins_before))


def _discover() -> None:
    _REG.discover()


def _discover_modules() -> None:
    """The registry's discovery (run once): the package's method modules, then the entry points."""
    global _LOADING
    pkg = sys.modules[__package__]
    for m in pkgutil.iter_modules(pkg.__path__):
        if not m.name.startswith("_") and m.name not in ("base",):
            importlib.import_module(f"{__package__}.{m.name}")
    try:
        from importlib.metadata import entry_points

        eps = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as e:  # pragma: no cover - broken package metadata
        print(f"warning: the {ENTRY_POINT_GROUP} entry points could not be listed: {e}", file=sys.stderr)
        eps = []
    for ep in eps:
        before = _REG.snapshot()
        _LOADING = {"kind": "entry_point", "name": ep.name, "value": ep.value}
        try:
            ep.load()
        except Exception as e:  # a broken third-party plugin must not hide the built-in methods
            _restore(*before)
            print(
                f"warning: the {ENTRY_POINT_GROUP} entry point {ep.name} = {ep.value} failed to load "
                f"and was left out: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
        finally:
            _LOADING = None


_PLUGINS: dict[str, list[str]] = {}


def load_plugin(path: str | Path, *, replace_builtin: bool = False) -> list[str]:
    """Import a method file from outside the package (once); returns the names it registered.

    All or nothing: a plugin that fails to import, registers nothing, or takes a built-in method's name
    without ``replace_builtin`` leaves the registry exactly as it was. Its methods remember the file's
    path and the sha256 of the bytes that were run (``method_origin``), which every record carries.
    """
    global _LOADING
    path = Path(path)
    if not path.is_file():
        raise MethodError(f"plugin file {path} does not exist")
    key = str(path.resolve())
    if key in _PLUGINS:
        return list(_PLUGINS[key])
    _discover()  # built-in methods first, so a plugin cannot be mistaken for registering them
    try:
        source = Path(key).read_bytes()  # hash and run the same bytes
    except OSError as e:
        raise MethodError(f"plugin {path} cannot be read: {e}") from e
    before = _REG.snapshot()
    mod_name = "ocbench_plugin_" + hashlib.sha1(key.encode()).hexdigest()[:10]
    spec = importlib.util.spec_from_file_location(mod_name, key)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    prev = _LOADING
    _LOADING = {
        "kind": "plugin",
        "path": key,
        "sha256": hashlib.sha256(source).hexdigest(),
        "replace_builtin": bool(replace_builtin),
    }
    try:
        exec(compile(source, key, "exec"), module.__dict__)
        error = None
    except PluginRefused as e:
        error = e
    except (Exception, SystemExit) as e:  # SystemExit too: a plugin must not end the whole command
        error = MethodError(f"plugin {path} failed to import: {type(e).__name__}: {e}")
        error.__cause__ = e
    finally:
        _LOADING = prev
    new = sorted(n for n, c in _METHODS.items() if before[0].get(n) is not c)
    if error is None and not replace_builtin:
        # also when the plugin swallowed the refusal that register_method raised
        taken = [
            n for n in before[0] if (n in new or n not in _METHODS) and before[1].get(n, {}).get("kind") != "plugin"
        ]
        if taken:
            error = PluginRefused(
                f"plugin {path} replaces built-in method(s) {taken}; rename them, or "
                f"pass --replace-builtin to replace them"
            )
    if error is None and not new:
        error = MethodError(f"plugin {path} registered no method (use @baselines.register_method)")
    if error is not None:
        _restore(*before)
        sys.modules.pop(mod_name, None)
        raise error
    _PLUGINS[key] = new
    return new


def methods() -> dict[str, type[Method]]:
    return _REG.as_dict()


def get_method(name: str) -> type[Method]:
    return _REG.get(name)


def config_hash(config: Any) -> str:
    d = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else (config or {})
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
