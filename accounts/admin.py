from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import selectors
from accounts.forms import StaffAuthenticationForm, UserAdminChangeForm, UserCreationForm
from accounts.models import OutgoingEmail, User
from accounts.services import SECRET_PURPOSES, email_retry_now
from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin

# Failed console logins are counted per (IP, username) and locked out; see accounts.security.
admin.site.login_form = StaffAuthenticationForm


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserAdminChangeForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "name", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "name")
    ordering = ("email",)
    list_select_related = ()
    filter_horizontal = ("groups", "user_permissions")
    readonly_fields = ("last_login", "date_joined")
    # Users grow with customers: skip the second unfiltered COUNT(*) on filtered pages.
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return selectors.user_list_for_admin()


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(ReadOnlyAdmin):
    """The mail outbox: what was sent, what waits for a retry, what was given up."""

    list_display = ("created_at", "purpose", "recipients", "subject", "status", "attempts")
    list_filter = ("status", "purpose")
    search_fields = ("subject", "purpose")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    list_select_related = ()
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ("send_again_now",)
    fields = readonly_fields = (
        "purpose", "to", "from_email", "subject", "message", "status", "attempts",
        "next_attempt_at", "last_error", "created_at", "sent_at",
    )  # fmt: skip

    @admin.display(description="body")
    def message(self, obj: OutgoingEmail) -> str:
        # A password reset mail carries a sign-in link: staff must not be able to read it.
        if obj.purpose in SECRET_PURPOSES:
            return "(hidden: this message carries a sign-in link)"
        return obj.body

    @admin.display(description="to")
    def recipients(self, obj: OutgoingEmail) -> str:
        return ", ".join(obj.to)

    def has_resend_permission(self, request: HttpRequest) -> bool:
        # Edits stay refused; resending is what the change permission grants here.
        return request.user.has_perm("accounts.change_outgoingemail")

    @admin.action(
        description="Send again now (queued or given-up messages)", permissions=["resend"]
    )
    def send_again_now(self, request: HttpRequest, queryset: QuerySet[OutgoingEmail]) -> None:
        count = 0
        for email in queryset.exclude(status=OutgoingEmail.Status.SENT):
            email_retry_now(email=email)
            self.log_change(request, email, "Queued for another delivery attempt.")
            count += 1
        self.message_user(request, f"{count} message(s) queued again.", messages.SUCCESS)
