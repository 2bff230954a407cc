"""gunicorn's logger with our secret redaction (gunicorn.conf.py names it as `logger_class`).

gunicorn writes its access log itself, not through Django's LOGGING, and its request line
carries the query string: `GET /api/v1/content/licenses/verify?key=lk_…` would put a buyer's
licence key in every access log. The same filter as the console handler's redacts it.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from revenue_site.log_redaction import RedactSecretsFilter


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(f, RedactSecretsFilter) for f in log.filters):
                log.addFilter(RedactSecretsFilter())
