"""The site's settings with a urlconf that adds the bench's baseline redirect."""

from revenue_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.clicks_support.urls"
