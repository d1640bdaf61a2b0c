"""Language, time zone and number formats: Vietnamese first, English second.

Dates are dd/mm/yyyy in both languages; times are shown in Asia/Ho_Chi_Minh; money is whole VND ("1.250.000 ₫").
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app, has_request_context, request, session

LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}


def select_locale() -> str:
    """The language of this request: the user's choice (for the API, which has no session, the Accept-Language
    header), else the default (Vietnamese); outside a request too."""
    lang = None
    if has_request_context():
        if request.path.startswith("/api/"):
            lang = request.accept_languages.best_match(LANGUAGES)
        else:
            lang = session.get("lang")
    if lang in LANGUAGES:
        return lang
    return current_app.config.get("BABEL_DEFAULT_LOCALE", "vi")


def select_timezone() -> str:
    return current_app.config.get("CASEWORK_TIMEZONE", "Asia/Ho_Chi_Minh")


def local_tz() -> ZoneInfo:
    return ZoneInfo(select_timezone())


def local_today() -> date:
    """Today's calendar day where the workers are (the server's own clock is usually UTC)."""
    return datetime.now(local_tz()).date()


def format_date(value: date | datetime | None) -> str:
    """Format a date as dd/mm/yyyy (a datetime is first converted to local time)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(local_tz()) if value.tzinfo else value
        value = value.date()
    return value.strftime("%d/%m/%Y")


def parse_day(text: str) -> date:
    """Read a day written dd/mm/yyyy (as shown everywhere) or yyyy-mm-dd (ISO).

    :raises ValueError: neither.
    """
    text = text.strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a calendar day, no time
        except ValueError:
            continue
    raise ValueError(text)


def format_datetime(value: datetime | None) -> str:
    """Format a timestamp as dd/mm/yyyy HH:MM in local time."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(local_tz())
    return value.strftime("%d/%m/%Y %H:%M")


def format_vnd(amount: int | None) -> str:
    """Format whole VND with dots between thousands: 1250000 → "1.250.000 ₫"."""
    if amount is None:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(int(amount)):,}".replace(",", ".") + " ₫"


def format_number(value: int | None) -> str:
    if value is None:
        return ""
    return f"{int(value):,}".replace(",", ".")


def wants_language_from(args) -> str | None:
    lang = (args.get("lang") or "").strip()
    return lang if lang in LANGUAGES else None


def current_path() -> str:
    return request.full_path.rstrip("?") if request else "/"
