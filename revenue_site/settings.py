"""Settings for Revenue Agent System: one module, every value from the environment.

Embedded defaults (SQLite, local-memory cache, eager Celery, the local fake Stripe) serve
`make run` and the tests; production sets the variables in DESIGN.md §4. See README's table.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import environ
from celery.schedules import crontab
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-used-in-production"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (production)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

SERVICE_NAME = "revenue-agent-system"

INSTALLED_APPS = [
    "revenue_site.apps.StaffConsoleAdminConfig",  # django.contrib.admin with our site class
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "djstripe",
    "auditlog",
    "revenue_site",
    "accounts",
    "ledger",
    "subscriptions",
    "affiliates",
    "marketplace",
    "content",
    "analytics",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "revenue_site.logging.RequestIdMiddleware",
    "revenue_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user (and IP) as the actor of the audit log entries a request writes.
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A view that loses the database answers 503 with Retry-After (revenue_site.errors).
    "revenue_site.errors.DatabaseUnavailableMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "revenue_site.urls"
WSGI_APPLICATION = "revenue_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "revenue_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# django-prometheus wraps the engines so /metrics carries query counts and latencies.
_PROMETHEUS_DB_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
_db["ENGINE"] = _PROMETHEUS_DB_ENGINES.get(_db["ENGINE"], _db["ENGINE"])
if "postgresql" in _db["ENGINE"]:
    _db["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
else:
    # make run serves webhooks while seed_demo writes: WAL lets readers run beside the writer,
    # and IMMEDIATE transactions wait for the write lock instead of failing on upgrade.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# A file-backed SQLite test database lets pytest --reuse-db keep it between runs.
_db["TEST"] = {
    "NAME": env.str(
        "DJANGO_TEST_DATABASE_NAME",
        default=str(BASE_DIR / "test_db.sqlite3") if "sqlite" in _db["ENGINE"] else None,
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache, sessions, Celery ------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")


def redis_cache(url: str) -> dict[str, object]:
    """The cache on Redis at ``url``. Redis down or slow is a cache miss, not an error (logged):
    pages, the API and the console keep serving; throttles let requests through, /health says
    "degraded". A hung Redis costs at most a second per call."""
    return {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="ras"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
        },
    }


if REDIS_URL:
    CACHES = {"default": redis_cache(REDIS_URL)}
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    # Sessions in Redis with the database behind them: a Redis outage or restart signs nobody
    # out.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache",
            "LOCATION": "revenue-agent-system",
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands a task whose worker vanished (killed, host lost) to another worker only after
# this many seconds unacknowledged. It must exceed the longest a healthy task stays unacked
# (queue wait with prefetch 1, plus the 300 s hard time limit), or a slow task runs twice at
# once; an hour is the margin. Lower only for tests that kill workers (tests/faults/).
_visibility_timeout = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
if _visibility_timeout < 1:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must be at least 1 (seconds).")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility_timeout}
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup closes every DB connection after each task unless this is set; keep
# them for this many tasks (CONN_HEALTH_CHECKS still drops broken ones).
CELERY_DB_REUSE_MAX = 100
# API billing: a usage period (calendar month, UTC) is closed and billed this long after its
# end; events stamped inside it are accepted until then.
USAGE_CLOSE_GRACE_SECONDS = env.int("USAGE_CLOSE_GRACE_SECONDS", default=3600)
# Audit trail (django-auditlog): every create / change / delete of these money-affecting
# records is a LogEntry (who, when, before -> after), written by a signal in the same
# transaction as the change; staff read it in the console ("Audit log" on each record, and
# Audit log > Log entries). Bank and PayPal details are masked, passwords never recorded.
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    "subscriptions.Plan",
    "subscriptions.PlanPrice",
    "affiliates.Program",
    "affiliates.Affiliate",
    "affiliates.Commission",
    "content.Creator",
    "content.ContentItem",
    "content.ContentShare",
    "content.LicenseType",
    "content.License",
    "marketplace.Meter",
    "marketplace.ApiPlan",
    "marketplace.ApiPlanCharge",
    "marketplace.CustomerApiPlan",
    "marketplace.Category",
    "marketplace.Provider",
    "marketplace.Listing",
    "marketplace.ListingPackage",
    "marketplace.Order",
    {
        "model": "ledger.PayeeProfile",
        "mask_fields": ["bank_account_name", "bank_iban", "bank_bic", "paypal_email"],
    },
    "ledger.PayoutBatch",
    "ledger.Payout",
    {
        "model": "accounts.User",
        "exclude_fields": ["password", "last_login"],
    },
)

# Retention (days): raw rows older than this are pruned daily, in small batches, by beat.
# Processed webhook events (failed ones are kept until handled; Stripe's Events API keeps 30
# days, which the reconcile sweep reads, so at least 35).
WEBHOOK_EVENT_RETENTION_DAYS = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=90)
# Raw click rows (daily counts per link are kept for ever; fraud checks read recent clicks).
CLICK_RETENTION_DAYS = env.int("CLICK_RETENTION_DAYS", default=180)
# Raw usage events (the hourly rollups, which rating and the explorer read, are kept; months
# past it are closed and billed, so at least 62).
USAGE_EVENT_RETENTION_DAYS = env.int("USAGE_EVENT_RETENTION_DAYS", default=400)
for _name, _minimum in (
    ("WEBHOOK_EVENT_RETENTION_DAYS", 35),
    ("CLICK_RETENTION_DAYS", 31),
    ("USAGE_EVENT_RETENTION_DAYS", 62),
):
    if globals()[_name] < _minimum:
        raise ImproperlyConfigured(f"{_name} must be at least {_minimum} (days).")
# The beat schedule lives in code; each issue adds its periodic tasks here.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "ledger-trial-balance-check": {
        "task": "ledger.tasks.trial_balance_check",
        "schedule": crontab(minute=15, hour="*/6"),
    },
    "subscriptions-webhook-events-retry-due": {
        "task": "subscriptions.tasks.webhook_events_retry_due",
        "schedule": crontab(),  # every minute
    },
    "subscriptions-stripe-reconcile": {
        "task": "subscriptions.tasks.stripe_reconcile",
        "schedule": crontab(minute="*/10"),
    },
    "accounts-emails-retry-due": {
        "task": "accounts.tasks.emails_retry_due",
        "schedule": crontab(),  # every minute: queued mail whose next attempt is due
    },
    "affiliates-clicks-flush": {
        "task": "affiliates.tasks.tracking.clicks_flush",
        "schedule": 10.0,  # seconds: Redis-buffered clicks into the Click table
    },
    "affiliates-commissions-approve-due": {
        "task": "affiliates.tasks.commissions.commissions_approve_due",
        "schedule": crontab(minute=5),  # hourly
    },
    "analytics-snapshots-compute": {
        "task": "analytics.tasks.snapshots_compute",
        # hourly: daily MRR snapshots of completed days, and days late movements landed in
        "schedule": crontab(minute=12),
    },
    "marketplace-usage-periods-close": {
        "task": "marketplace.tasks.usage_periods_close_due",
        "schedule": crontab(minute=7),  # hourly: periods past their end plus the grace
    },
    "marketplace-usage-partitions-ensure": {
        "task": "marketplace.tasks.usage_partitions_ensure",
        "schedule": crontab(minute=40, hour=3),  # daily: months of usage events partitioned ahead
    },
    "marketplace-orders-auto-accept": {
        "task": "marketplace.tasks.orders_auto_accept_due",
        # hourly: delivered orders past the acceptance window are accepted and released, and
        # accepted orders whose release waited on Stripe are released
        "schedule": crontab(minute=20),
    },
    "content-licenses-expire": {
        "task": "content.tasks.licenses_expire_due",
        "schedule": crontab(minute="*/5"),  # verification already answers expired on time
    },
    "content-pending-licenses-release": {
        "task": "content.tasks.pending_licenses_release",
        "schedule": crontab(minute="*/10"),
    },
    "affiliates-payouts-monthly": {
        "task": "affiliates.tasks.commissions.affiliate_payouts_run",
        "schedule": crontab(minute=30, hour=6, day_of_month=1),  # as of the month's last day
    },
    "subscriptions-webhook-events-prune": {
        "task": "subscriptions.tasks.webhook_events_prune",
        "schedule": crontab(minute=10, hour=4),  # daily: past WEBHOOK_EVENT_RETENTION_DAYS
    },
    "affiliates-clicks-prune": {
        "task": "affiliates.tasks.tracking.clicks_prune",
        "schedule": crontab(minute=20, hour=4),  # daily: rolled up per day, then deleted
    },
    "marketplace-usage-events-prune": {
        "task": "marketplace.tasks.usage_events_prune",
        "schedule": crontab(minute=30, hour=4),  # daily: past USAGE_EVENT_RETENTION_DAYS
    },
    "content-creator-payouts-monthly": {
        "task": "content.tasks.creator_payouts_run",
        "schedule": crontab(minute=45, hour=6, day_of_month=1),  # as of the month's last day
    },
}

# --- Affiliates -------------------------------------------------------------------------
# First-party cookie set by /r/<code>: signed click uid + link code, for attribution.
AFFILIATE_REFERRAL_COOKIE = "ras_ref"
# /r/<code> caches an eligible link's landing URL per process this long (0: off); disabling a
# link or affiliate stops its redirect within this delay (attribution re-checks at once).
AFFILIATE_LINK_CACHE_SECONDS = 30

# --- Content ----------------------------------------------------------------------------
# The platform's share (%) of a creator's sales, the default for new creators (each creator's
# fee, and each item's override, is edited in the staff console).
CONTENT_PLATFORM_FEE_PERCENT = Decimal(env.str("CONTENT_PLATFORM_FEE_PERCENT", default="20.00"))
if not 0 <= CONTENT_PLATFORM_FEE_PERCENT <= 100:
    raise ImproperlyConfigured("CONTENT_PLATFORM_FEE_PERCENT must be between 0 and 100.")
# Creators are paid when their balance (minor units, per currency) reaches this.
CONTENT_PAYOUT_MINIMUM = env.int("CONTENT_PAYOUT_MINIMUM", default=1000)
# Creators' earnings become payable this many days after they are booked, so a refund or a
# dispute inside the window is clawed back before the money is paid out.
CONTENT_PAYOUT_HOLD_DAYS = env.int("CONTENT_PAYOUT_HOLD_DAYS", default=14)
if CONTENT_PAYOUT_HOLD_DAYS < 0:
    raise ImproperlyConfigured("CONTENT_PAYOUT_HOLD_DAYS must be 0 or more.")
# A licence payment the buyer has not finished (3-D Secure) this long after the purchase is
# canceled and its licence released (an exclusive item is then free for other buyers).
CONTENT_PENDING_PAYMENT_MINUTES = env.int("CONTENT_PENDING_PAYMENT_MINUTES", default=60)
if CONTENT_PENDING_PAYMENT_MINUTES < 1:
    raise ImproperlyConfigured("CONTENT_PENDING_PAYMENT_MINUTES must be at least 1.")

# Sales tax / VAT on one-time licence sales (PaymentIntents, no invoice): the rate (%) per
# buyer country, "DE:19,FR:20,GB:20" (ISO 3166-1 alpha-2); unset or a country not listed: no
# tax. The buyer's country is their payment method's billing address, else its card's country.
# CONTENT_PRICES_INCLUDE_TAX: catalog prices include the tax (VAT-style), else it is added.
CONTENT_TAX_RATES: dict[str, Decimal] = {}
for _entry in filter(
    None, (p.strip() for p in env.str("CONTENT_TAX_RATES", default="").split(","))
):
    _country, _, _rate = _entry.partition(":")
    try:
        _percent = Decimal(_rate.strip())
    except ArithmeticError:
        _percent = Decimal(-1)
    if len(_country.strip()) != 2 or not _country.strip().isalpha() or not 0 <= _percent <= 100:
        raise ImproperlyConfigured(
            f"CONTENT_TAX_RATES: {_entry!r} is not COUNTRY:PERCENT (e.g. DE:19, 0-100)."
        )
    CONTENT_TAX_RATES[_country.strip().upper()] = _percent
CONTENT_PRICES_INCLUDE_TAX = env.bool("CONTENT_PRICES_INCLUDE_TAX", default=False)

# Services marketplace: a delivered order the buyer neither accepts nor disputes is accepted
# (and its held funds released to the provider) this many days after delivery.
MARKETPLACE_AUTO_ACCEPT_DAYS = env.int("MARKETPLACE_AUTO_ACCEPT_DAYS", default=3)
if MARKETPLACE_AUTO_ACCEPT_DAYS < 1:
    raise ImproperlyConfigured("MARKETPLACE_AUTO_ACCEPT_DAYS must be at least 1.")

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "admin:login"
# Failed staff logins: at most this many per window per (IP, username) before a lockout.
STAFF_LOGIN_MAX_FAILURES = env.int("STAFF_LOGIN_MAX_FAILURES", default=5)
STAFF_LOGIN_WINDOW_SECONDS = env.int("STAFF_LOGIN_WINDOW_SECONDS", default=900)

# --- I18N, static -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if not env.bool("DJANGO_STATIC_MANIFEST", default=not DEBUG)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# EMAIL_URL configures SMTP in one value (smtp+tls://user:password@host:587); without it,
# debug prints mail to the console and production uses DJANGO_EMAIL_BACKEND (default SMTP).
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str(
        "DJANGO_EMAIL_BACKEND",
        default=(
            "django.core.mail.backends.console.EmailBackend"
            if DEBUG
            else "django.core.mail.backends.smtp.EmailBackend"
        ),
    )
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="revenue@localhost")
# Outgoing mail is sent by a task after commit and retried (accounts.mail); a server that
# does not answer must not hold a worker for long.
EMAIL_TIMEOUT = 10

# --- Security ---------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# /health must answer the platform's plain-HTTP probe behind the proxy.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "revenue_site.errors.csrf_failure"

# /metrics carries revenue figures: when METRICS_TOKEN is set, scrapers must send
# `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: …}`).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "revenue_site.schema.AutoSchema",
    # JSON bodies only: form encodings cannot carry the API's nested objects and lists (a
    # form post of a listing dropped its packages; schemathesis), so the schema offers none
    # and a form post is 415.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "revenue_site.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "revenue_site.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "revenue_site.throttling.AnonRateThrottle",
        "revenue_site.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="120/min"),
        "user": env.str("API_THROTTLE_USER", default="600/min"),
        "auth_ip": env.str("API_THROTTLE_AUTH_IP", default="20/min"),
        "auth_email": env.str("API_THROTTLE_AUTH_EMAIL", default="10/min"),
        "signup": env.str("API_THROTTLE_SIGNUP", default="10/hour"),
        # Usage endpoints, per API key (marketplace.auth.ApiKeyRateThrottle).
        "usage": env.str("API_THROTTLE_USAGE", default="6000/min"),
        # Content licences, per client IP: verification (called on every use by the buyer's
        # software) and usage reports (content.api_licensing).
        # Per address and gunicorn worker (counted in process: the hottest read, no round trip).
        "license_verify": env.str("API_THROTTLE_LICENSE_VERIFY", default="1200/min"),
        # Verifications of unknown keys per address, shared by every worker (Redis): guessing.
        "license_verify_failed": env.str("API_THROTTLE_LICENSE_VERIFY_FAILED", default="60/min"),
        "license_usage": env.str("API_THROTTLE_LICENSE_USAGE", default="1200/min"),
    },
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
}
# Content-Security-Policy (django-csp) on every response: scripts, styles, images and fetches
# from our own origin only (Chart.js and Swagger UI are our static files; no page has an inline
# script); inline style attributes are allowed, as Django's admin templates use them. No
# framing (with X-Frame-Options DENY), no plugins, forms post only to us.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF],
        "style-src": [csp.SELF, csp.UNSAFE_INLINE],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Revenue Agent System API",
    "DESCRIPTION": "Subscriptions, affiliates, content, marketplace and analytics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Links from each create to the operations on what it created (revenue_site/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "revenue_site.schema.openapi_links",
    ],
    # Choice sets that share a field name with another app's get a name of their own.
    "ENUM_NAME_OVERRIDES": {
        "ContentKindEnum": "content.models.ContentItem.Kind",
        "ContentStatusEnum": "content.models.ContentItem.Status",
        "CreatorStatusEnum": "content.models.Creator.Status",
        "LicenseKindEnum": "content.models.LicenseType.Kind",
        "LicenseStatusEnum": "content.models.License.Status",
        "PayoutStatusEnum": "ledger.models.Payout.Status",
        "ListingStatusEnum": "marketplace.models.Listing.Status",
        "PackageTierEnum": "marketplace.models.ListingPackage.Tier",
        "OrderStateEnum": "marketplace.models.orders.Order.State",
        "OrderActorEnum": "marketplace.models.orders.OrderEvent.Actor",
    },
}

# --- Stripe (dj-stripe 2.11) ------------------------------------------------------------
# dj-stripe reads the key from its APIKey rows and the webhook secret from its
# WebhookEndpoint rows; `manage.py stripe_bootstrap` creates both from these values.
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_SECRET_KEY = env.str(
    "STRIPE_SECRET_KEY",
    default="" if not DEBUG else "sk_test_" + "localstripe0devonly0key0000",
)
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET_KEY
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY if STRIPE_LIVE_MODE else ""
# dj-stripe points the stripe client at STRIPE_API_HOST whenever the setting exists,
# so define it only when the environment asks for a fake Stripe.
if env.str("STRIPE_API_HOST", default=""):
    STRIPE_API_HOST = env.str("STRIPE_API_HOST")
# Every Stripe call (web requests, tasks, webhooks) waits at most STRIPE_TIMEOUT_SECONDS for an
# answer and is retried STRIPE_MAX_NETWORK_RETRIES times with backoff (stripe-python's: 0.5 s
# doubling, jittered) on a connection error, a timeout, a 409 or a 5xx, with the same
# idempotency key. stripe-python waits 80 s by default: three such waits would outlive
# gunicorn's 120 s worker timeout, so a hanging Stripe would kill the worker instead of answering
# 503. Applied by revenue_site.stripe_setup.stripe_client_configure (RevenueSiteConfig.ready).
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_WEBHOOK_TOLERANCE = 300

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
LOG_JSON = env.bool("DJANGO_LOG_JSON", default=not DEBUG)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "revenue_site.logging.RequestIdFilter"},
        # Licence keys in ?key=, API keys, passwords, card numbers, Stripe keys... never reach
        # a log line (revenue_site/log_redaction.py; gunicorn's logs: gunicorn.conf.py).
        "redact_secrets": {"()": "revenue_site.log_redaction.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id", "redact_secrets"],
            "formatter": "json" if LOG_JSON else "text",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "stripe": {"level": "WARNING"},
        # runserver's request lines (with query strings) through the redacting handler too
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Where `make run` serves; used in printed URLs and the dev webhook endpoint.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:" + os.environ.get("PORT", "8000"))
