from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        # After djstripe's ready() (INSTALLED_APPS order), so its handlers sync the mirror
        # before ours run on the same signal.
        from subscriptions import receivers, stripe_expand

        receivers.connect()
        stripe_expand.install()
