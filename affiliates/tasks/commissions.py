"""Tasks for commissions and payouts."""
