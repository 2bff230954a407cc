from django.apps import AppConfig


class AffiliatesConfig(AppConfig):
    name = "affiliates"
    verbose_name = "Affiliates"

    def ready(self) -> None:
        # After djstripe and subscriptions (INSTALLED_APPS order): the mirror is synced and
        # the invoice booked before commissions accrue on the same signal.
        from affiliates import attribution_receivers, receivers

        receivers.connect()
        attribution_receivers.connect()
