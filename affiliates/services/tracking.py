"""Click tracking behind ``GET /r/<code>``: the landing URL, the referral cookie, the click row.

Landing URL (never an open redirect). The URL is *built*, not copied: the scheme is https
unless the program's landing_url is plain http, the host is taken from the program's
allow-list (the landing_url's own host, or the host of an absolute landing_path, must be in
it), and the path/query are normalised so that nothing in them can name another authority:
the path must start with exactly one "/" and, after percent-decoding until stable, must hold
no backslash, no "//", no control character; it is then re-quoted. A link whose landing_path
fails those checks lands on the program's landing_url instead. Marketing parameters (utm_*,
sub_id) are appended with ``urlencode``. The incoming request's query string is ignored.

Clicks. With Redis (settings.REDIS_URL) the redirect only RPUSHes the click as JSON onto
``CLICK_BUFFER_KEY``; the beat task ``affiliates.tasks.tracking.clicks_flush`` calls
``click_buffer_flush``, which moves a batch atomically (Lua: LRANGE + LTRIM + RPUSH) onto
``CLICK_PROCESSING_KEY``, bulk-inserts it (``ignore_conflicts`` on the unique click_uid) and
only then deletes the processing list. A crash between the move and the insert leaves the batch
on the processing list; the next flush inserts it first (idempotent on click_uid), so no click
is lost and none is counted twice. One flush runs at a time (a Redis lock). If Redis refuses the
push, the click is written synchronously. Without Redis the click is written synchronously.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing

from affiliates.models import Affiliate, Click, Program, ReferralLink

logger = logging.getLogger(__name__)

CLICK_BUFFER_KEY = "affiliates:clicks:buffer"
CLICK_PROCESSING_KEY = "affiliates:clicks:processing"
CLICK_FLUSH_LOCK_KEY = "affiliates:clicks:flush-lock"
COOKIE_SALT = "affiliates.referral-cookie"

_USER_AGENT_MAX = Click._meta.get_field("user_agent").max_length or 400
_REFERRER_MAX = Click._meta.get_field("referrer").max_length or 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters kept as-is when re-quoting a path (RFC 3986 pchar without "%": every "%" is
# re-encoded from the decoded text, so no encoded form survives to be decoded downstream).
_PATH_SAFE = "/-._~!$&'()*+,;=:@"

# Move up to ARGV[1] items from the buffer onto the processing list, atomically.
_MOVE_BATCH_LUA = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""


# --- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedirectTarget:
    link: ReferralLink
    location: str
    cookie_max_age: int


# code -> (monotonic expiry, target). Per process; only eligible links are cached (an unknown or
# disabled code always asks the database, so enabling a link takes effect at once). Disabling
# one takes up to AFFILIATE_LINK_CACHE_SECONDS to stop the redirect; attribution re-checks
# eligibility without this cache, so no referral comes from a disabled link.
_redirect_cache: dict[str, tuple[float, RedirectTarget]] = {}
_REDIRECT_CACHE_MAX = 10_000


def link_for_redirect(*, code: str) -> ReferralLink | None:
    """The active link `code` of an approved affiliate in an active program, else None."""
    return (
        ReferralLink.objects.select_related("affiliate__program")
        .filter(
            code=code,
            is_active=True,
            affiliate__status=Affiliate.Status.APPROVED,
            affiliate__program__is_active=True,
        )
        .first()
    )


def redirect_target(*, code: str) -> RedirectTarget | None:
    """Where `/r/<code>` goes (link, landing URL, cookie lifetime), or None for a 404.

    Cached per process for settings.AFFILIATE_LINK_CACHE_SECONDS (0 disables): the redirect
    is the hot path and a database round trip costs more than the rest of it.
    """
    ttl = int(getattr(settings, "AFFILIATE_LINK_CACHE_SECONDS", 0) or 0)
    now = time.monotonic()
    if ttl > 0:
        cached = _redirect_cache.get(code)
        if cached is not None and cached[0] > now:
            return cached[1]
    link = link_for_redirect(code=code)
    if link is None:
        _redirect_cache.pop(code, None)
        return None
    location = landing_url_build(link=link)
    if location is None:
        _redirect_cache.pop(code, None)
        return None
    target = RedirectTarget(link, location, referral_cookie_max_age(link=link))
    if ttl > 0:
        if len(_redirect_cache) >= _REDIRECT_CACHE_MAX:
            _redirect_cache.clear()
        _redirect_cache[code] = (now + ttl, target)
    return target


def redirect_cache_clear() -> None:
    _redirect_cache.clear()


# --- landing URL ---------------------------------------------------------------------------


def host_normalise(host: str) -> str | None:
    """A bare hostname in lowercase ASCII (IDNA for unicode), or None if it is not one."""
    host = host.strip().rstrip(".").lower()
    if not host or _CONTROL.search(host):
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not re.fullmatch(
        r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*", ascii_host
    ):
        return None
    return ascii_host


def allowed_hosts_of(program: Program) -> set[str]:
    hosts = program.allowed_hosts if isinstance(program.allowed_hosts, list) else []
    return {h for h in (host_normalise(str(x)) for x in hosts) if h}


def _fully_unquoted(text: str) -> str:
    for _ in range(8):
        decoded = unquote(text, errors="strict") if "%" in text else text
        if decoded == text:
            return decoded
        text = decoded
    raise ValueError("too deeply encoded")


def path_normalise(path: str) -> str | None:
    """A safe absolute path (re-quoted), or None when `path` could name another authority."""
    try:
        decoded = _fully_unquoted(path)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        not decoded.startswith("/")
        or decoded.startswith("//")
        or "\\" in decoded
        or "//" in decoded
        or _CONTROL.search(decoded)
    ):
        return None
    return quote(decoded, safe=_PATH_SAFE)


def _query_params(query: str) -> list[tuple[str, str]]:
    return [
        (k, v)
        for k, v in parse_qsl(query, keep_blank_values=True)
        if not _CONTROL.search(k) and not _CONTROL.search(v)
    ]


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    path: str
    query: list[tuple[str, str]]


def _target_from_url(url: str, allowed: set[str]) -> _Target | None:
    """Scheme/host/port/path/query of an absolute http(s) URL whose host is allow-listed."""
    if _CONTROL.search(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    host = host_normalise(parts.hostname or "")
    if host is None or host not in allowed:
        return None
    path = path_normalise(parts.path or "/")
    if path is None:
        return None
    return _Target(parts.scheme, host, port, path, _query_params(parts.query))


def landing_url_build(*, link: ReferralLink) -> str | None:
    """Where `/r/<link.code>` sends the visitor, or None when the program has no safe landing.

    The host always comes from the program's allow-list (see the module docstring); the
    link's landing_path is either a path on the landing_url's host or an absolute URL on
    another allow-listed host; anything else falls back to the landing_url.
    """
    program = link.affiliate.program
    allowed = allowed_hosts_of(program)
    base = _target_from_url(program.landing_url, allowed)
    if base is None:
        return None
    target = base
    landing_path = (link.landing_path or "").strip()
    if landing_path:
        candidate: _Target | None
        if re.match(r"^https?://", landing_path, flags=re.IGNORECASE):
            candidate = _target_from_url(landing_path, allowed)
        else:
            raw_path, _, raw_query = landing_path.partition("?")
            path = path_normalise(raw_path)
            candidate = (
                None
                if path is None
                else _Target(base.scheme, base.host, base.port, path, _query_params(raw_query))
            )
        target = candidate or base
    scheme = "http" if base.scheme == "http" else "https"
    netloc = target.host if target.port is None else f"{target.host}:{target.port}"
    params = list(target.query)
    params.append(("utm_source", "affiliate"))
    params.append(("utm_medium", "referral"))
    if link.campaign:
        params.append(("utm_campaign", link.campaign))
    if link.sub_id:
        params.append(("sub_id", link.sub_id))
    params.append(("ref", link.code))
    return urlunsplit((scheme, netloc, target.path, urlencode(params), ""))


# --- referral cookie -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralCookie:
    click_uid: str
    code: str
    clicked_at: datetime


def referral_cookie_value(*, click_uid: str, code: str, at: datetime) -> str:
    """The signed cookie value: click uid, link code and click time (epoch seconds)."""
    signer = signing.Signer(salt=COOKIE_SALT)
    return signer.sign(f"{click_uid}.{code}.{int(at.timestamp())}")


def referral_cookie_parse(value: str | None) -> ReferralCookie | None:
    """The cookie's content if its signature is valid, else None (tampered, truncated, old)."""
    if not value:
        return None
    try:
        raw = signing.Signer(salt=COOKIE_SALT).unsign(value)
        click_uid, code, ts = raw.split(".")
        return ReferralCookie(click_uid, code, datetime.fromtimestamp(int(ts), tz=UTC))
    except (signing.BadSignature, ValueError, OverflowError, OSError):
        return None


def referral_cookie_max_age(*, link: ReferralLink) -> int:
    return int(timedelta(days=link.affiliate.program.attribution_window_days).total_seconds())


# --- clicks --------------------------------------------------------------------------------


def ip_hash(ip: str) -> str:
    """HMAC-SHA256 of the client IP keyed with SECRET_KEY: counts repeats, never stores the IP."""
    return hmac.new(settings.SECRET_KEY.encode(), ip.encode(), hashlib.sha256).hexdigest()


def _redis() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _click_row(item: dict[str, Any]) -> Click:
    return Click(
        link_id=int(item["link_id"]),
        clicked_at=datetime.fromisoformat(item["clicked_at"]),
        ip_hash=item["ip_hash"],
        user_agent=item.get("user_agent", "")[:_USER_AGENT_MAX],
        referrer=item.get("referrer", "")[:_REFERRER_MAX],
        click_uid=item["click_uid"],
    )


def click_record(
    *, link: ReferralLink, ip: str, user_agent: str, referrer: str, at: datetime
) -> str:
    """Record a click on `link` and return its click_uid.

    Buffered in Redis when settings.REDIS_URL is set (flushed by `click_buffer_flush`), written
    at once otherwise or when Redis refuses the push.
    """
    click_uid = uuid.uuid4().hex
    item: dict[str, Any] = {
        "click_uid": click_uid,
        "link_id": link.pk,
        "clicked_at": at.isoformat(),
        "ip_hash": ip_hash(ip),
        "user_agent": user_agent[:_USER_AGENT_MAX],
        "referrer": referrer[:_REFERRER_MAX],
    }
    if settings.REDIS_URL:
        try:
            _redis().rpush(CLICK_BUFFER_KEY, json.dumps(item))
            return click_uid
        except Exception:  # Redis down: the click still counts, written synchronously
            logger.warning("click buffer push failed; writing synchronously", exc_info=True)
    Click.objects.bulk_create([_click_row(item)], ignore_conflicts=True)
    return click_uid


def _insert_batch(raw_items: list[bytes]) -> int:
    rows = []
    for raw in raw_items:
        try:
            rows.append(_click_row(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            logger.error("dropping malformed buffered click: %r", raw[:200])
    Click.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def click_buffer_flush(*, batch_size: int = 1000, max_batches: int = 100) -> int:
    """Move buffered clicks from Redis into the Click table; return how many were handled.

    A batch left on the processing list by a crashed flush is inserted first. Re-inserting a
    click is a no-op (unique click_uid, ignore_conflicts). Returns 0 without Redis.
    """
    if not settings.REDIS_URL:
        return 0
    redis = _redis()
    lock = redis.lock(CLICK_FLUSH_LOCK_KEY, timeout=300, blocking_timeout=0)
    if not lock.acquire(blocking=False):
        return 0
    try:
        handled = 0
        leftover = redis.lrange(CLICK_PROCESSING_KEY, 0, -1)
        if leftover:
            handled += _insert_batch(leftover)
            redis.delete(CLICK_PROCESSING_KEY)
        move = redis.register_script(_MOVE_BATCH_LUA)
        for _ in range(max_batches):
            items = move(keys=[CLICK_BUFFER_KEY, CLICK_PROCESSING_KEY], args=[batch_size])
            if not items:
                break
            handled += _insert_batch(items)
            redis.delete(CLICK_PROCESSING_KEY)
        return handled
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile: nothing to release
            logger.warning("click flush lock expired before release")
