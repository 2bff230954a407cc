from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _api_calls_meter_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    from marketplace.services import meter_api_calls_ensure

    meter_api_calls_ensure(using=using)


def _usage_partitions_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    from marketplace.tasks import PARTITION_MONTHS_AHEAD
    from marketplace.usage_store import usage_partitions_ensure

    if using == "default":  # usage_store works on the default connection
        usage_partitions_ensure(months_ahead=PARTITION_MONTHS_AHEAD)


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        from marketplace import receivers, receivers_orders

        # After djstripe and subscriptions (INSTALLED_APPS order): the invoice is booked first.
        receivers.connect()
        receivers_orders.connect()
        # The data migration creates `api_calls`; `flush` (and transactional tests) empty the
        # table and then send post_migrate, which brings it back.
        post_migrate.connect(
            _api_calls_meter_after_migrate, sender=self, dispatch_uid="marketplace.api_calls"
        )
        # The migration partitions the events table for the months around it; a database
        # migrated (or flushed) later gets this month's and the next ones at once.
        post_migrate.connect(
            _usage_partitions_after_migrate, sender=self, dispatch_uid="marketplace.partitions"
        )
