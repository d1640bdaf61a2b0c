"""Generate Vietnam's administrative-unit CSV files from the ``vietnamadminunits`` package.

The package (MIT licence, pinned to version 1.0.4) is only needed to run this script; it is not a
run-time dependency of casework. Run from the repository root::

    python -m venv /tmp/v && /tmp/v/bin/pip install vietnamadminunits==1.0.4 \
        && /tmp/v/bin/python scripts/generate_units.py

The script reads the data files bundled with the package directly (``data/dataset.db``, a SQLite
database, and ``data/converter_2025.json``, the old-to-new conversion table). It never imports the
package, so nothing can reach an online geocoder. It writes, into ``casework/locations/data/``:

* ``provinces.csv``         code,name,type,latitude,longitude (the 34 provinces since 1 July 2025)
* ``communes.csv``          code,name,type,province_code,latitude,longitude (the 3,321 communes)
* ``legacy_provinces.csv``  code,name (the 63 provinces before 1 July 2025)
* ``legacy_districts.csv``  code,name,province_code
* ``legacy_wards.csv``      code,name,district_code,province_code
* ``legacy_mapping.csv``    old_ward_code,new_commune_code,is_partial,is_default

Every check runs before anything is written; if one fails, the script writes nothing, prints the failures
and exits with status 1.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import sqlite3
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "vietnamadminunits"
PACKAGE_VERSION = "1.0.4"
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "casework" / "locations" / "data"

EXPECTED_PROVINCES = 34
EXPECTED_COMMUNE_TYPES = {"xa": 2621, "phuong": 687, "dac_khu": 13}
EXPECTED_LEGACY_PROVINCES = 63
EXPECTED_LEGACY_DISTRICTS = 696
EXPECTED_LEGACY_WARDS = 10035

# Type prefixes of official names, longest first so "Thành phố" wins over shorter words.
PROVINCE_TYPES = (("Thành phố", "thanh_pho"), ("Tỉnh", "tinh"))
COMMUNE_TYPES = (("Đặc khu", "dac_khu"), ("Phường", "phuong"), ("Xã", "xa"))
# Canonical spelling of legacy type prefixes; the package sometimes capitalises the second word ("Thị Trấn").
LEGACY_PREFIXES = ("Thành phố", "Thị trấn", "Thị xã", "Huyện", "Quận", "Phường", "Xã", "Tỉnh")


@dataclass
class Tables:
    """All rows to be written, keyed by output file name, plus diagnostics gathered on the way."""

    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def clean(value: object) -> str:
    """Return ``value`` as an NFC-normalised, whitespace-stripped string ("" for ``None``)."""
    if value is None:
        return ""
    return unicodedata.normalize("NFC", str(value)).strip()


def coordinate(value: float | None) -> str:
    """Format a latitude or longitude as stored in the package, or "" when it is missing."""
    return "" if value is None else repr(float(value))


def split_type(name: str, types: Sequence[tuple[str, str]]) -> str | None:
    """Return the type slug whose prefix starts ``name`` (followed by a space), or ``None``."""
    for prefix, slug in types:
        if name.startswith(prefix + " "):
            return slug
    return None


def canonical_prefix(name: str) -> str:
    """Rewrite a legacy name's type prefix in its official casing ("Thị Trấn X" -> "Thị trấn X")."""
    for prefix in LEGACY_PREFIXES:
        head = name[: len(prefix) + 1]
        if head.lower() == prefix.lower() + " ":
            return prefix + name[len(prefix) :]
    return name


def package_dir() -> Path:
    """Locate the installed package without importing it (importing would load the geocoding code)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{PACKAGE} is not installed; see this script's docstring.")
    version = importlib.metadata.version(PACKAGE)
    if version != PACKAGE_VERSION:
        sys.exit(f"{PACKAGE} {version} is installed, but this script expects {PACKAGE_VERSION}.")
    return Path(next(iter(spec.submodule_search_locations)))


def query(db: sqlite3.Connection, sql: str) -> list[sqlite3.Row]:
    """Run a read-only query and return all rows."""
    return db.execute(sql).fetchall()


def build_new_units(db: sqlite3.Connection, out: Tables) -> dict[tuple[str, str], str]:
    """Fill provinces.csv and communes.csv; return a map (province key, ward key) -> commune code."""
    provinces: dict[str, list[str]] = {}
    for r in query(db, "SELECT DISTINCT provinceCode, province, provinceLat, provinceLon FROM admin_units"):
        code, name = clean(r["provinceCode"]), clean(r["province"])
        kind = split_type(name, PROVINCE_TYPES)
        if kind is None:
            out.errors.append(f"province {code}: unknown type in name {name!r}")
        if code in provinces:
            out.errors.append(f"province {code}: more than one name or position")
        provinces[code] = [code, name, kind or "", coordinate(r["provinceLat"]), coordinate(r["provinceLon"])]

    communes: dict[str, list[str]] = {}
    keys: dict[tuple[str, str], str] = {}
    mismatched: list[str] = []
    sql = "SELECT wardCode, ward, wardType, provinceCode, wardLat, wardLon, provinceKey, wardKey FROM admin_units"
    for r in query(db, sql):
        code, name, province = clean(r["wardCode"]), clean(r["ward"]), clean(r["provinceCode"])
        kind = split_type(name, COMMUNE_TYPES)
        if kind is None:
            out.errors.append(f"commune {code}: unknown type in name {name!r}")
        elif split_type(clean(r["wardType"]) + " ", COMMUNE_TYPES) != kind:
            mismatched.append(f"{code} {name} (wardType {clean(r['wardType'])!r})")
        if code in communes:
            out.errors.append(f"commune {code}: listed more than once")
        communes[code] = [code, name, kind or "", province, coordinate(r["wardLat"]), coordinate(r["wardLon"])]
        keys[(r["provinceKey"], r["wardKey"])] = code
    if mismatched:
        out.notes.append(
            "type taken from the official name, which disagrees with the package's wardType column for: "
            + "; ".join(mismatched)
        )

    out.rows["provinces.csv"] = sorted(provinces.values())
    out.rows["communes.csv"] = sorted(communes.values())
    return keys


def build_legacy_units(db: sqlite3.Connection, out: Tables) -> dict[str, tuple[str, str]]:
    """Fill the three legacy_*.csv files; return a map "province_district_ward" key -> (ward, district) code.

    The ward code is "" for the island districts that have no wards.
    """
    provinces: dict[str, set[str]] = defaultdict(set)
    districts: dict[str, set[tuple[str, str]]] = defaultdict(set)
    wards: dict[str, list[str]] = {}
    keys: dict[str, tuple[str, str]] = {}
    recased: set[str] = set()
    sql = (
        "SELECT provinceCode, province, districtCode, district, wardCode, ward, provinceKey, districtKey, wardKey"
        " FROM admin_units_legacy"
    )
    for r in query(db, sql):
        province, district = clean(r["provinceCode"]), clean(r["districtCode"])
        provinces[province].add(clean(r["province"]))
        district_name = canonical_prefix(clean(r["district"]))
        if district_name != clean(r["district"]):
            recased.add(clean(r["district"]))
        districts[district].add((district_name, province))
        keys[f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey'] or ''}"] = (clean(r["wardCode"]), district)
        if r["wardCode"] is None:
            continue  # island districts without any ward (e.g. Côn Đảo)
        code, name = clean(r["wardCode"]), canonical_prefix(clean(r["ward"]))
        if name != clean(r["ward"]):
            recased.add(clean(r["ward"]))
        if code in wards:
            out.errors.append(f"legacy ward {code}: listed more than once")
        wards[code] = [code, name, district, province]
    if recased:
        out.notes.append("legacy names with a re-cased type prefix: " + ", ".join(sorted(recased)))

    for label, table in (("province", provinces), ("district", districts)):
        for code, values in table.items():
            if len(values) != 1:
                out.errors.append(f"legacy {label} {code}: several names {sorted(values)}")
    out.rows["legacy_provinces.csv"] = sorted([code, min(names)] for code, names in provinces.items())
    out.rows["legacy_districts.csv"] = sorted([code, *min(values)] for code, values in districts.items())
    out.rows["legacy_wards.csv"] = sorted(wards.values())
    return keys


def build_mapping(
    converter: dict, new_keys: dict[tuple[str, str], str], old_keys: dict[str, tuple[str, str]], out: Tables
) -> None:
    """Fill legacy_mapping.csv from the package's conversion table."""
    targets: dict[str, dict[str, bool]] = defaultdict(dict)  # old ward code -> {new code: is default}
    islands: list[str] = []

    def add(old_key: str, province_key: str, ward_key: str, is_default: bool) -> None:
        new_code = new_keys.get((province_key, ward_key))
        if new_code is None:
            out.errors.append(f"mapping: unknown new commune {province_key}/{ward_key}")
            return
        if old_key not in old_keys:
            out.errors.append(f"mapping: unknown old ward {old_key}")
            return
        old_code, district_code = old_keys[old_key]
        if not old_code:
            islands.append(f"district {district_code} -> commune {new_code}")
            return
        if new_code in targets[old_code]:
            out.errors.append(f"mapping: {old_code} -> {new_code} listed twice")
        targets[old_code][new_code] = is_default

    for province_key, wards in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for ward_key, old_list in wards.items():
            for old_key in old_list:
                add(old_key, province_key, ward_key, True)
    for province_key, divided in converter["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old_key, parts in divided.items():
            for part in parts:
                add(old_key, province_key, part["newWardKey"], bool(part["isDefaultNewWard"]))

    rows: list[list[str]] = []
    for old_code, news in targets.items():
        partial = len(news) > 1
        if sum(news.values()) != 1:
            out.errors.append(f"mapping: old ward {old_code} has {sum(news.values())} default communes")
        for new_code, is_default in news.items():
            rows.append([old_code, new_code, str(int(partial)), str(int(is_default))])
    out.rows["legacy_mapping.csv"] = sorted(rows)
    if islands:
        out.notes.append(
            "island districts without wards (left out of legacy_mapping.csv): " + "; ".join(sorted(islands))
        )


def check(out: Tables) -> None:
    """Append to ``out.errors`` every failed count, sample or referential-integrity check."""
    rows = out.rows

    def expect(what: str, actual: object, expected: object) -> None:
        if actual != expected:
            out.errors.append(f"{what}: expected {expected}, found {actual}")

    provinces = {r[0]: r for r in rows["provinces.csv"]}
    communes = {r[0]: r for r in rows["communes.csv"]}
    legacy_provinces = {r[0] for r in rows["legacy_provinces.csv"]}
    legacy_districts = {r[0]: r for r in rows["legacy_districts.csv"]}
    legacy_wards = {r[0]: r for r in rows["legacy_wards.csv"]}

    expect("provinces", len(provinces), EXPECTED_PROVINCES)
    expect("communes", len(communes), sum(EXPECTED_COMMUNE_TYPES.values()))
    expect("communes per type", dict(Counter(r[2] for r in communes.values())), EXPECTED_COMMUNE_TYPES)
    expect("legacy provinces", len(legacy_provinces), EXPECTED_LEGACY_PROVINCES)
    expect("legacy districts", len(legacy_districts), EXPECTED_LEGACY_DISTRICTS)
    expect("legacy wards", len(legacy_wards), EXPECTED_LEGACY_WARDS)
    expect("province 22", provinces.get("22", [])[1:3], ["Tỉnh Quảng Ninh", "tinh"])
    expect("province 01", provinces.get("01", [])[1:3], ["Thành phố Hà Nội", "thanh_pho"])
    expect("commune 06970", communes.get("06970", [])[1:4], ["Xã Ba Chẽ", "xa", "22"])

    widths = {"provinces.csv": 2, "communes.csv": 5, "legacy_provinces.csv": 2, "legacy_districts.csv": 3}
    widths["legacy_wards.csv"] = 5
    for name, width in widths.items():
        bad = [r[0] for r in rows[name] if len(r[0]) != width or not r[0].isdigit()]
        if bad:
            out.errors.append(f"{name}: codes not {width} digits: {bad[:5]}")
    for r in communes.values():
        if r[3] not in provinces:
            out.errors.append(f"commune {r[0]}: unknown province {r[3]}")
    for r in legacy_districts.values():
        if r[2] not in legacy_provinces:
            out.errors.append(f"legacy district {r[0]}: unknown province {r[2]}")
    for r in legacy_wards.values():
        district = legacy_districts.get(r[2])
        if district is None or district[2] != r[3]:
            out.errors.append(f"legacy ward {r[0]}: district {r[2]} not in province {r[3]}")

    mapped_old = set()
    for old_code, new_code, _partial, _default in rows["legacy_mapping.csv"]:
        mapped_old.add(old_code)
        if old_code not in legacy_wards:
            out.errors.append(f"mapping: old ward {old_code} not in legacy_wards.csv")
        if new_code not in communes:
            out.errors.append(f"mapping: new commune {new_code} not in communes.csv")
    unmapped = sorted(set(legacy_wards) - mapped_old)
    if unmapped:
        out.errors.append(f"mapping: {len(unmapped)} legacy wards have no new commune, e.g. {unmapped[:5]}")

    for name, table in rows.items():
        for r in table:
            if any(cell != clean(cell) for cell in r):
                out.errors.append(f"{name}: row {r[0]} is not NFC or has stray whitespace")
                break


HEADERS = {
    "provinces.csv": ["code", "name", "type", "latitude", "longitude"],
    "communes.csv": ["code", "name", "type", "province_code", "latitude", "longitude"],
    "legacy_provinces.csv": ["code", "name"],
    "legacy_districts.csv": ["code", "name", "province_code"],
    "legacy_wards.csv": ["code", "name", "district_code", "province_code"],
    "legacy_mapping.csv": ["old_ward_code", "new_commune_code", "is_partial", "is_default"],
}


def write_csv(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    """Write a UTF-8 CSV file with ``\\n`` line endings."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main() -> int:
    """Build, check and write every file; return the process exit status."""
    data_dir = package_dir() / "data"
    out = Tables()
    with sqlite3.connect(f"{(data_dir / 'dataset.db').as_uri()}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        new_keys = build_new_units(db, out)
        old_keys = build_legacy_units(db, out)
    with (data_dir / "converter_2025.json").open(encoding="utf-8") as fh:
        build_mapping(json.load(fh), new_keys, old_keys, out)
    check(out)

    for note in out.notes:
        print(f"note: {note}")
    if out.errors:
        for error in out.errors:
            print(f"error: {error}", file=sys.stderr)
        print(f"{len(out.errors)} check(s) failed; nothing written.", file=sys.stderr)
        return 1

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, header in HEADERS.items():
        write_csv(OUTPUT_DIR / name, header, out.rows[name])
        print(f"wrote {name}: {len(out.rows[name])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
