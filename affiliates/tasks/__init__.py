"""Celery tasks of the affiliates app (autodiscovered as `affiliates.tasks`)."""

from affiliates.tasks.commissions import *  # noqa: F403
from affiliates.tasks.tracking import *  # noqa: F403
