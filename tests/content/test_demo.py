from decimal import Decimal

import pytest

from content import demo, selectors
from content.models import ContentItem, ContentShare, Creator, LicenseType
from ledger.models import PayeeProfile

pytestmark = pytest.mark.django_db


def test_the_demo_has_every_kind_and_a_three_way_split_and_runs_twice():
    lines: list[str] = []
    demo.seed(out=lines.append)
    demo.seed(out=lines.append)
    assert Creator.objects.count() == 3
    assert PayeeProfile.objects.filter(payee_type="creator").count() == 3
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
    assert "0 new items" in lines[-1]
    assert selectors.catalog_list().count() == len(demo.ITEMS)
