"""The staff console in a real browser: log in, see the branded console, open the ledger."""

import pytest

from accounts.models import User

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_staff_logs_in_and_sees_the_staff_console(live_server, page):
    User.objects.create_superuser(email="boss@example.com", password="a-long-Passw0rd!")

    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "boss@example.com")
    page.fill("input[name=password]", "a-long-Passw0rd!")
    page.click("input[type=submit]")

    page.wait_for_selector("#site-name")
    assert "Revenue Agent System" in page.inner_text("#site-name")
    # The index lists the ledger's model (name link and "View" link).
    assert page.locator("#content-main a[href='/admin/ledger/transaction/']").count() >= 1
    page.locator("#content-main a[href='/admin/ledger/transaction/']").first.click()
    page.wait_for_selector("#changelist")
    # The ledger is append-only: no "Add" button for staff.
    assert page.locator(".object-tools a.addlink").count() == 0


def test_wrong_password_is_refused(live_server, page):
    User.objects.create_superuser(email="boss@example.com", password="a-long-Passw0rd!")

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "boss@example.com")
    page.fill("input[name=password]", "not-the-password")
    page.click("input[type=submit]")

    page.wait_for_selector(".errornote")
    assert "/admin/login/" in page.url
