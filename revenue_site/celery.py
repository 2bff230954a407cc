"""Celery app: Redis broker when REDIS_URL is set, eager (in-process) otherwise.

Configuration lives in settings under the CELERY_ namespace (serialisation, acks_late,
time limits, the beat schedule).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "revenue_site.settings")

app = Celery("revenue_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
