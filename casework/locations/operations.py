"""Loading and maintaining administrative units."""

from __future__ import annotations

import csv
import time
import unicodedata
from collections.abc import Callable
from datetime import date
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select

from casework.errors import ValidationFailed
from casework.extensions import db
from casework.locations.models import (
    Commune,
    LegacyDistrict,
    LegacyMapping,
    LegacyProvince,
    LegacyWard,
    Province,
)

DATA_DIR = Path(__file__).parent / "data"

Progress = Callable[[int, str], None]

# How long a process remembers a commune's name. Names change only when the units are reloaded (`casework init`, or
# the administrator's reload job), which forgets them at once in its own process; others show the old name this long.
NAME_MEMORY_SECONDS = 300.0


def commune_name(code: str) -> str | None:
    """The name of the commune ``code`` (None if there is none), remembered by the application for
    :data:`NAME_MEMORY_SECONDS`: nearly every page names a commune, and reading it cost a query each time."""
    names = current_app.extensions.setdefault("casework.commune_names", {})
    now = time.monotonic()
    remembered = names.get(code)
    if remembered is not None and remembered[0] > now:
        return remembered[1]
    name = db.session.scalar(select(Commune.name).where(Commune.code == code))
    names[code] = (now + NAME_MEMORY_SECONDS, name)
    return name


def forget_commune_names() -> None:
    current_app.extensions.pop("casework.commune_names", None)


def _rows(name: str, data_dir: Path) -> list[dict[str, str]]:
    with (data_dir / name).open(encoding="utf-8", newline="") as fh:
        return [{k: unicodedata.normalize("NFC", v.strip()) for k, v in row.items()} for row in csv.DictReader(fh)]


def _float(value: str) -> float | None:
    return float(value) if value else None


def _flag(value: str | None) -> bool:
    return (value or "0").strip() in {"1", "true", "True"}


def _sync(model, key: str, rows: list[dict], build: Callable[[dict], dict]) -> dict[str, int]:
    """Insert what is missing and correct what differs; never delete (records refer to old codes)."""
    existing = {getattr(obj, key): obj for obj in db.session.scalars(select(model))}
    added: list[dict] = []
    updated = 0
    for row in rows:
        values = build(row)
        current = existing.get(values[key])
        if current is None:
            added.append(values)
            continue
        changed = False
        for column, value in values.items():
            if getattr(current, column) != value:
                setattr(current, column, value)
                changed = True
        updated += changed
    if added:
        db.session.execute(insert(model), added)
    db.session.flush()
    return {"added": len(added), "updated": updated}


def load_units(data_dir: Path | None = None, progress: Progress | None = None) -> dict[str, dict[str, int]]:
    """Load the units shipped in ``casework/locations/data`` (idempotent: a second run changes nothing).

    Merges recorded with :func:`mark_commune_merged` are kept.
    """
    data_dir = data_dir or DATA_DIR
    report = progress or (lambda percent, message: None)
    forget_commune_names()
    result: dict[str, dict[str, int]] = {}
    steps = [
        (
            "provinces",
            Province,
            "code",
            "provinces.csv",
            lambda r: {
                "code": r["code"],
                "name": r["name"],
                "type": r["type"],
                "latitude": _float(r.get("latitude", "")),
                "longitude": _float(r.get("longitude", "")),
            },
        ),
        (
            "communes",
            Commune,
            "code",
            "communes.csv",
            lambda r: {
                "code": r["code"],
                "name": r["name"],
                "type": r["type"],
                "province_code": r["province_code"],
                "latitude": _float(r.get("latitude", "")),
                "longitude": _float(r.get("longitude", "")),
            },
        ),
        (
            "legacy_provinces",
            LegacyProvince,
            "code",
            "legacy_provinces.csv",
            lambda r: {
                "code": r["code"],
                "name": r["name"],
            },
        ),
        (
            "legacy_districts",
            LegacyDistrict,
            "code",
            "legacy_districts.csv",
            lambda r: {
                "code": r["code"],
                "name": r["name"],
                "province_code": r["province_code"],
            },
        ),
        (
            "legacy_wards",
            LegacyWard,
            "code",
            "legacy_wards.csv",
            lambda r: {
                "code": r["code"],
                "name": r["name"],
                "district_code": r["district_code"],
                "province_code": r["province_code"],
            },
        ),
    ]
    for index, (label, model, key, filename, build) in enumerate(steps):
        report(int(100 * index / (len(steps) + 1)), label)
        result[label] = _sync(model, key, _rows(filename, data_dir), build)

    report(int(100 * len(steps) / (len(steps) + 1)), "legacy_mappings")
    existing = {(m.old_ward_code, m.new_commune_code): m for m in db.session.scalars(select(LegacyMapping))}
    added = []
    updated = 0
    for row in _rows("legacy_mapping.csv", data_dir):
        pair = (row["old_ward_code"], row["new_commune_code"])
        flags = (_flag(row.get("is_partial")), _flag(row.get("is_default")))
        current = existing.get(pair)
        if current is not None:
            if (current.is_partial, current.is_default) != flags:
                current.is_partial, current.is_default = flags
                updated += 1
            continue
        existing[pair] = None
        added.append(
            {
                "old_ward_code": pair[0],
                "new_commune_code": pair[1],
                "is_partial": _flag(row.get("is_partial")),
                "is_default": _flag(row.get("is_default")),
            }
        )
    if added:
        db.session.execute(insert(LegacyMapping), added)
    db.session.flush()
    result["legacy_mappings"] = {"added": len(added), "updated": updated}
    report(100, "done")
    return result


def mark_commune_merged(commune_code: str, into_code: str, on: date) -> Commune:
    """Record that a commune was merged into another from ``on``; its records keep their code.

    :raises ValidationFailed: unknown codes, a merge into itself or across provinces.
    """
    commune = db.session.get(Commune, commune_code)
    target = db.session.get(Commune, into_code)
    errors: dict[str, list[str]] = {}
    if commune is None:
        errors["commune"] = [_l("Unknown commune code %(code)s.", code=commune_code)]
    if target is None:
        errors["into"] = [_l("Unknown commune code %(code)s.", code=into_code)]
    if commune is not None and target is not None:
        if commune.code == target.code:
            errors["into"] = [_l("A commune cannot be merged into itself.")]
        elif target.merged_into_code is not None:
            errors["into"] = [_l("Commune %(code)s has itself been merged.", code=target.code)]
        elif commune.province_code != target.province_code:
            errors["into"] = [_l("A commune can only be merged into a commune of the same province.")]
        if commune.merged_into_code is not None:
            errors["commune"] = [_l("Commune %(code)s has already been merged.", code=commune.code)]
        elif db.session.scalar(select(Commune.code).where(Commune.merged_into_code == commune.code).limit(1)):
            errors["commune"] = [
                _l("Other communes were merged into %(code)s; it cannot be merged in turn.", code=commune.code)
            ]
    if errors:
        raise ValidationFailed(errors)
    commune.merged_into_code = target.code
    commune.merged_on = on
    db.session.flush()
    return commune


def new_communes_for_legacy_ward(old_ward_code: str) -> list[LegacyMapping]:
    """Where an old ward went: one row when whole, several when it was split."""
    return list(
        db.session.scalars(
            select(LegacyMapping)
            .where(LegacyMapping.old_ward_code == old_ward_code)
            .order_by(LegacyMapping.is_default.desc(), LegacyMapping.new_commune_code)
        )
    )
