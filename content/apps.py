from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "content"
    verbose_name = "Content"

    def ready(self) -> None:
        from content import billing_receivers, payouts, receivers, services
        from ledger.payouts import PayeeHooks, payee_type_register

        # Creators are payees of the shared payout engine, with a hold period on earnings.
        payee_type_register(
            services.PAYEE_TYPE,
            PayeeHooks(
                withheld=payouts.creator_withheld,
                minimum=payouts.creator_minimum,
                on_paid=payouts.creator_payout_paid,
            ),
        )
        # After djstripe, subscriptions and affiliates (INSTALLED_APPS order).
        receivers.connect()
        billing_receivers.connect()  # recurring licences, usage royalties (period close)
