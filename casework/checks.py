"""Checks of input values shared by every area's operations: each returns the clean value, or records what is wrong
in a :class:`casework.errors.Problems` (a stable code and a translated message per field) and returns None."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l

from casework import codes as code_lists
from casework.errors import Problems
from casework.i18n import local_today, local_tz, parse_day

MAX_TEXT = 4000
MAX_NAME = 200


def text(value: Any, problems: Problems, name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add(name, "required", _l("This field is required."))
        return None
    if not isinstance(value, str):
        problems.add(name, "not_text", _l("This field must be text."))
        return None
    # Counted as sent, as a form's maxlength counts and as the API's document says (maxLength): spaces padding a
    # text past the limit do not slip through because they are trimmed afterwards.
    if len(value) > limit:
        problems.add(name, "too_long", _l("At most %(n)d characters.", n=limit))
        return None
    return " ".join(value.split()) if limit <= MAX_NAME else value.strip()


def code(value: Any, list_name: str, problems: Problems, name: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            problems.add(name, "required", _l("This field is required."))
        return None
    if not isinstance(value, str) or not code_lists.is_code(list_name, value):
        problems.add(name, "invalid_code", _l("Unknown value."))
        return None
    return value


def codes(values: Any, list_name: str, problems: Problems, name: str) -> list[str]:
    if values in (None, ""):
        return []
    if not isinstance(values, list | tuple):
        problems.add(name, "not_a_list", _l("Choose from the list."))
        return []
    result = []
    for value in values:
        if not isinstance(value, str) or not code_lists.is_code(list_name, value):
            problems.add(name, "invalid_code", _l("Unknown value: %(value)s.", value=str(value)[:40]))
        elif value not in result:
            result.append(value)
    return result


def day(value: Any, problems: Problems, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return parse_day(value)
        except ValueError:
            pass
    problems.add(name, "invalid_date", _l("Write the date as dd/mm/yyyy."))
    return None


def moment(value: Any, problems: Problems, name: str) -> datetime | None:
    if value in (None, ""):
        problems.add(name, "required", _l("This field is required."))
        return None
    moment = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%d/%m/%Y %H:%M")):
            try:
                moment = parse(text)
                break
            except ValueError:
                continue
    if moment is None:
        problems.add(name, "invalid_datetime", _l("Write the date and time as dd/mm/yyyy hh:mm."))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_tz())  # a time without zone is Vietnam's local time
    return moment.astimezone(UTC)


def whole(value: Any, problems: Problems, name: str, *, low: int, high: int, required: bool = False) -> int | None:
    """A whole number between ``low`` and ``high``; text of digits is accepted from forms."""
    if value is None or value == "":
        if required:
            problems.add(name, "required", _l("This field is required."))
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(name, "not_a_whole_number", _l("Write a whole number."))
        return None
    if not low <= value <= high:
        problems.add(name, "out_of_range", _l("Between %(low)d and %(high)d.", low=low, high=high))
        return None
    return value


def choice(value: Any, allowed: tuple[str, ...], problems: Problems, name: str, *, required: bool = True) -> str | None:
    """One of ``allowed`` (fixed values of the code, not a code list)."""
    if value is None or value == "":
        if required:
            problems.add(name, "required", _l("This field is required."))
        return None
    if not isinstance(value, str) or value not in allowed:
        problems.add(name, "invalid_choice", _l("Unknown value."))
        return None
    return value


def past_day(value: Any, problems: Problems, name: str) -> date | None:
    """A required day (dd/mm/yyyy or ISO) that is not after today in Vietnam: when something was done."""
    if value in (None, ""):
        problems.add(name, "required", _l("This field is required."))
        return None
    found = day(value, problems, name)
    if found is not None and found > local_today():
        problems.add(name, "in_future", _l("This date is in the future."))
        return None
    return found
