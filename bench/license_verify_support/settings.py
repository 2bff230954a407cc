"""The site's settings with a urlconf that adds the bench's constant-JSON baseline view."""

from revenue_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.license_verify_support.urls"
