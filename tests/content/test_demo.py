from decimal import Decimal

import pytest
from django.db.models import Sum

from content import demo, selectors
from content.licensing import VerifyStatus, license_state
from content.models import ContentItem, ContentShare, Creator, License, LicenseType, LicenseUsage
from content.purchases import SALE_SOURCE
from ledger.models import Entry, PayeeProfile, Payout, PayoutBatch, Transaction
from ledger.selectors import trial_balance

pytestmark = pytest.mark.django_db


def test_the_demo_has_every_kind_and_a_three_way_split_and_runs_twice(stripe_fake):
    lines: list[str] = []
    demo.seed(out=lines.append)
    first = _counts()
    demo.seed(out=lines.append)
    assert _counts() == first

    assert Creator.objects.count() == 3
    assert PayeeProfile.objects.filter(payee_type="creator").count() == 3
    assert set(
        PayeeProfile.objects.filter(payee_type="creator").values_list("method", flat=True)
    ) == {"bank_csv", "stripe_connect", "paypal"}
    items = ContentItem.objects.all()
    assert items.count() == len(demo.ITEMS)
    assert set(items.values_list("kind", flat=True)) == set(ContentItem.Kind.values)
    assert set(items.values_list("status", flat=True)) == {ContentItem.Status.PUBLISHED}
    assert set(LicenseType.objects.values_list("kind", flat=True)) == set(LicenseType.Kind.values)
    assert LicenseType.objects.count() == sum(len(types) for *_, types in demo.ITEMS)
    dataset = ContentItem.objects.get(title=demo.CO_CREATED)
    shares = selectors.content_shares(item=dataset)
    assert [percent for _, percent in shares] == [
        Decimal("33.33"),
        Decimal("33.33"),
        Decimal("33.34"),
    ]
    assert ContentShare.objects.count() == 3
    assert "0 new items" in lines[-1] and "0 new licence sales, 0 new per-use" in lines[-1]
    assert selectors.catalog_list().count() == len(demo.ITEMS)


def test_the_demo_sells_licences_books_them_and_pays_creators(stripe_fake):
    demo.seed(out=lambda line: None)
    # The per-use licence: active at once, nothing charged yet, its calls counted for the close.
    per_use = License.objects.get(license_type__pricing="per_use")
    assert (per_use.status, per_use.amount, per_use.stripe_payment_intent_id) == ("active", 0, "")
    assert per_use.holder.email == demo.PER_USE[0]
    assert LicenseUsage.objects.get(license=per_use).quantity == demo.PER_USE[2]
    licenses = License.objects.select_related("license_type").exclude(pk=per_use.pk)
    assert licenses.count() == len(demo.SALES)
    states = {license_state(license=lic) for lic in licenses}
    assert {
        VerifyStatus.VALID,
        VerifyStatus.EXPIRED,
        VerifyStatus.REVOKED,
        VerifyStatus.SUSPENDED,
    } <= states
    assert set(licenses.values_list("status", flat=True)) == {
        "active",
        "expired",
        "revoked",
        "suspended",
    }
    assert {lic.license_type.kind for lic in licenses} >= {
        "personal",
        "editorial",
        "exclusive",
        "commercial",
    }
    assert LicenseUsage.objects.filter(denied=False).aggregate(t=Sum("quantity"))["t"] > 0
    # Every sale is a ledger posting made by the purchase service, on its sale day.
    for lic in licenses:
        sale = Transaction.objects.get(
            source=SALE_SOURCE, idempotency_key__endswith=lic.stripe_payment_intent_id
        )
        assert sale.posted_at == lic.issued_at
    assert set(trial_balance().values()) <= {0}
    # The co-created dataset's sale is split between its three creators.
    dataset_sale = licenses.get(content__title=demo.CO_CREATED)
    creators_paid = Entry.objects.filter(
        transaction__idempotency_key__endswith=dataset_sale.stripe_payment_intent_id,
        account__payee_type="creator",
    )
    assert creators_paid.count() == 3
    # Yesterday's creator batch paid each creator by their method; the last sale is held.
    batch = PayoutBatch.objects.get(payee_type="creator")
    assert batch.status == PayoutBatch.Status.COMPLETED
    assert set(Payout.objects.filter(batch=batch).values_list("method", flat=True)) == {
        "bank_csv",
        "stripe_connect",
        "paypal",
    }
    maya = Creator.objects.get(user__email="maya@creators.demo.example")
    owed = -(
        Entry.objects.filter(account__code=f"payable.creator.{maya.pk}").aggregate(t=Sum("amount"))[
            "t"
        ]
    )
    held_sale = licenses.get(content__title="Invoice toolkit")
    assert owed == held_sale.amount * 80 // 100  # only the sale in the hold is still owed


def _counts():
    return {
        "licenses": License.objects.count(),
        "usage": LicenseUsage.objects.count(),
        "transactions": Transaction.objects.count(),
        "payouts": Payout.objects.count(),
        "profiles": PayeeProfile.objects.count(),
    }
