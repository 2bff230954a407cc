"""Invoice items and one-off invoices, as Stripe has them at API version 2026-08-26.dahlia.

``/v1/invoiceitems``:

- create with ``customer`` and either ``amount`` (+ ``currency``), ``pricing[price]`` (+
  ``quantity``) or ``unit_amount_decimal`` (+ ``quantity``, the amount rounded half away from
  zero); ``period``, ``description``, ``metadata``, ``discountable``, ``tax_rates``,
  ``invoice`` (a draft: the item becomes one of its lines at once) or none (a pending item,
  swept into the customer's next subscription invoice or a manual invoice created with
  ``pending_invoice_items_behavior=include``). Negative amounts are credits (not
  discountable by default, as Stripe has it). Errors as Stripe's: ``amount`` with
  ``pricing``/``unit_amount_decimal``/``quantity`` is ``parameters_exclusive``; an item in
  another currency than its invoice, or added to an invoice that is no longer a draft, 400.
  Emits ``invoiceitem.created``;
- update (while pending or on a draft; its line follows), delete (likewise; its line goes,
  ``invoiceitem.deleted``), retrieve, list (``customer``, ``invoice``, ``pending``,
  ``created``; every item, newest first, as Stripe lists them).

Exported with ``pricing`` (``price_details`` when a price is behind the item; null
``price_details`` and the unit amount for an amount item: the fake creates no inline
price), ``parent`` (``subscription_details`` for a subscription's prorations, else null),
``quantity_decimal``, ``discountable``, ``net_amount``, ``proration_details``, ``test_clock``.

``POST /v1/invoices`` without a subscription is a manual invoice (``billing_reason``
``manual``): ``currency`` (else the customer's, else usd; a customer may have invoices in
several currencies, as Stripe's multi-currency customers do), ``auto_advance`` (default false),
``pending_invoice_items_behavior`` (default ``exclude``), ``collection_method``
``charge_automatically``. ``POST /v1/invoices/<id>/finalize`` finalizes a draft (a number
is assigned): a total of zero or less is paid at once (``invoice.paid``), as Stripe does;
with ``auto_advance`` the payment is attempted at once (Stripe: about an hour later).
``GET /v1/invoices`` also takes ``created`` (exact or gt/gte/lt/lte) and ``status``, as
Stripe's list does (localstripe: ``customer`` and ``subscription`` only).
Not emulated: ``price_data``, ``quantity_decimal``, discounts, ``send_invoice``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    DeletedObject,
    Invoice,
    InvoiceItem,
    InvoiceLineItem,
    List,
    Plan,
    TaxRate,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

from ..errors import stripe_error
from ..pricing import tiered_amount
from .base import clock_of, customer_time, emit
from .catalog import Price, _price_for_plan
from .invoices import billing_reason

_NOT_EMULATED = (
    "customer_account",
    "discounts",
    "price_data",
    "quantity_decimal",
    "tax_behavior",
    "tax_code",
)


def _not_emulated(data: dict[str, Any]) -> None:
    for name in _NOT_EMULATED:
        if data.get(name) not in (None, "", []):
            raise stripe_error(400, f"devstripe does not emulate {name}", param=name)


def _exclusive(data: dict[str, Any], *names: str) -> None:
    given = [n for n in names if data.get(n) is not None]
    if len(given) > 1:
        raise stripe_error(
            400,
            "You may only specify one of these parameters: " + ", ".join(given) + ".",
            code="parameters_exclusive",
            param=given[-1],
        )


def _integer(value: Any, name: str) -> int | None:
    value = try_convert_to_int(value)
    if value is not None and not isinstance(value, int):
        raise stripe_error(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
        )
    return value


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise stripe_error(
            400, f"Invalid decimal: {value}", code="parameter_invalid_decimal", param=name
        ) from None


def _rounded(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _decimal_string(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def _price(price_id: Any) -> Price:
    price = store.get("price:" + price_id) if isinstance(price_id, str) else None
    if price is None:
        raise stripe_error(
            400,
            f"No such price: '{price_id}'",
            code="resource_missing",
            param="pricing[price]",
        )
    if not getattr(price, "active", True):
        raise stripe_error(
            400,
            f"The price specified is inactive. This field only accepts active prices. '{price_id}'",
            param="pricing[price]",
        )
    return price


def _price_amount(price: Price, quantity: int) -> int:
    if price.billing_scheme == "tiered":
        return tiered_amount(price.tiers or [], price.tiers_mode or "graduated", quantity)
    unit = Decimal(price.unit_amount_decimal or price.unit_amount or 0)
    return _rounded(unit * quantity)


def _draft_invoice(invoice_id: Any) -> Invoice:
    if not isinstance(invoice_id, str):
        raise stripe_error(400, "Invalid invoice", param="invoice")
    invoice = store.get("invoice:" + invoice_id)
    if invoice is None:
        raise stripe_error(
            400, f"No such invoice: '{invoice_id}'", code="resource_missing", param="invoice"
        )
    return invoice


def _require_editable(invoice: Invoice) -> None:
    if invoice.status != "draft":
        raise stripe_error(
            400,
            f"The invoice {invoice.id} is no longer a draft ({invoice.status}): invoice "
            "items can only be added to, changed on or removed from a draft invoice.",
            code="invoice_not_editable",
        )


def _period(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise stripe_error(400, "Invalid object", param="period")
    start = _integer(value.get("start"), "period[start]")
    end = _integer(value.get("end"), "period[end]")
    if start is None or end is None:
        missing = "period[start]" if start is None else "period[end]"
        raise stripe_error(
            400, f"Missing required param: {missing}.", code="parameter_missing", param=missing
        )
    if end < start:
        raise stripe_error(
            400,
            "The period end must be greater than or equal to the period start.",
            code="parameter_invalid_integer",
            param="period[end]",
        )
    return start, end


def _merge_metadata(target: dict[str, Any], metadata: Any) -> None:
    if metadata == "":
        target.clear()
        return
    if not isinstance(metadata, dict):
        raise stripe_error(400, "Invalid object", param="metadata")
    for key, value in metadata.items():
        if value in ("", None):
            target.pop(key, None)
        else:
            target[key] = str(value)


# --- invoice items ------------------------------------------------------------------------
def _ii_create(cls: type[InvoiceItem], **data: Any) -> InvoiceItem:
    _not_emulated(data)
    _exclusive(data, "amount", "pricing", "unit_amount_decimal")
    _exclusive(data, "amount", "quantity")
    customer_id, invoice_id = data.get("customer"), data.get("invoice")
    invoice = _draft_invoice(invoice_id) if invoice_id is not None else None
    if customer_id is None and invoice is not None:
        customer_id = invoice.customer
    if customer_id is None:
        raise stripe_error(
            400, "Missing required param: customer.", code="parameter_missing", param="customer"
        )
    customer = Customer._api_retrieve(customer_id)
    if invoice is not None:
        if invoice.customer != customer.id:
            raise stripe_error(
                400,
                f"The invoice {invoice.id} belongs to another customer than {customer.id}.",
                param="invoice",
            )
        _require_editable(invoice)

    quantity = _integer(data.get("quantity"), "quantity")
    if quantity is not None and quantity < 0:
        raise stripe_error(
            400, "quantity must be non-negative", code="parameter_invalid_integer",
            param="quantity",
        )  # fmt: skip
    currency = data.get("currency")
    pricing = data.get("pricing")
    price: Price | None = None
    if pricing is not None:
        if not isinstance(pricing, dict) or pricing.get("price") is None:
            raise stripe_error(
                400,
                "Missing required param: pricing[price].",
                code="parameter_missing",
                param="pricing[price]",
            )
        price = _price(pricing["price"])
        if currency is not None and currency != price.currency:
            raise stripe_error(
                400,
                f"The currency of the price ({price.currency}) does not match the "
                f"currency given ({currency}).",
                param="currency",
            )
        currency = price.currency
    if currency is None:
        currency = invoice.currency if invoice is not None else getattr(customer, "currency", None)
    if not currency:
        raise stripe_error(
            400, "Missing required param: currency.", code="parameter_missing", param="currency"
        )
    currency = str(currency).lower()
    if invoice is not None and currency != invoice.currency:
        raise stripe_error(
            400,
            f"The currency of the invoice item ({currency}) must match the currency of the "
            f"invoice ({invoice.currency}).",
            param="currency",
        )

    units = quantity if quantity is not None else 1
    unit_decimal = _decimal(data.get("unit_amount_decimal"), "unit_amount_decimal")
    amount: int
    if data.get("amount") is not None:
        amount = _integer(data["amount"], "amount") or 0
        unit = Decimal(amount)
    elif price is not None:
        amount = _price_amount(price, units)
        unit = Decimal(amount) / units if units else Decimal(price.unit_amount or 0)
    elif unit_decimal is not None:
        amount = _rounded(unit_decimal * units)
        unit = unit_decimal
    else:
        raise stripe_error(
            400,
            "You must specify one of these parameters: amount, pricing, unit_amount_decimal.",
            code="parameter_missing",
            param="amount",
        )
    period = _period(data.get("period"))
    discountable = try_convert_to_bool(data.get("discountable"))
    metadata: dict[str, Any] = {}
    if data.get("metadata") is not None:
        _merge_metadata(metadata, data["metadata"])
    description = data.get("description")
    if description is None and price is not None:
        product = store.get("product:" + str(price.product))
        description = getattr(product, "name", None)

    plan = store.get("plan:" + price.id) if price is not None else None
    with customer_time(customer.id):
        item = InvoiceItem(
            amount=amount,
            currency=currency,
            customer=customer.id,
            subscription=data.get("subscription"),
            plan=plan.id if isinstance(plan, Plan) else None,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            description=description if description is not None else "",
            tax_rates=data.get("tax_rates") or [],
            metadata=metadata,
        )
    item.description = description
    item.quantity = units
    item._price = price.id if price is not None else None
    item._unit_amount_decimal = unit
    item._discountable = discountable if isinstance(discountable, bool) else amount >= 0
    with customer_time(customer.id):
        if invoice is not None:
            item.invoice = invoice.id
            invoice.lines._list.append(InvoiceLineItem(item))
        emit("invoiceitem.created", item)
    return item


def _editable_item(cls: type[InvoiceItem], id: str) -> InvoiceItem:
    item = cls._api_retrieve(id)
    invoice = store.get("invoice:" + item.invoice) if item.invoice else None
    if invoice is not None:
        _require_editable(invoice)
    return item


def _line_of(item: InvoiceItem) -> InvoiceLineItem | None:
    invoice = store.get("invoice:" + item.invoice) if item.invoice else None
    if invoice is None:
        return None
    return next(
        (line for line in invoice.lines._list if getattr(line, "invoice_item", None) == item.id),
        None,
    )


_UPDATABLE = frozenset(
    {
        "amount", "description", "discountable", "metadata", "period", "pricing",
        "quantity", "tax_rates", "unit_amount_decimal", *_NOT_EMULATED,
    }
)  # fmt: skip


def _ii_update(cls: type[InvoiceItem], id: str, **data: Any) -> InvoiceItem:
    unknown = [k for k in data if k not in _UPDATABLE]
    if unknown:
        raise UserError(400, "Received unknown parameter: " + ", ".join(unknown))
    _not_emulated(data)
    _exclusive(data, "amount", "pricing", "unit_amount_decimal")
    _exclusive(data, "amount", "quantity")
    item = _editable_item(cls, id)
    quantity = _integer(data.get("quantity"), "quantity")
    units = quantity if quantity is not None else item.quantity
    unit = getattr(item, "_unit_amount_decimal", None)
    if unit is None:
        unit = Decimal(item.amount) / (item.quantity or 1)
    price = _price(data["pricing"].get("price")) if isinstance(data.get("pricing"), dict) else None
    if price is not None and price.currency != item.currency:
        raise stripe_error(
            400,
            f"The currency of the price ({price.currency}) must match the currency of the "
            f"invoice item ({item.currency}).",
            param="pricing[price]",
        )
    unit_decimal = _decimal(data.get("unit_amount_decimal"), "unit_amount_decimal")
    period = _period(data.get("period"))
    discountable = try_convert_to_bool(data.get("discountable"))
    tax_rates = data.get("tax_rates")
    if tax_rates is not None:
        tax_rates = [TaxRate._api_retrieve(tr) for tr in (tax_rates or [])]

    amount = item.amount
    if data.get("amount") is not None:
        amount = _integer(data["amount"], "amount") or 0
        unit = Decimal(amount)
    elif price is not None:
        amount = _price_amount(price, units)
        unit = Decimal(amount) / units if units else Decimal(price.unit_amount or 0)
        item._price = price.id
        plan = store.get("plan:" + price.id)
        item.plan = plan if isinstance(plan, Plan) else None
    elif unit_decimal is not None or quantity is not None:
        unit = unit_decimal if unit_decimal is not None else unit
        amount = _rounded(unit * units)
    item.amount = amount
    item.quantity = units
    item._unit_amount_decimal = unit
    if "description" in data:
        item.description = data["description"] or None
    if period is not None:
        item.period.update(start=period[0], end=period[1])
    if isinstance(discountable, bool):
        item._discountable = discountable
    if tax_rates is not None:
        item.tax_rates = tax_rates
    if data.get("metadata") is not None:
        _merge_metadata(item.metadata, data["metadata"])

    line = _line_of(item)
    if line is not None:
        line.amount = item.amount
        line.quantity = item.quantity
        line.description = item.description
        line.plan = item.plan
        line.tax_rates = item.tax_rates
    return item


def _ii_delete(cls: type[InvoiceItem], id: str, **kwargs: Any) -> DeletedObject:
    item = _editable_item(cls, id)
    line = _line_of(item)
    if line is not None:
        store["invoice:" + item.invoice].lines._list.remove(line)
        store.pop("line_item:" + line.id, None)
    with customer_time(item.customer):
        emit("invoiceitem.deleted", item)
    del store["invoiceitem:" + id]
    return DeletedObject(id, "invoiceitem")


# Internal sweeps of pending items (localstripe's Invoice.__init__) see none while this is set.
_excluding_pending: list[bool] = []


@contextmanager
def pending_items_excluded() -> Iterator[None]:
    _excluding_pending.append(True)
    try:
        yield
    finally:
        _excluding_pending.pop()


def _created_filter(created: Any) -> Any:
    if created is None:
        return lambda _: True
    if isinstance(created, dict):
        bounds = {op: _integer(v, f"created[{op}]") for op, v in created.items()}
        checks = {
            "gt": lambda c, b: c > b,
            "gte": lambda c, b: c >= b,
            "lt": lambda c, b: c < b,
            "lte": lambda c, b: c <= b,
        }
        return lambda c: all(checks[op](c, b) for op, b in bounds.items() if op in checks)
    exact = _integer(created, "created")
    return lambda c: c == exact


def _ii_list(
    cls: type[InvoiceItem],
    url: str | None,
    customer: str | None = None,
    invoice: str | None = None,
    pending: Any = None,
    created: Any = None,
    limit: Any = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    **kwargs: Any,
) -> List:
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    if url is None:
        # localstripe's sweep of a customer's pending items into a new invoice.
        li = List(None, limit=limit)
        li._list = [
            ii
            for key, ii in store.items()
            if key.startswith("invoiceitem:")
            and ii.invoice is None
            and ii.customer == customer
            and not _excluding_pending
        ]
        return li
    pending = try_convert_to_bool(pending)
    if customer is not None:
        Customer._api_retrieve(customer)
    matches = _created_filter(created)
    found = [
        (i, ii)
        for i, (key, ii) in enumerate(store.items())
        if key.startswith("invoiceitem:")
        and (customer is None or ii.customer == customer)
        and (invoice is None or ii.invoice == invoice)
        and (pending is not True or ii.invoice is None)
        and (pending is not False or ii.invoice is not None)
        and matches(ii.created)
    ]
    ordered = [ii for _, ii in sorted(found, key=lambda e: (e[1].created, e[0]), reverse=True)]
    if ending_before is not None:
        ids = [ii.id for ii in ordered]
        end = ids.index(ending_before) if ending_before in ids else 0
        size = try_convert_to_int(limit) or 10
        ordered = ordered[max(0, end - size) : end]
    li = List(url, limit=limit, starting_after=starting_after)
    li._list = ordered
    return li


def _ii_fixup(self: InvoiceItem, obj: dict[str, Any]) -> None:
    plan = obj.pop("plan", None)
    subscription = obj.pop("subscription", None)
    obj.pop("created", None)  # Stripe's is ``date``
    price_id = getattr(self, "_price", None)
    if price_id is None and plan is not None:
        price = _price_for_plan(self.plan)
        price_id = price.id if price is not None else None
    price = store.get("price:" + price_id) if price_id else None
    unit = getattr(self, "_unit_amount_decimal", None)
    if unit is None:
        unit = Decimal(self.amount) / (self.quantity or 1)
    obj["pricing"] = {
        "type": "price_details",
        "price_details": (
            {"price": price.id, "product": price.product} if price is not None else None
        ),
        "unit_amount_decimal": _decimal_string(unit),
    }
    subscription_item = getattr(self, "_subscription_item", None)
    obj["parent"] = (
        {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
        }
        if subscription
        else None
    )
    discountable = getattr(self, "_discountable", None)
    if discountable is None:
        discountable = not self.proration and self.amount >= 0
    obj["discountable"] = discountable
    obj["discounts"] = []
    obj["net_amount"] = None if discountable else self.amount
    obj["proration_details"] = {"credited_items": None, "discount_amounts": []}
    obj["quantity_decimal"] = str(self.quantity)
    obj["customer_account"] = None
    obj["test_clock"] = getattr(clock_of(self.customer), "id", None)
    obj["tax_rates"] = obj.get("tax_rates") or []
    obj["metadata"] = dict(self.metadata or {})


_prev_line_fixup: Any = None  # the original, captured by install()


def _line_fixup(self: InvoiceLineItem, obj: dict[str, Any]) -> None:
    _prev_line_fixup(self, obj)
    if getattr(self, "type", None) != "invoiceitem":
        return
    item = store.get("invoiceitem:" + str(self.invoice_item))
    if item is None:
        return
    item_obj = item._export()
    obj["pricing"] = item_obj["pricing"]
    obj["discountable"] = item_obj["discountable"]


# --- manual invoices ----------------------------------------------------------------------
_CREATE_NOT_EMULATED = (
    "account_tax_ids", "application_fee_amount", "automatically_finalizes_at",
    "custom_fields", "customer_account", "days_until_due", "default_source", "discounts",
    "due_date", "effective_at", "from_invoice", "issuer", "number", "on_behalf_of",
    "rendering", "shipping_cost", "shipping_details", "transfer_data",
)  # fmt: skip


def _invoice_create(cls: type[Invoice], **data: Any) -> Invoice:
    for name in _CREATE_NOT_EMULATED:
        if data.get(name) not in (None, "", []):
            raise stripe_error(400, f"devstripe does not emulate {name}", param=name)
    customer_id = data.get("customer")
    if customer_id is None:
        raise stripe_error(
            400, "Missing required param: customer.", code="parameter_missing", param="customer"
        )
    customer = Customer._api_retrieve(customer_id)
    behavior = data.get("pending_invoice_items_behavior") or "exclude"
    if behavior not in ("include", "exclude"):
        raise stripe_error(
            400,
            "Invalid pending_invoice_items_behavior: must be one of include or exclude",
            param="pending_invoice_items_behavior",
        )
    collection = data.get("collection_method") or "charge_automatically"
    if collection != "charge_automatically":
        raise stripe_error(
            400, "devstripe does not emulate collection_method=send_invoice",
            param="collection_method",
        )  # fmt: skip
    auto_advance = try_convert_to_bool(data.get("auto_advance"))
    metadata: dict[str, Any] = {}
    if data.get("metadata") is not None:
        _merge_metadata(metadata, data["metadata"])
    currency = data.get("currency") or getattr(customer, "currency", None) or "usd"
    subscription = data.get("subscription")
    with customer_time(customer.id), billing_reason("manual"):
        _creating_currency.append(str(currency).lower())
        try:
            if behavior == "exclude":
                with pending_items_excluded():
                    invoice = _new_invoice(customer.id, subscription, data, metadata)
            else:
                invoice = _new_invoice(customer.id, subscription, data, metadata)
        finally:
            _creating_currency.pop()
    invoice._auto_advance = bool(auto_advance)
    if data.get("default_payment_method"):
        invoice._default_payment_method = data["default_payment_method"]
    return invoice


def _new_invoice(
    customer: str, subscription: str | None, data: dict[str, Any], metadata: dict[str, Any]
) -> Invoice:
    return Invoice(
        customer=customer,
        subscription=subscription,
        items=[],
        metadata=metadata,
        description=data.get("description"),
        default_tax_rates=data.get("default_tax_rates"),
    )


# The currency of the manual invoice being created (localstripe takes its first line's).
_creating_currency: list[str] = []


def _get_currency(self: Invoice) -> str:
    return self.__dict__.get("_currency") or self.__dict__.get("currency") or "usd"


def _set_currency(self: Invoice, value: str) -> None:
    self.__dict__["_currency"] = _creating_currency[-1] if _creating_currency else value


def _finalize_route(id: str, auto_advance: Any = None, **kwargs: Any) -> Invoice:
    """``POST /v1/invoices/<id>/finalize``."""
    invoice = Invoice._api_retrieve(id)
    if invoice.status != "draft":
        raise stripe_error(
            400,
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
        )
    auto_advance = try_convert_to_bool(auto_advance)
    if isinstance(auto_advance, bool):
        invoice._auto_advance = auto_advance
    with customer_time(invoice.customer):
        invoice._finalize()
        if invoice.total <= 0:
            invoice._on_payment_success()
            return invoice
    wants_payment = getattr(invoice, "_auto_advance", True)
    customer = Customer._api_retrieve(invoice.customer)
    if wants_payment and customer._get_default_payment_method_or_source() is not None:
        Invoice._api_pay_invoice(invoice.id)
    return invoice


_prev_finalize: Any = None  # the original, captured by install()


def _finalize_numbered(self: Invoice) -> None:
    _prev_finalize(self)
    customer = store.get("customer:" + self.customer)
    finalized = sum(
        1
        for key, inv in store.items()
        if key.startswith("invoice:")
        and inv.customer == self.customer
        and inv.status_transitions.get("finalized_at") is not None
    )
    prefix = getattr(customer, "invoice_prefix", None) or self.customer[-8:].upper()
    self.number = f"{prefix}-{finalized:04d}"


_prev_invoice_fixup: Any = None  # the original, captured by install()
_prev_invoice_list: Any = None  # localstripe's list, captured by install()


def _invoice_fixup(self: Invoice, obj: dict[str, Any]) -> None:
    _prev_invoice_fixup(self, obj)
    obj.pop("_currency", None)
    chosen = getattr(self, "_auto_advance", None)
    if chosen is not None:
        obj["auto_advance"] = chosen and obj["status"] in ("draft", "open")
    obj["default_payment_method"] = getattr(self, "_default_payment_method", None)


_INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")


def _invoice_list(
    cls: type[Invoice],
    url: str,
    created: Any = None,
    status: str | None = None,
    **kwargs: Any,
) -> Any:
    if status is not None and status not in _INVOICE_STATUSES:
        raise stripe_error(
            400,
            f"Invalid status: must be one of {', '.join(_INVOICE_STATUSES)}",
            param="status",
        )
    matches = _created_filter(created)
    li = _prev_invoice_list(url, **kwargs)
    li._list = [
        i for i in li._list if matches(i.created) and (status is None or i.status == status)
    ]
    return li


extra_routes: list[tuple[str, str, Any]] = [
    ("POST", "/v1/invoices/{id}/finalize", _finalize_route),
]


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _prev_line_fixup, _prev_finalize, _prev_invoice_fixup, _prev_invoice_list
    _prev_invoice_list = Invoice._api_list_all
    Invoice._api_list_all = classmethod(_invoice_list)
    InvoiceItem._api_create = classmethod(_ii_create)
    InvoiceItem._api_update = classmethod(_ii_update)
    InvoiceItem._api_delete = classmethod(_ii_delete)
    InvoiceItem._api_list_all = classmethod(_ii_list)
    InvoiceItem._devstripe_fixup = _ii_fixup
    _prev_line_fixup = InvoiceLineItem._devstripe_fixup
    InvoiceLineItem._devstripe_fixup = _line_fixup
    _prev_invoice_fixup = Invoice._devstripe_fixup
    Invoice._devstripe_fixup = _invoice_fixup
    Invoice._api_create = classmethod(_invoice_create)
    Invoice.currency = property(_get_currency, _set_currency)
    _prev_finalize = Invoice._finalize
    Invoice._finalize = _finalize_numbered
