"""The site's settings with a urlconf that adds the bench's baseline view."""

from revenue_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.webhooks_support.urls"
CELERY_IMPORTS = ["bench.webhooks_support.tasks"]
