from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _api_calls_meter_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    from marketplace.services import meter_api_calls_ensure

    meter_api_calls_ensure(using=using)


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        from marketplace import receivers

        # After djstripe and subscriptions (INSTALLED_APPS order): the invoice is booked first.
        receivers.connect()
        # The data migration creates `api_calls`; `flush` (and transactional tests) empty the
        # table and then send post_migrate, which brings it back.
        post_migrate.connect(
            _api_calls_meter_after_migrate, sender=self, dispatch_uid="marketplace.api_calls"
        )
