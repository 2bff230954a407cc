"""Stripe's request parameters, read from the installed stripe-python: what Stripe validates
before it does anything else.

stripe-python's services (``stripe/**/_*_service.py``, generated from Stripe's OpenAPI spec)
name, for every endpoint, its method, its path and the ``TypedDict`` of its parameters
(``stripe/params/...``): the keys Stripe accepts, which of them are required, and their types.
:func:`check` holds a request to that definition and returns the error Stripe answers with:

- a key the endpoint does not define: ``parameter_unknown`` ("Received unknown parameter: x");
- a required key absent: ``parameter_missing`` ("Missing required param: x.");
- an integer that is not one: ``parameter_invalid_integer`` ("Invalid integer: x"), an empty
  string where the parameter cannot be unset: ``parameter_invalid_empty``; a string where an
  object, an array or a boolean is expected: "Invalid object" / "Invalid array" /
  "Invalid boolean: x".

Nested parameters are named as Stripe names them (``items[0][price]``). Endpoints the spec does
not define (localstripe's own helpers) are not checked.
"""

from __future__ import annotations

import ast
import importlib
import re
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

import stripe
from stripe._request_options import RequestOptions
from typing_extensions import is_typeddict

_OPTION_KEYS = frozenset(RequestOptions.__annotations__)


@dataclass(frozen=True)
class ParamError:
    message: str
    param: str
    code: str | None = None


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    literal_parts: int  # more literal path segments win (`/v1/prices/search` over `{price}`)
    params: type


def _params_class_name(fn: ast.FunctionDef) -> str | None:
    for arg in fn.args.args:
        if arg.arg != "params" or arg.annotation is None:
            continue
        for node in ast.walk(arg.annotation):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return node.value
    return None


def _request_call(fn: ast.FunctionDef) -> tuple[str, str] | None:
    for node in ast.walk(fn):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_request"
            and len(node.args) >= 2
        ):
            continue
        method, path = node.args[0], node.args[1]
        if isinstance(path, ast.Call) and isinstance(path.func, ast.Attribute):
            path = path.func.value  # "/v1/prices/{price}".format(...)
        if isinstance(method, ast.Constant) and isinstance(path, ast.Constant):
            return str(method.value).upper(), str(path.value)
    return None


def _imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


@cache
def _routes() -> list[_Route]:
    root = Path(stripe.__file__).parent
    routes: list[_Route] = []
    for path in sorted(root.rglob("_*_service.py")):
        if "v2" in path.relative_to(root).parts:
            continue
        tree = ast.parse(path.read_text())
        modules = _imports(tree)
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            name, call = _params_class_name(fn), _request_call(fn)
            if name is None or call is None or name not in modules:
                continue
            method, template = call
            if not template.startswith("/v1/"):
                continue
            try:
                params = getattr(importlib.import_module(modules[name]), name)
            except (ImportError, AttributeError):
                continue
            segments = template.strip("/").split("/")
            regex = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
            routes.append(
                _Route(
                    method=method,
                    pattern=re.compile("^/" + regex + "$"),
                    literal_parts=sum(not s.startswith("{") for s in segments),
                    params=params,
                )
            )
    routes.sort(key=lambda r: -r.literal_parts)
    return routes


def params_for(method: str, path: str) -> type | None:
    """The parameters' TypedDict of the endpoint serving ``method path``, or None."""
    for route in _routes():
        if route.method == method and route.pattern.match(path):
            return route.params
    return None


@cache
def _hints(td: type) -> dict[str, Any]:
    """Each key's type (``NotRequired`` stripped); a type that cannot be evaluated is Any."""
    namespace = vars(importlib.import_module(td.__module__))
    hints: dict[str, Any] = {}
    for key, annotation in td.__annotations__.items():
        if key in _OPTION_KEYS:
            continue
        try:
            hint = typing.get_type_hints(
                _Probe(annotation), globalns=namespace, include_extras=True
            )["value"]
        except Exception:  # an annotation we cannot evaluate: do not judge
            hint = Any
        while get_origin(hint) in (NotRequired, Required):
            (hint,) = get_args(hint)
        hints[key] = hint
    return hints


class _Probe:
    """An object whose one annotation is the given one (for typing.get_type_hints)."""

    def __init__(self, annotation: Any) -> None:
        self.__annotations__ = {"value": annotation}


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and is_typeddict(t)


def _members(t: Any) -> tuple[Any, ...]:
    return get_args(t) if get_origin(t) is Union else (t,)


def _allows_empty(t: Any) -> bool:
    return any(get_origin(m) is Literal and "" in get_args(m) for m in _members(t))


def _check_value(value: Any, t: Any, name: str) -> ParamError | None:
    members = [m for m in _members(t) if m is not type(None)]
    if value == "" and _allows_empty(t):
        return None
    if any(m is Any or m is str or m is object for m in members):
        return None  # a string goes (Stripe's enums are `Literal[...] | str`)
    errors = [_check_member(value, m, name) for m in members]
    if any(e is None for e in errors):
        return None
    return next((e for e in errors if e is not None and e.code != "_literal"), None) or (
        ParamError(f"Invalid {name}: {value}", name)
    )


def _check_member(value: Any, t: Any, name: str) -> ParamError | None:
    origin = get_origin(t)
    if origin is Literal:
        allowed = {str(a).lower() if isinstance(a, bool) else str(a) for a in get_args(t)}
        return None if str(value) in allowed else ParamError("", name, "_literal")
    if t is int:
        if isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value)):
            return None
        if value == "":
            return _empty(name)
        return ParamError(f"Invalid integer: {value}", name, "parameter_invalid_integer")
    if t is float:
        if isinstance(value, int | float):
            return None
        try:
            Decimal(value)
            return None
        except (TypeError, ValueError, InvalidOperation):
            return ParamError(f"Invalid decimal: {value}", name, "parameter_invalid_decimal")
    if t is bool:
        if isinstance(value, bool) or value in ("true", "false"):
            return None
        return ParamError(f"Invalid boolean: {value}", name)
    if origin in (list, typing.List):  # noqa: UP006 - typing.List is what get_origin may give
        if not isinstance(value, list):
            return _empty(name) if value == "" else ParamError("Invalid array", name)
        (item,) = get_args(t) or (Any,)
        for index, element in enumerate(value):
            error = _check_value(element, item, f"{name}[{index}]")
            if error is not None:
                return error
        return None
    if _is_typeddict(t):
        if not isinstance(value, dict):
            return _empty(name) if value == "" else ParamError("Invalid object", name)
        return _check_object(value, t, name)
    if origin in (dict, typing.Dict) or (  # noqa: UP006
        isinstance(origin, type) and origin.__name__ == "UntypedStripeObject"
    ):
        if not isinstance(value, dict):
            return _empty(name) if value == "" else ParamError("Invalid object", name)
        return None
    return None  # a type this checker does not know: let it through


def _empty(name: str) -> ParamError:
    return ParamError(
        f"You passed an empty string for '{name}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{name}' cannot be unset. You should remove '{name}' "
        "from your request or supply a non-empty value.",
        name,
        "parameter_invalid_empty",
    )


def _check_object(data: dict[str, Any], td: type, prefix: str = "") -> ParamError | None:
    hints = _hints(td)
    known = set(hints)

    def path(key: str) -> str:
        return f"{prefix}[{key}]" if prefix else key

    unknown = [key for key in data if key not in known]
    if unknown:
        names = ", ".join(path(k) for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        return ParamError(
            f"Received unknown parameter{plural}: {names}", path(unknown[0]), "parameter_unknown"
        )
    for key in sorted(getattr(td, "__required_keys__", ())):
        if key in known and key not in data:
            return ParamError(
                f"Missing required param: {path(key)}.", path(key), "parameter_missing"
            )
    for key, value in data.items():
        error = _check_value(value, hints[key], path(key))
        if error is not None:
            return error
    return None


def check(method: str, path: str, data: dict[str, Any]) -> ParamError | None:
    """The error Stripe answers ``method path`` with ``data`` (decoded parameters), or None."""
    td = params_for(method, path)
    if td is None:
        return None
    return _check_object(data, td)
