"""devstripe's extensions of localstripe are an explicit, ordered install step."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.stripe_harness import BASE_DIR

SCRIPT = textwrap.dedent(
    """
    import importlib
    from localstripe import resources as ls

    before = (ls.StripeObject._export, ls.Invoice.__init__, ls.Charge._trigger_payment)
    import devstripe
    for name in devstripe.EXTENSIONS:
        importlib.import_module("devstripe." + name)
    # Importing changes nothing.
    assert (ls.StripeObject._export, ls.Invoice.__init__, ls.Charge._trigger_payment) == before
    assert not hasattr(ls.Invoice, "_devstripe_fixup")

    devstripe.install()
    after = (ls.StripeObject._export, ls.Invoice.__init__, ls.Charge._trigger_payment)
    assert all(a is not b for a, b in zip(after, before))
    # The tax fix-up wraps the invoice items' one, which wraps the invoices' one: each
    # installed later holds the earlier one.
    from devstripe import tax
    from devstripe.resources import invoice_items, invoices
    assert ls.Invoice._devstripe_fixup is tax._invoice_fixup
    assert tax._prev_invoice_fixup is invoice_items._invoice_fixup
    assert invoice_items._prev_invoice_fixup is invoices._invoice_fixup

    devstripe.install()  # a second call is a no-op
    assert (ls.StripeObject._export, ls.Invoice.__init__, ls.Charge._trigger_payment) == after
    print("ok")
    """
)


def test_importing_changes_nothing_and_install_applies_every_extension_once_in_order():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
