"""Language, time zone and number formats: Vietnamese first, English second.

Dates are dd/mm/yyyy in both languages; times are shown in Asia/Ho_Chi_Minh; money is whole VND ("1.250.000 ₫").
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from flask import current_app, g, has_app_context, has_request_context, request, session
from flask_babel import Babel, Domain

LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}


class RequestDomain(Domain):
    """Flask-Babel's message domain, finding the translations once per request and language.

    Flask-Babel looks up the request's context, domain, locale and a cache keyed by the locale's name again for every
    string: 12-16 µs each, about 70 strings on a case page. This keeps the translations found beside the locale
    object they were found for (``force_locale`` and ``refresh`` replace that object, so a change of language
    is seen at once).
    """

    def get_translations(self):
        ctx = g.get("_flask_babel") if has_app_context() else None  # where Flask-Babel keeps the request's locale
        if ctx is None:
            return super().get_translations()
        found = getattr(ctx, "casework_translations", None)
        if found is not None and found[0] is getattr(ctx, "babel_locale", None):
            return found[1]
        translations = super().get_translations()  # sets ctx.babel_locale
        ctx.casework_translations = (getattr(ctx, "babel_locale", None), translations)
        return translations


class CaseworkBabel(Babel):
    """Flask-Babel with :class:`RequestDomain`, also behind the templates' ``_()``."""

    @cached_property
    def domain_instance(self) -> RequestDomain:
        return RequestDomain(domain=self.domain)

    def init_app(self, app, *args, **kwargs) -> None:
        super().init_app(app, *args, **kwargs)

        # Flask-Babel's own callables go through get_domain() first; casework has one domain.
        def translations():
            return self.domain_instance.get_translations()

        app.jinja_env.install_gettext_callables(
            gettext=lambda s: translations().ugettext(s),
            ngettext=lambda s, p, n: translations().ungettext(s, p, n),
            newstyle=True,
            pgettext=lambda c, s: translations().upgettext(c, s),
            npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
        )


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
