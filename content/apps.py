from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "content"
    verbose_name = "Content"

    def ready(self) -> None:
        from content import billing_receivers, receivers, services
        from ledger.payouts import PayeeHooks, payee_type_register

        # Creators are payees of the shared payout engine (the hold period comes with sales).
        payee_type_register(services.PAYEE_TYPE, PayeeHooks(minimum=services.creator_minimum))
        # After djstripe, subscriptions and affiliates (INSTALLED_APPS order).
        receivers.connect()
        billing_receivers.connect()  # recurring licences, usage royalties (period close)
