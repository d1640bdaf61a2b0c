"""The code lists of casework (``casework/codes.toml``, copied from the domain notes): stable ASCII codes for the
database, the API and the tests; Vietnamese and English labels for display."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from flask_babel import get_locale

CODES_FILE = Path(__file__).with_name("codes.toml")


@cache
def _lists() -> dict[str, dict]:
    with CODES_FILE.open("rb") as fh:
        return tomllib.load(fh)


def codes(name: str) -> list[str]:
    """The codes of list ``name`` (e.g. ``special_circumstances``), in file order."""
    return list(_lists()[name])


def is_code(name: str, value: str | None) -> bool:
    return value is not None and value in _lists()[name]


def label(name: str, code: str, locale: str | None = None) -> str:
    """The label of ``code`` in list ``name``, in the current language (Vietnamese by default)."""
    entry = _lists()[name].get(code)
    if entry is None:
        return code
    if isinstance(entry, str):  # ethnicity: the name itself
        return entry
    lang = locale or str(get_locale() or "vi")
    return entry.get(lang[:2]) or entry.get("vi") or code


def choices(name: str, locale: str | None = None) -> list[tuple[str, str]]:
    return [(code, label(name, code, locale)) for code in codes(name)]
