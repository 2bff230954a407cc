from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and staff"

    def ready(self) -> None:
        from accounts import receivers  # noqa: F401  (connects the login-failure signals)
        from accounts.staff_groups import sync_after_migrate

        # Not limited to this app as sender: permissions of apps migrated later (and of
        # apps added in later releases) must reach the staff groups too.
        post_migrate.connect(sync_after_migrate, dispatch_uid="accounts.sync_staff_groups")
