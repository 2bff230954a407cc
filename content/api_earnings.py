"""A creator's money endpoints (/api/v1/creator/…, the creator's account token).

- `earnings/` — earnings from the ledger by content item and month (`start`, `end`, `content`);
- `usage/` — usage of licences of the creator's items by item, event and day;
- `payouts/` — the creator's payouts and their status;
- `balance` — per currency: owed, held (hold period), payable by the next batch;
- `payout-settings` — how the creator is paid (Stripe Connect, PayPal or bank CSV).

A creator sees the items they own or co-create (their own share of the money, aggregated
usage); the licence list (`creator/licenses/`) stays the owner's. Another creator's item id
answers 404. Money is integer minor units with a lowercase currency.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from content import earnings, payouts, selectors
from content.api import (
    CREATOR_ERRORS,
    INVALID,
    NOT_YOURS,
    CreatorAPIView,
    CreatorPayoutSettingsSerializer,
)
from content.models import ContentItem, LicenseUsage
from ledger.models import Payout
from revenue_site.pagination import LimitOffsetPagination

# --- serializers ---------------------------------------------------------------------------

_MINOR = "Minor units of `currency`."


class PeriodFilter(serializers.Serializer[Any]):
    start = serializers.DateField(required=False, help_text="First UTC day included.")
    end = serializers.DateField(required=False, help_text="Last UTC day included.")
    content = serializers.IntegerField(
        min_value=1, required=False, help_text="A content item you own or co-create."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "start" in attrs and "end" in attrs and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"end": ["On or after `start`."]})
        return attrs


class UsageFilter(PeriodFilter):
    event = serializers.ChoiceField(choices=LicenseUsage.Event.choices, required=False)


class ContentRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()


class EarningsRowSerializer(serializers.Serializer[Any]):
    content = ContentRefSerializer(
        allow_null=True, help_text="null: earnings not tied to one item."
    )
    period = serializers.CharField(help_text="The month (UTC), `YYYY-MM`.")
    currency = serializers.CharField()
    sales = serializers.IntegerField(help_text=f"Your share of sales. {_MINOR}")
    royalties = serializers.IntegerField(help_text=f"Your share of usage royalties. {_MINOR}")
    reversals = serializers.IntegerField(
        help_text=f"Taken back by refunds and lost disputes (0 or less). {_MINOR}"
    )
    other = serializers.IntegerField(help_text=f"Other adjustments. {_MINOR}")
    net = serializers.IntegerField(help_text=f"sales + royalties + reversals + other. {_MINOR}")


class UsageRowSerializer(serializers.Serializer[Any]):
    content = ContentRefSerializer()
    event = serializers.ChoiceField(choices=LicenseUsage.Event.choices)
    day = serializers.DateField(help_text="UTC day.")
    quantity = serializers.IntegerField(help_text="Units accepted.")
    denied = serializers.IntegerField(help_text="Units refused at a limit (not counted).")
    licenses = serializers.IntegerField(help_text="Licences that reported this event that day.")


class CreatorPayoutSerializer(serializers.ModelSerializer[Payout]):
    as_of = serializers.DateField(source="batch.as_of", help_text="Earnings up to this day.")
    amount = serializers.IntegerField(help_text=_MINOR)

    class Meta:
        model = Payout
        fields = ["id", "as_of", "amount", "currency", "method", "status", "skip_reason", "paid_at"]
        read_only_fields = fields


class BalanceSerializer(serializers.Serializer[Any]):
    currency = serializers.CharField()
    balance = serializers.IntegerField(help_text=f"Owed to you now (negative: you owe). {_MINOR}")
    held = serializers.IntegerField(
        help_text=f"Earned in the hold period, not payable yet. {_MINOR}"
    )
    available = serializers.IntegerField(
        help_text=f"What the next payout batch would pay (0 below the minimum). {_MINOR}"
    )
    minimum = serializers.IntegerField(help_text=f"The smallest payout. {_MINOR}")


class CreatorPayoutSettingsOutSerializer(CreatorPayoutSettingsSerializer):
    method = serializers.CharField(help_text="Blank until you choose one: nothing is paid then.")  # type: ignore[assignment]


def _paginated(request: Request, view: Any, rows: Any) -> tuple[LimitOffsetPagination, list[Any]]:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator, list(page or [])


# --- views ---------------------------------------------------------------------------------


class CreatorMoneyView(CreatorAPIView):
    # Read by drf-spectacular too: the list is documented as paginated (`limit`, `offset`).
    pagination_class = LimitOffsetPagination

    def filters(self, serializer_class: type[PeriodFilter]) -> dict[str, Any]:
        data = serializer_class(data=self.request.query_params)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "content" in values:
            try:
                selectors.creator_visible_item_get(creator=self.creator, item_id=values["content"])
            except ContentItem.DoesNotExist as exc:
                raise exceptions.NotFound() from exc
        return values


class CreatorEarningsView(CreatorMoneyView):
    @extend_schema(
        operation_id="creator_earnings_list",
        parameters=[PeriodFilter],
        responses={
            200: EarningsRowSerializer(many=True),
            400: INVALID,
            404: NOT_YOURS,
            **CREATOR_ERRORS,
        },
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """Your earnings from the ledger by content item and month (UTC), newest month first:
        your share of sales and royalties, less refunds and lost disputes, in minor units per
        currency; paginated with `limit` and `offset`."""
        v = self.filters(PeriodFilter)
        rows = earnings.creator_earnings(
            creator=self.creator,
            start=v.get("start"),
            end=v.get("end"),
            content_id=v.get("content"),
        )
        paginator, page = _paginated(request, self, rows)
        titles = earnings.content_titles(ids=[row["content_id"] for row in page])
        body = []
        for raw in page:
            row = earnings.earnings_row(raw)
            content_id = row.pop("content_id")
            content = (
                {"id": content_id, "title": titles.get(content_id, "")}
                if content_id is not None
                else None
            )
            body.append({**row, "content": content})
        return paginator.get_paginated_response(EarningsRowSerializer(body, many=True).data)


class CreatorUsageView(CreatorMoneyView):
    @extend_schema(
        operation_id="creator_usage_list",
        parameters=[UsageFilter],
        responses={
            200: UsageRowSerializer(many=True),
            400: INVALID,
            404: NOT_YOURS,
            **CREATOR_ERRORS,
        },
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """Usage of the licences of your items (owned or co-created) by item, event and UTC
        day, newest day first; paginated with `limit` and `offset`."""
        v = self.filters(UsageFilter)
        rows = selectors.creator_usage(
            creator=self.creator,
            start=v.get("start"),
            end=v.get("end"),
            content_id=v.get("content"),
            event=v.get("event"),
        )
        paginator, page = _paginated(request, self, rows)
        body = [
            {
                "content": {
                    "id": row["license__content_id"],
                    "title": row["license__content__title"],
                },
                "event": row["event"],
                "day": row["day"],
                "quantity": row["accepted_units"],
                "denied": row["denied_units"],
                "licenses": row["license_count"],
            }
            for row in page
        ]
        return paginator.get_paginated_response(UsageRowSerializer(body, many=True).data)


class CreatorPayoutListView(CreatorAPIView):
    pagination_class = LimitOffsetPagination

    @extend_schema(
        operation_id="creator_payouts_list",
        responses={200: CreatorPayoutSerializer(many=True), **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """Your payouts (pending, paid or failed), newest first; paginated with `limit` and
        `offset`."""
        paginator, page = _paginated(
            request, self, selectors.creator_payout_list(creator=self.creator)
        )
        return paginator.get_paginated_response(CreatorPayoutSerializer(page, many=True).data)


class CreatorBalanceView(CreatorAPIView):
    @extend_schema(
        operation_id="creator_balance_retrieve",
        responses={200: BalanceSerializer(many=True), **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """Per currency: what we owe you, what is held (earned in the last
        `CONTENT_PAYOUT_HOLD_DAYS` days, so refunds can be taken back first), and what the
        next payout batch would pay."""
        rows = payouts.creator_balance(creator=self.creator, as_of=timezone.now())
        return Response(BalanceSerializer(rows, many=True).data)


class CreatorPayoutSettingsView(CreatorAPIView):
    @extend_schema(
        operation_id="creator_payout_settings_retrieve",
        responses={200: CreatorPayoutSettingsOutSerializer, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """How you are paid (`method` is blank until you choose one)."""
        profile = payouts.creator_payee_profile(creator=self.creator)
        if profile is None:
            return Response(CreatorPayoutSettingsOutSerializer({"method": ""}).data)
        return Response(CreatorPayoutSettingsOutSerializer(profile).data)

    @extend_schema(
        operation_id="creator_payout_settings_update",
        request=CreatorPayoutSettingsSerializer,
        responses={200: CreatorPayoutSettingsOutSerializer, 400: INVALID, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def put(self, request: Request) -> Response:
        """Choose how you are paid: `stripe_connect` with your `stripe_account_id`, `paypal`
        with `paypal_email`, or `bank_csv` with `bank_account_name`, `bank_iban` and
        `bank_bic`. The other method's details are cleared."""
        data = CreatorPayoutSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = payouts.creator_payout_settings_update(
            creator=self.creator, **data.validated_data
        )
        return Response(CreatorPayoutSettingsOutSerializer(profile).data)


__all__ = [
    "CreatorBalanceView",
    "CreatorEarningsView",
    "CreatorPayoutListView",
    "CreatorPayoutSettingsView",
    "CreatorUsageView",
]
