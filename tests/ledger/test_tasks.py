import logging

import pytest

from ledger.chart import SystemAccount
from ledger.services import system_account
from ledger.tasks import trial_balance_check
from tests.ledger.factories import PostedTransactionFactory, unbalanced_entry

pytestmark = pytest.mark.django_db


def test_trial_balance_check_is_quiet_when_balanced(caplog):
    PostedTransactionFactory(currency="jpy", amount=1200)
    with caplog.at_level(logging.ERROR, logger="ledger.tasks"):
        assert trial_balance_check.apply().get() == {}
    assert not caplog.records


def test_trial_balance_check_logs_an_error_per_unbalanced_currency(caplog):
    bank = system_account(SystemAccount.BANK)
    with (
        unbalanced_entry(account=bank, amount=-3, currency="eur"),
        caplog.at_level(logging.ERROR, logger="ledger.tasks"),
    ):
        assert trial_balance_check() == {"eur": -3}
    assert [record.levelname for record in caplog.records] == ["ERROR"]
    assert "eur" in caplog.records[0].getMessage()
