from django.apps import AppConfig


class AffiliatesConfig(AppConfig):
    name = "affiliates"
    verbose_name = "Affiliates"

    def ready(self) -> None:
        from affiliates import receivers
        from affiliates.services import commissions
        from ledger.payouts import PayeeHooks, payee_type_register

        # After djstripe and subscriptions (INSTALLED_APPS order): the mirror is synced and
        # the invoice booked before commissions accrue on the same signal.
        receivers.connect()
        # Affiliates are payees of the shared payout engine.
        payee_type_register(
            commissions.PAYEE_TYPE,
            PayeeHooks(
                withheld=commissions.affiliate_withheld,
                minimum=commissions.affiliate_minimum,
                on_paid=commissions.affiliate_payout_paid,
            ),
        )
