"""Errors as Stripe sends them.

Stripe answers every error with ``{"error": {"type", "code", "param", "message", "doc_url",
...}}``; localstripe answers most with ``{"error": {"type": "invalid_request_error",
"message": "Bad request"}}``. The :func:`stripe_errors` middleware (innermost, so an
idempotent replay is the Stripe-shaped answer too) makes them Stripe's, in one place:

- the request is first held to the endpoint's parameters as the installed stripe-python
  defines them (``params.py``): unknown, missing and malformed parameters answer 400 with
  ``parameter_unknown`` / ``parameter_missing`` / ``parameter_invalid_*`` before anything runs;
- an unknown id is ``resource_missing`` with Stripe's wording ("No such customer: 'cus_x'"):
  404 with ``param: "id"`` for the object the URL names, 400 naming the parameter when a
  parameter names it (``items[0][price]``);
- localstripe's own checks (``assert`` in a ``try`` turned into "Bad request") are read back
  from the failed assertion: the parameter it tested and its value give the code and param;
  "Unexpected x" is ``parameter_unknown``;
- declines are 402 ``card_error`` with ``code``, ``decline_code`` and Stripe's message for the
  test card (``pm_card_chargeDeclinedInsufficientFunds``...; see :data:`TEST_CARDS`), the
  ``charge`` id, and for a PaymentIntent the ``payment_intent`` (and ``payment_method``)
  objects, as Stripe includes them.
"""

from __future__ import annotations

import ast
import contextvars
import inspect
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from localstripe import server as ls_server
from localstripe.errors import UserError
from localstripe.resources import PaymentIntent, PaymentMethod, StripeObject, store

from . import params

DOC_URL = "https://stripe.com/docs/error-codes/"


def doc_url(code: str) -> str:
    return DOC_URL + code.replace("_", "-")


def stripe_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type: str = "invalid_request_error",
    **extra: Any,
) -> UserError:
    """A UserError whose body is Stripe's: type, code, param, message, doc_url and ``extra``."""
    contents: dict[str, Any] = {**extra}
    if code:
        contents["code"] = code
        contents["doc_url"] = doc_url(code)
    if param:
        contents["param"] = param
    error = UserError(status, message, contents)
    error.body["error"]["type"] = type
    return error


# --- unknown ids -------------------------------------------------------------------------
# How Stripe names an object in "No such ...: 'id'" where it is not the object type itself.
_NAMES = {
    "payment_method": "PaymentMethod",
    "setup_intent": "setupintent",
    "subscription_item": "subscription item",
    "tax_rate": "tax rate",
    "balance_transaction": "balance transaction",
    "test_helpers.test_clock": "test clock",
    "webhook_endpoint": "webhook endpoint",
    "bank_account": "external account",
    "account": "account",
}
_NO_SUCH = re.compile(r"^No such ([\w .]+): '(.*)'$")


def resource_missing(object_type: str, object_id: str, *, param: str = "id") -> UserError:
    name = _NAMES.get(object_type, object_type)
    return stripe_error(404, f"No such {name}: '{object_id}'", code="resource_missing", param=param)


_orig_retrieve: Any = None  # the original, captured by install()
_orig_delete: Any = None  # the original, captured by install()


def _api_retrieve(cls: type[StripeObject], id: Any) -> StripeObject:
    if not isinstance(id, str) or store.get(f"{cls.object}:{id}") is None:
        raise resource_missing(str(cls.object), str(id))
    return _orig_retrieve(cls, id)


def _api_delete(cls: type[StripeObject], id: Any) -> StripeObject:
    if not isinstance(id, str) or store.get(f"{cls.object}:{id}") is None:
        raise resource_missing(str(cls.object), str(id))
    return _orig_delete(cls, id)


# --- test cards and declines ---------------------------------------------------------------
@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str
    param: str | None = None


_DECLINED = "Your card was declined."
DECLINES = {
    "4000000000000002": Decline("card_declined", "generic_decline", _DECLINED),
    "4000000000000341": Decline("card_declined", "generic_decline", _DECLINED),
    "4000000000009995": Decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "4000000000009987": Decline("card_declined", "lost_card", _DECLINED),
    "4000000000009979": Decline("card_declined", "stolen_card", _DECLINED),
    "4100000000000019": Decline("card_declined", "fraudulent", _DECLINED),
    "4000000000006975": Decline(
        "card_declined",
        "card_velocity_exceeded",
        "Your card was declined for making repeated attempts too frequently or exceeding its "
        "amount limit.",
    ),
    "4000000000000069": Decline(
        "expired_card", "expired_card", "Your card has expired.", "exp_month"
    ),
    "4000000000000127": Decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "cvc"
    ),
    "4000000000000119": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4242424242424241": Decline(
        "incorrect_number", "incorrect_number", "Your card number is incorrect.", "number"
    ),
}
GENERIC_DECLINE = DECLINES["4000000000000002"]
# Stripe's test PaymentMethods (https://docs.stripe.com/testing): id -> card number.
TEST_CARDS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
}
# Declined when attached to a customer (Stripe checks the card); only 0341 passes that check
# and fails when charged ("pm_card_chargeCustomerFail").
_DECLINED_ON_ATTACH = frozenset(DECLINES) - {"4000000000000341"}

# The card whose decline the current request reports (each request runs in its own task).
_declined_card: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "devstripe_declined_card", default=None
)


def _card_number(obj: Any) -> str | None:
    number = getattr(obj, "_card_number", None)
    return number if isinstance(number, str) else None


_orig_canonical: Any = None  # the original, captured by install()


def _canonical(cls: type[PaymentMethod], id: str) -> PaymentMethod | None:
    number = TEST_CARDS.get(id)
    if number is None:
        return _orig_canonical(cls, id)
    return PaymentMethod(
        type="card", card={"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    )


_orig_attaching_is_declined: Any = None  # the original, captured by install()
_orig_charging_is_declined: Any = None  # the original, captured by install()


def _attaching_is_declined(self: Any) -> bool:
    number = _card_number(self)
    declined = _orig_attaching_is_declined(self) or (
        getattr(self, "type", "card") == "card" and number in _DECLINED_ON_ATTACH
    )
    if declined:
        _declined_card.set(number)
    return declined


def _charging_is_declined(self: Any) -> bool:
    number = _card_number(self)
    declined = _orig_charging_is_declined(self) or (
        getattr(self, "type", "card") == "card" and number in DECLINES
    )
    if declined:
        _declined_card.set(number)
    return declined


def _decline_for(charge: Any) -> Decline:
    number = _declined_card.get()
    if number is None and charge is not None:
        pm = store.get("payment_method:" + str(getattr(charge, "payment_method", "") or ""))
        number = _card_number(pm)
    return DECLINES.get(number or "", GENERIC_DECLINE)


_orig_last_payment_error: Any = None  # the original, captured by install()


def _last_payment_error(self: PaymentIntent) -> dict[str, Any] | None:
    """Stripe's ``last_payment_error``: a card error with its decline code and doc_url."""
    error = _orig_last_payment_error.fget(self)
    if not error:
        return error
    error = {**error, "type": "card_error"}
    if error.get("charge"):
        charge = store.get("charge:" + error["charge"])
        decline = DECLINES.get(
            _card_number(store.get(f"payment_method:{getattr(charge, 'payment_method', '')}"))
            or "",
            GENERIC_DECLINE,
        )
        error.update(code=decline.code, decline_code=decline.decline_code)
        error["message"] = decline.message
        error["payment_method"] = getattr(charge, "payment_method", None) and _export_or_none(
            "payment_method:" + charge.payment_method
        )
    if error.get("code"):
        error["doc_url"] = doc_url(error["code"])
    return error


def _export_or_none(key: str) -> dict[str, Any] | None:
    obj = store.get(key)
    return obj._export() if obj is not None else None


_orig_report_failure: Any = None  # the original, captured by install()


def _report_failure(self: PaymentIntent) -> None:
    """A declined PaymentIntent answers 402 with the PaymentIntent (and its PaymentMethod) in
    the error, as Stripe's does; localstripe's error names only the charge."""
    try:
        _orig_report_failure(self)
    except UserError as exc:
        if exc.code != 402:
            raise
        charge = self.latest_charge
        decline = _decline_for(charge)
        raise stripe_error(
            402,
            decline.message,
            code=decline.code,
            param=decline.param,
            type="card_error",
            decline_code=decline.decline_code,
            charge=getattr(charge, "id", None),
            payment_intent=self._export(),
            payment_method=_export_or_none(f"payment_method:{self.payment_method}"),
        ) from None


# --- reading localstripe's "Bad request" back ----------------------------------------------
def _failed_check(exc: BaseException) -> tuple[Any, int] | None:
    """The frame and line of the assertion (or ``_require(...)``) behind ``exc``."""
    context = exc.__context__
    if not isinstance(context, AssertionError):
        return None
    entries = []
    tb = context.__traceback__
    while tb is not None:
        entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    if not entries:
        return None
    frame, line = entries[-1]
    if frame.f_code.co_name == "_require" and len(entries) > 1:
        frame, line = entries[-2]
    return frame, line


def _checked_node(frame: Any, line: int) -> tuple[ast.expr, dict[str, list[str]]] | None:
    """The tested expression, and the locals read from a parameter (``x = p.get("k")``)."""
    try:
        lines, start = inspect.getsourcelines(frame.f_code)
    except (OSError, TypeError):
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    offset = line - max(start, 1) + 1
    best: ast.expr | None = None
    derived: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        test: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            while isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.args:
                value = value.args[0]  # try_convert_to_int(p.get("k"))
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr == "get"
                and isinstance(value.func.value, ast.Name)
                and value.args
                and isinstance(value.args[0], ast.Constant)
            ):
                derived[target.id] = [value.func.value.id, str(value.args[0].value)]
        if isinstance(node, ast.Assert):
            test = node.test
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_require"
            and node.args
        ):
            test = node.args[0]
        if (
            test is not None
            and isinstance(node, ast.stmt | ast.expr)
            and node.lineno <= offset <= (node.end_lineno or node.lineno)
        ):
            best = test
    return (best, derived) if best is not None else None


def _param_path(node: ast.expr, names: set[str]) -> list[str] | None:
    """``recurring['interval']`` -> ["recurring", "interval"] when rooted at a parameter."""
    keys: list[str] = []
    while isinstance(node, ast.Subscript):
        if not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            return None
        keys.insert(0, node.slice.value)
        node = node.value
    if isinstance(node, ast.Name) and node.id in names:
        return [node.id, *keys]
    return None


def _assertion_error(exc: UserError, request: web.Request) -> UserError | None:
    found = _failed_check(exc)
    if found is None:
        return None
    frame, line = found
    checked = _checked_node(frame, line)
    if checked is None:
        return None
    test, derived = checked
    code = frame.f_code
    names = set(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]) - {"self", "cls"}
    derived = {k: v for k, v in derived.items() if v[0] in names}
    path = next(
        (
            p
            for n in ast.walk(test)
            if isinstance(n, ast.expr) and (p := _param_path(n, names | set(derived))) is not None
        ),
        None,
    )
    if path is None:
        return None
    if path[0] in derived and path[0] not in names:
        value_here: Any = frame.f_locals.get(path[0])
        path = [*derived[path[0]], *path[1:]]
    else:
        value_here = None
    value: Any = frame.f_locals.get(path[0])
    for key in path[1:]:
        value = value.get(key) if isinstance(value, dict) else None
    if value_here is not None:
        value = value_here
    if path == ["id"] and "id" in request.match_info:
        owner = frame.f_locals.get("cls") or type(frame.f_locals.get("self"))
        object_type = getattr(owner, "object", None) or "object"
        return resource_missing(str(object_type), str(value))
    param = path[0] + "".join(f"[{k}]" for k in path[1:])
    source = ast.unparse(test)
    if value is None:
        return stripe_error(
            400, f"Missing required param: {param}.", code="parameter_missing", param=param
        )
    if value == "":
        error = params._empty(param)
        return stripe_error(400, error.message, code=error.code, param=param)
    if re.search(r"\bint\b", source) and not isinstance(value, int):
        return stripe_error(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )
    choices = _choices(test)
    if choices:
        listed = ", ".join(choices[:-1]) + (", or " if len(choices) > 2 else " or ") + choices[-1]
        return stripe_error(400, f"Invalid {param}: must be one of {listed}", param=param)
    return stripe_error(400, f"Invalid {param}: {value}", param=param)


def _choices(test: ast.expr) -> list[str]:
    """``x in ("a", "b")`` -> ["a", "b"]."""
    for node in ast.walk(test):
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In)
            and isinstance(node.comparators[0], ast.Tuple | ast.List | ast.Set)
        ):
            values = [e.value for e in node.comparators[0].elts if isinstance(e, ast.Constant)]
            return [str(v) for v in values if v is not None]
    return []


# --- the middleware ------------------------------------------------------------------------
# The fake's own test hooks, which Stripe does not have: a payout created with
# ``status=failed`` fails (Stripe uses special bank account numbers for that).
FAKE_ONLY_PARAMS: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/payouts"): frozenset({"status"}),
}


def _find(data: Any, value: str, prefix: str = "") -> str | None:
    """The Stripe name of the parameter holding ``value`` (``items[0][price]``)."""
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return prefix if data == value and prefix else None
    for key, item in items:
        found = _find(item, value, f"{prefix}[{key}]" if prefix else str(key))
        if found is not None:
            return found
    return None


_CARD_CODES = frozenset({d.code for d in DECLINES.values()})
# 402s that are no decline: the payment waits for the customer (3-D Secure).
_ACTION_CODES = frozenset({"invoice_payment_intent_requires_action"})


def _normalize(exc: UserError, request: web.Request, data: dict[str, Any]) -> None:
    """Make ``exc`` (localstripe's or ours) the error Stripe sends, in place."""
    error: dict[str, Any] = exc.body["error"]
    message = str(error.get("message") or "")
    code = error.get("code")
    replacement: UserError | None = None

    if exc.code == 402 and code in _ACTION_CODES:  # not a decline: the customer must act
        error["type"] = "card_error"
    elif exc.code == 402 or code in _CARD_CODES:
        charge = store.get(f"charge:{error.get('charge')}") if error.get("charge") else None
        decline = _decline_for(charge)
        error.update(
            type="card_error",
            code=decline.code,
            decline_code=decline.decline_code,
            message=decline.message,
        )
        if decline.param:
            error["param"] = decline.param
        exc.code = 402
    elif message.startswith("Unexpected ") and not code:
        names = [n.strip() for n in message[len("Unexpected ") :].split(",")]
        plural = "s" if len(names) > 1 else ""
        replacement = stripe_error(
            400,
            f"Received unknown parameter{plural}: {', '.join(names)}",
            code="parameter_unknown",
            param=names[0],
        )
    elif message.startswith("Received unknown parameter") and not code:
        name = message.split(":", 1)[1].split(",")[0].strip()
        error.update(code="parameter_unknown", param=name)
    elif (match := _NO_SUCH.match(message)) and code in (None, "resource_missing"):
        error["code"] = "resource_missing"
        error.setdefault("param", "id")
    elif message == "Bad request" and exc.code == 400:
        replacement = _assertion_error(exc, request)

    if replacement is not None:
        exc.code, exc.body = replacement.code, replacement.body
        error = exc.body["error"]

    if error.get("code") == "resource_missing" and (match := _NO_SUCH.match(error["message"])):
        missing = match.group(2)
        named_by = _find(data, missing)
        if missing != request.match_info.get("id") and named_by is not None:
            exc.code, error["param"] = 400, named_by
        elif missing == request.match_info.get("id"):
            exc.code, error["param"] = 404, "id"
    if error.get("code") and "doc_url" not in error:
        error["doc_url"] = doc_url(error["code"])


async def _request_data(request: web.Request) -> dict[str, Any]:
    if request.method == "POST":
        data = await ls_server.get_post_data(request)
        if not isinstance(data, dict):
            data = {}
        query = ls_server.unflatten_data(request.query)
        return {**data, **(query or {})}
    return ls_server.unflatten_data(request.query) or {}


@web.middleware
async def stripe_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Check the parameters as Stripe does, then answer every error as Stripe does."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    data = await _request_data(request)
    hooks = FAKE_ONLY_PARAMS.get((request.method, request.path), frozenset())
    problem = params.check(
        request.method, request.path, {k: v for k, v in data.items() if k not in hooks}
    )
    if problem is not None:
        raise stripe_error(400, problem.message, code=problem.code, param=problem.param)
    _declined_card.set(None)
    try:
        return await handler(request)
    except UserError as exc:
        _normalize(exc, request, data)
        raise


def warm_up() -> None:
    """Read stripe-python's endpoint definitions now rather than on the first request."""
    params.params_for("GET", "/v1/customers")


__all__ = ["DECLINES", "TEST_CARDS", "resource_missing", "stripe_error", "stripe_errors"]


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global \
        _orig_retrieve, \
        _orig_delete, \
        _orig_canonical, \
        _orig_attaching_is_declined, \
        _orig_charging_is_declined, \
        _orig_last_payment_error, \
        _orig_report_failure
    _orig_retrieve = StripeObject.__dict__["_api_retrieve"].__func__
    _orig_delete = StripeObject.__dict__["_api_delete"].__func__
    StripeObject._api_retrieve = classmethod(_api_retrieve)
    StripeObject._api_delete = classmethod(_api_delete)
    _orig_canonical = PaymentMethod.__dict__["_try_get_canonical_test_article"].__func__
    _orig_attaching_is_declined = PaymentMethod._attaching_is_declined
    _orig_charging_is_declined = PaymentMethod._charging_is_declined
    PaymentMethod._try_get_canonical_test_article = classmethod(_canonical)
    PaymentMethod._attaching_is_declined = _attaching_is_declined
    PaymentMethod._charging_is_declined = _charging_is_declined
    _orig_last_payment_error = PaymentIntent.last_payment_error
    PaymentIntent.last_payment_error = property(_last_payment_error)
    _orig_report_failure = PaymentIntent._report_failure
    PaymentIntent._report_failure = _report_failure
