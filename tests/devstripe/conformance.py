"""Hold a JSON object from the fake Stripe to Stripe's own definition of it.

The definition is the installed stripe-python's resource classes: they are generated from
Stripe's OpenAPI spec for the API version that package requests (``stripe.api_version``),
and their type hints say which fields an object has at that version, which may be null, which
values an enum allows and which fields are expandable. Nothing here knows our code.

``violations(obj)`` returns a list of ``"<path>: <problem>"`` strings, empty when the object
conforms:

- a field the class does not define is an error (a removed or invented field);
- a field the class defines without ``Optional`` must be present (Stripe always sends it),
  except in a deletion reply (``{id, object, deleted: true}``);
- a present field must match its type: ``str``/``int``/``bool``/``float``, a ``Literal`` value
  among the allowed ones (open enums, ``Union[Literal[...], str]``, accept any string), an
  expandable field is an id or the expanded object, lists and ``ListObject`` pages hold
  conforming items, nested classes are checked recursively.

When the pinned stripe-python is upgraded, the same checks tell what changed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Iterable
from functools import cache
from typing import Any, ForwardRef

import stripe
from stripe import StripeObject

NoneType = type(None)

# Fields every resource may carry on the wire but stripe-python does not annotate.
_WIRE_FIELDS = {"object", "id"}
# Objects that are not resources (a list page, a search page) or not defined by a class.
_CONTAINERS = {"list", "search_result"}


@cache
def _classes_by_object() -> dict[str, tuple[type[StripeObject], ...]]:
    """Every resource class of the installed stripe package, by its ``OBJECT_NAME``."""
    found: dict[str, list[type[StripeObject]]] = {}
    seen: set[type] = set()
    for module_info in pkgutil.walk_packages(stripe.__path__, "stripe."):
        name = module_info.name
        if ".params" in name or name.endswith("_service") or "._service" in name:
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: S112 - optional submodules (e.g. needing extras)
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls in seen or not issubclass(cls, StripeObject):
                continue
            seen.add(cls)
            object_name = cls.__dict__.get("OBJECT_NAME")
            if isinstance(object_name, str):
                found.setdefault(object_name, []).append(cls)
    return {key: tuple(value) for key, value in found.items()}


@cache
def _classes_by_name() -> dict[str, tuple[type[StripeObject], ...]]:
    by_name: dict[str, list[type[StripeObject]]] = {}
    for classes in _classes_by_object().values():
        for cls in classes:
            by_name.setdefault(cls.__name__, []).append(cls)
    return {key: tuple(value) for key, value in by_name.items()}


def classes_for(object_name: str) -> tuple[type[StripeObject], ...]:
    return _classes_by_object().get(object_name, ())


@cache
def fields_of(cls: type[StripeObject]) -> dict[str, Any]:
    """The wire fields a class defines: its annotations (and its bases'), minus ClassVars."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass in (StripeObject, object) or not issubclass(klass, StripeObject):
            continue
        for name, hint in inspect.get_annotations(klass).items():
            if name.startswith("_") or typing.get_origin(hint) is typing.ClassVar:
                continue
            hints[name] = hint
    # Reserved words are remapped in Python (``from_`` is ``from`` on the wire).
    remap = getattr(cls, "_field_remappings", {}) or {}
    return {remap.get(name, name): hint for name, hint in hints.items()}


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and NoneType in (
        typing.get_args(hint)
    )


def _resolve(ref: Any) -> tuple[type[StripeObject], ...]:
    name = ref.__forward_arg__ if isinstance(ref, ForwardRef) else str(ref)
    return _classes_by_name().get(name, ())


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check(value: Any, hint: Any, path: str) -> list[str]:
    if hint is Any or hint is object:
        return []
    if isinstance(hint, ForwardRef | str):
        classes = _resolve(hint)
        if not classes:
            return []  # a class this stripe package does not ship: nothing to hold it to
        return _check_union(value, list(classes), path)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return [] if NoneType in args else [f"{path}: null, but the field is not nullable"]
        return _check_union(value, [a for a in args if a is not NoneType], path)
    if value is None:
        return [f"{path}: null, but the field is not nullable"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {_type_name(value)}"]
        return [v for i, item in enumerate(value) for v in _check(item, args[0], f"{path}[{i}]")]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {_type_name(value)}"]
        return [v for k, item in value.items() for v in _check(item, args[1], f"{path}.{k}")]
    if inspect.isclass(origin) and issubclass(origin, stripe.ListObject):
        return _check_list_object(value, args[0] if args else Any, path)
    if inspect.isclass(origin) and issubclass(origin, stripe.SearchResultObject):
        return _check_list_object(value, args[0] if args else Any, path, "search_result")
    if hint is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {value!r}"]
    if hint is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r}"]
    if inspect.isclass(hint) and issubclass(hint, StripeObject):
        return check_against(value, hint, path)
    return []  # a type this checker does not model: accept


def _check_union(value: Any, alternatives: list[Any], path: str) -> list[str]:
    """The value must match one alternative; report the closest miss otherwise."""
    expanded: list[Any] = []
    for alt in alternatives:
        if isinstance(alt, ForwardRef | str):
            expanded.extend(_resolve(alt) or [Any])
        else:
            expanded.append(alt)
    # An expanded object is held to the class its ``object`` names (an id is a plain string).
    if isinstance(value, dict) and isinstance(value.get("object"), str):
        named = [
            alt
            for alt in expanded
            if inspect.isclass(alt) and alt.__dict__.get("OBJECT_NAME") == value["object"]
        ]
        expanded = named or [alt for alt in expanded if alt is not str]
    elif isinstance(value, str) and str in expanded:
        return []
    best: list[str] | None = None
    for alt in expanded:
        problems = _check(value, alt, path)
        if not problems:
            return []
        if best is None or len(problems) < len(best):
            best = problems
    return best or []


def _check_list_object(value: Any, item_hint: Any, path: str, kind: str = "list") -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected a {kind} object, got {_type_name(value)}"]
    problems = []
    if value.get("object") != kind:
        problems.append(f"{path}.object: expected {kind!r}, got {value.get('object')!r}")
    for key in ("data", "has_more", "url"):
        if key not in value:
            problems.append(f"{path}: the {kind} has no {key!r}")
    for i, item in enumerate(value.get("data") or []):
        problems.extend(_check(item, item_hint, f"{path}.data[{i}]"))
    return problems


def check_against(obj: Any, cls: type[StripeObject], path: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{path}: expected a {cls.__name__} object, got {_type_name(obj)}"]
    fields = fields_of(cls)
    object_name = cls.__dict__.get("OBJECT_NAME")
    problems: list[str] = []
    if isinstance(object_name, str) and obj.get("object") != object_name:
        return [f"{path}.object: expected {object_name!r}, got {obj.get('object')!r}"]
    for key in obj:
        if key not in fields and key not in _WIRE_FIELDS:
            problems.append(f"{path}.{key}: not a field of {cls.__name__} at this API version")
    # A deletion reply is ``{id, object, deleted: true}``: stripe-python folds Stripe's
    # separate deleted-object schema into the resource class, so nothing else is required.
    deleted = obj.get("deleted") is True and "deleted" in fields
    for key, hint in fields.items():
        if key not in obj:
            if not _is_optional(hint) and not deleted:
                problems.append(f"{path}.{key}: missing (always sent by Stripe)")
            continue
        problems.extend(_check(obj[key], hint, f"{path}.{key}"))
    return problems


def violations(obj: Any, path: str | None = None) -> list[str]:
    """Violations of one JSON value from the API: a resource, a list or search page."""
    if not isinstance(obj, dict):
        return []
    kind = obj.get("object")
    path = path or str(kind)
    if kind in _CONTAINERS:
        return [
            problem
            for i, item in enumerate(obj.get("data") or [])
            for problem in violations(item, f"{path}[{i}]")
        ]
    classes = classes_for(kind) if isinstance(kind, str) else ()
    if not classes:
        return [f"{path}: unknown object type {kind!r}"]
    return _check_union(obj, list(classes), path)


def event_violations(event: dict[str, Any]) -> list[str]:
    """An event and the object it carries (``data.object``, typed only as a dict by Stripe)."""
    problems = violations(event, f"event {event.get('type')}")
    data = event.get("data") or {}
    problems.extend(violations(data.get("object"), f"event {event.get('type')}.data.object"))
    return problems


def all_violations(objects: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Violations grouped by object type, for a readable failure."""
    grouped: dict[str, list[str]] = {}
    for obj in objects:
        kind = str(obj.get("object"))
        found = event_violations(obj) if kind == "event" else violations(obj)
        if found:
            grouped.setdefault(kind, []).extend(found)
    return grouped
