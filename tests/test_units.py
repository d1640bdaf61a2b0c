"""Vietnam's administrative units: the 34 provinces and 3,321 communes since 1 July 2025, the older three-level
units and where each old ward went, ``casework init`` (idempotent), and merges recorded later."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import unicodedata
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import MetaData as ReflectedMetaData
from sqlalchemy import create_engine, func, select, update

from casework.errors import ValidationFailed
from casework.extensions import db
from casework.locations import operations
from casework.locations.models import Commune, LegacyDistrict, LegacyMapping, LegacyProvince, LegacyWard, Province
from tests.conftest import casework_cli

UNIT_TABLES = ("provinces", "communes", "legacy_provinces", "legacy_districts", "legacy_wards", "legacy_mappings")
REPORT_RE = re.compile(r"^(\w+): (\d+) added, (\d+) updated$", re.MULTILINE)
MERGE_DAY = date(2026, 1, 1)


def merged_state() -> list[tuple]:
    """Every recorded merge, to show that a refused one changed nothing."""
    db.session.expire_all()
    return list(
        db.session.execute(
            select(Commune.code, Commune.merged_into_code, Commune.merged_on)
            .where(Commune.merged_into_code.is_not(None))
            .order_by(Commune.code)
        ).all()
    )


# --- the units since 1 July 2025 ----------------------------------------------------------------------------------


def test_34_provinces_and_3321_communes_by_type(app):
    assert db.session.scalar(select(func.count()).select_from(Province)) == 34
    assert db.session.scalar(select(func.count()).select_from(Commune)) == 3321
    by_type = dict(db.session.execute(select(Commune.type, func.count()).group_by(Commune.type)).all())
    assert by_type == {"xa": 2621, "phuong": 687, "dac_khu": 13}
    provinces_by_type = dict(db.session.execute(select(Province.type, func.count()).group_by(Province.type)).all())
    assert set(provinces_by_type) <= {"tinh", "thanh_pho"}
    assert sum(provinces_by_type.values()) == 34


def test_official_string_codes(app):
    quang_ninh = db.session.get(Province, "22")
    assert quang_ninh is not None and quang_ninh.name == "Tỉnh Quảng Ninh" and quang_ninh.type == "tinh"
    ha_noi = db.session.get(Province, "01")
    assert ha_noi is not None and ha_noi.name == "Thành phố Hà Nội" and ha_noi.type == "thanh_pho"
    ba_che = db.session.get(Commune, "06970")
    assert ba_che is not None
    assert (ba_che.name, ba_che.type, ba_che.province_code) == ("Xã Ba Chẽ", "xa", "22")
    # Leading zeros are part of the code: it is a string, never a number.
    assert db.session.get(Commune, "00004").name == "Phường Ba Đình"
    province_codes = db.session.scalars(select(Province.code)).all()
    commune_codes = db.session.scalars(select(Commune.code)).all()
    assert all(isinstance(c, str) and re.fullmatch(r"\d{2}", c) for c in province_codes)
    assert all(isinstance(c, str) and re.fullmatch(r"\d{5}", c) for c in commune_codes)
    # Every commune belongs to one of the 34 provinces.
    assert set(db.session.scalars(select(Commune.province_code).distinct())) <= set(province_codes)


def test_names_keep_their_diacritics_in_nfc(app):
    names = []
    for model in (Province, Commune, LegacyProvince, LegacyDistrict, LegacyWard):
        names.extend(db.session.scalars(select(model.name)))
    assert len(names) > 3321 + 34
    not_nfc = [n for n in names if n != unicodedata.normalize("NFC", n)]
    assert not_nfc == [], not_nfc[:10]
    assert all(n == n.strip() and n for n in names)
    commune_names = set(db.session.scalars(select(Commune.name)))
    for letter in ("ệ", "ơ", "đ", "ư", "ả", "ũ"):
        assert any(letter in n.lower() for n in commune_names), letter
    # Known names, written here in NFC: the stored text is exactly the official one.
    for name in ("Xã Kỳ Thượng", "Phường Ba Đình", "Xã Ba Chẽ"):
        assert name in commune_names
        assert unicodedata.normalize("NFD", name) not in commune_names


def test_every_commune_has_coordinates_in_vietnam(app):
    rows = db.session.execute(select(Commune.code, Commune.latitude, Commune.longitude)).all()
    outside = [
        r
        for r in rows
        if r.latitude is None or r.longitude is None or not (8 <= r.latitude <= 24 and 102 <= r.longitude <= 118)
    ]
    assert outside == []
    provinces = db.session.execute(select(Province.code, Province.latitude, Province.longitude)).all()
    assert all(p.latitude is not None and 8 <= p.latitude <= 24 and 102 <= p.longitude <= 118 for p in provinces)


# --- the older units ------------------------------------------------------------------------------------------------


def test_legacy_units_are_loaded(app):
    assert db.session.scalar(select(func.count()).select_from(LegacyProvince)) == 63
    assert db.session.scalar(select(func.count()).select_from(LegacyDistrict)) >= 600
    assert db.session.scalar(select(func.count()).select_from(LegacyWard)) >= 10_000
    assert db.session.get(LegacyProvince, "01").name == "Thành phố Hà Nội"


def test_every_legacy_ward_maps_to_a_new_commune_with_exactly_one_default(app):
    unmapped = db.session.scalars(
        select(LegacyWard.code).where(
            ~select(LegacyMapping.old_ward_code).where(LegacyMapping.old_ward_code == LegacyWard.code).exists()
        )
    ).all()
    assert unmapped == []
    defaults = dict(
        db.session.execute(
            select(LegacyMapping.old_ward_code, func.count())
            .where(LegacyMapping.is_default.is_(True))
            .group_by(LegacyMapping.old_ward_code)
        ).all()
    )
    ward_codes = set(db.session.scalars(select(LegacyWard.code)))
    assert set(defaults) == ward_codes
    assert set(defaults.values()) == {1}


def test_a_split_ward_lists_its_default_commune_first(app):
    split = db.session.scalars(
        select(LegacyMapping.old_ward_code)
        .group_by(LegacyMapping.old_ward_code)
        .having(func.count() > 1)
        .order_by(LegacyMapping.old_ward_code)
    ).all()
    assert len(split) > 100
    assert "00019" in split  # Phường Điện Biên (Ba Đình), split between four wards
    for code in [*split[:20], "00019"]:
        rows = operations.new_communes_for_legacy_ward(code)
        assert len(rows) > 1
        assert rows[0].is_default is True
        assert [r.is_default for r in rows[1:]] == [False] * (len(rows) - 1)
        assert all(r.is_partial for r in rows)
        assert all(db.session.get(Commune, r.new_commune_code) is not None for r in rows)
    assert [r.new_commune_code for r in operations.new_communes_for_legacy_ward("00019")] == [
        "00004",
        "00070",
        "00190",
        "00226",
    ]


def test_a_whole_ward_maps_to_one_commune(app):
    rows = operations.new_communes_for_legacy_ward("00001")
    assert [(r.new_commune_code, r.is_partial, r.is_default) for r in rows] == [("00097", False, True)]
    assert operations.new_communes_for_legacy_ward("99999") == []


# --- loading is idempotent and corrects what differs ------------------------------------------------------------


def test_loading_again_changes_nothing(app):
    result = operations.load_units()
    assert result == {table: {"added": 0, "updated": 0} for table in UNIT_TABLES}
    db.session.rollback()


def test_loading_again_puts_back_a_name_changed_by_hand(app):
    try:
        db.session.execute(update(Commune).where(Commune.code == "06970").values(name="Xã Sai Tên"))
        db.session.commit()
        result = operations.load_units()
        db.session.commit()
        assert result["communes"] == {"added": 0, "updated": 1}
        assert all(result[t] == {"added": 0, "updated": 0} for t in UNIT_TABLES if t != "communes")
        db.session.expire_all()
        assert db.session.get(Commune, "06970").name == "Xã Ba Chẽ"

        # The same name in decomposed form (NFD) looks the same but is not: it is corrected too.
        db.session.execute(
            update(Province).where(Province.code == "22").values(name=unicodedata.normalize("NFD", "Tỉnh Quảng Ninh"))
        )
        db.session.commit()
        result = operations.load_units()
        db.session.commit()
        assert result["provinces"] == {"added": 0, "updated": 1}
        db.session.expire_all()
        assert db.session.get(Province, "22").name == "Tỉnh Quảng Ninh"
    finally:
        # The reference tables are kept between tests: never leave a wrong name behind.
        db.session.rollback()
        db.session.execute(update(Commune).where(Commune.code == "06970").values(name="Xã Ba Chẽ"))
        db.session.execute(update(Province).where(Province.code == "22").values(name="Tỉnh Quảng Ninh"))
        db.session.commit()


def test_a_reload_that_renames_a_commune_shows_the_new_name_at_once(app, tmp_path):
    """Pages name communes from the application's memory (for minutes); reloading the units forgets it."""
    shutil.copytree(operations.DATA_DIR, tmp_path / "data")
    communes = tmp_path / "data" / "communes.csv"
    communes.write_text(communes.read_text(encoding="utf-8").replace("Xã Ba Chẽ", "Xã Ba Chẽ Mới"), encoding="utf-8")
    try:
        assert operations.commune_name("06970") == "Xã Ba Chẽ"
        assert operations.load_units(tmp_path / "data")["communes"] == {"added": 0, "updated": 1}
        db.session.commit()
        assert operations.commune_name("06970") == "Xã Ba Chẽ Mới"
    finally:
        operations.load_units()
        db.session.commit()
    assert operations.commune_name("06970") == "Xã Ba Chẽ"
    assert operations.commune_name("99999") is None


# --- merges recorded later --------------------------------------------------------------------------------------


def test_a_merge_is_recorded_and_dates_the_end_of_the_commune(app):
    ky_thuong = db.session.get(Commune, "06979")
    assert ky_thuong.is_active(date(2030, 1, 1)) and ky_thuong.is_active()
    returned = operations.mark_commune_merged("06979", "06970", MERGE_DAY)
    db.session.commit()
    assert returned.code == "06979"
    db.session.expire_all()
    ky_thuong = db.session.get(Commune, "06979")
    assert (ky_thuong.merged_into_code, ky_thuong.merged_on) == ("06970", MERGE_DAY)
    assert ky_thuong.is_active(date(2025, 12, 31))
    assert not ky_thuong.is_active(MERGE_DAY)
    assert not ky_thuong.is_active(date(2026, 6, 1))
    assert db.session.get(Commune, "06970").is_active(date(2026, 6, 1))


@pytest.mark.parametrize(
    ("commune", "into", "field"),
    [
        ("06970", "06970", "into"),  # into itself
        ("06970", "99999", "into"),  # unknown target
        ("99999", "06970", "commune"),  # unknown commune
        ("06970", "06979", "into"),  # into a commune that has itself been merged
        ("06979", "06652", "commune"),  # a commune already merged, merged again
        ("06970", "06652", "commune"),  # a commune that others were merged into
        ("06652", "00004", "into"),  # across provinces (Quảng Ninh into Hà Nội)
    ],
)
def test_a_bad_merge_is_refused_and_changes_nothing(app, commune, into, field):
    operations.mark_commune_merged("06979", "06970", MERGE_DAY)
    db.session.commit()
    before = merged_state()
    with pytest.raises(ValidationFailed) as refused:
        operations.mark_commune_merged(commune, into, MERGE_DAY)
    assert field in refused.value.errors
    db.session.rollback()
    assert merged_state() == before


def test_loading_again_keeps_a_merge(app):
    operations.mark_commune_merged("06979", "06970", MERGE_DAY)
    db.session.commit()
    result = operations.load_units()
    db.session.commit()
    assert result == {table: {"added": 0, "updated": 0} for table in UNIT_TABLES}
    assert merged_state() == [("06979", "06970", MERGE_DAY)]


def test_the_cli_records_a_merge(app, app_env):
    db.session.rollback()
    result = casework_cli(app_env, "units", "merge", "--commune", "06979", "--into", "06970", "--from", "01/01/2026")
    assert result.returncode == 0, result.stderr
    assert "06979 merged into 06970 from 01/01/2026" in result.stdout
    assert merged_state() == [("06979", "06970", MERGE_DAY)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--commune", "99999", "--into", "06970", "--from", "01/01/2026"), "99999"),
        (("--commune", "06979", "--into", "12345", "--from", "2026-01-01"), "12345"),
        (("--commune", "06970", "--into", "06970", "--from", "01/01/2026"), "Error"),
        (("--commune", "06979", "--into", "06970", "--from", "31/02/2026"), "--from"),
    ],
)
def test_the_cli_refuses_a_bad_merge_with_a_clear_message(app, app_env, args, expected):
    db.session.rollback()
    result = casework_cli(app_env, "units", "merge", *args)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert merged_state() == []


# --- casework init ----------------------------------------------------------------------------------------------


def fingerprint(url: str) -> dict[str, str]:
    """A hash of every row of every table, read in primary-key order."""
    engine = create_engine(url)
    try:
        metadata = ReflectedMetaData()
        metadata.reflect(bind=engine)
        result = {}
        with engine.connect() as conn:
            for name, table in sorted(metadata.tables.items()):
                order = list(table.primary_key.columns) or list(table.columns)
                digest = hashlib.sha256()
                for row in conn.execute(table.select().order_by(*order)):
                    digest.update(repr(tuple(row)).encode())
                result[name] = digest.hexdigest()
        return result
    finally:
        engine.dispose()


def init_env(backend: str, instance: Path, request) -> tuple[dict[str, str], str]:
    """The CASEWORK_* environment of a brand-new installation, and its database URL."""
    env = {
        "CASEWORK_CONFIG": "testing",
        "CASEWORK_INSTANCE": str(instance),
        "CASEWORK_LOG_LEVEL": "WARNING",
    }
    if backend == "postgresql":
        pg = request.getfixturevalue("pg_server")
        url = pg.create_database(f"casework_init_{uuid.uuid4().hex[:10]}")
        env["CASEWORK_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{instance / 'casework.sqlite3'}"
    return env, url


def test_init_twice_changes_nothing_the_second_time(backend, tmp_path, request):
    instance = tmp_path / "instance"
    env, url = init_env(backend, instance, request)

    first = casework_cli(env, "init")
    assert first.returncode == 0, first.stderr
    assert "created master key" in first.stdout
    first_counts = {m[0]: (int(m[1]), int(m[2])) for m in REPORT_RE.findall(first.stdout)}
    assert first_counts["provinces"] == (34, 0)
    assert first_counts["communes"] == (3321, 0)
    assert first_counts["legacy_provinces"] == (63, 0)
    key = instance / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(instance.stat().st_mode) & 0o077 == 0
    if backend == "sqlite":
        assert stat.S_IMODE((instance / "casework.sqlite3").stat().st_mode) == 0o600
    key_bytes = key.read_bytes()
    before = fingerprint(url)
    assert set(UNIT_TABLES) <= set(before)

    second = casework_cli(env, "init")
    assert second.returncode == 0, second.stderr
    counts = {m[0]: (int(m[1]), int(m[2])) for m in REPORT_RE.findall(second.stdout)}
    assert counts == dict.fromkeys(UNIT_TABLES, (0, 0)), second.stdout
    for table in UNIT_TABLES:
        assert f"{table}: 0 added, 0 updated" in second.stdout
    assert "created" not in second.stdout
    assert key.read_bytes() == key_bytes
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert fingerprint(url) == before


def test_init_refuses_a_key_file_others_can_read(tmp_path):
    instance = tmp_path / "instance"
    env = {"CASEWORK_CONFIG": "testing", "CASEWORK_INSTANCE": str(instance), "CASEWORK_LOG_LEVEL": "WARNING"}
    first = casework_cli(env, "init")
    assert first.returncode == 0, first.stderr
    key = instance / "master.key"
    key_bytes = key.read_bytes()
    os.chmod(key, 0o644)

    refused = casework_cli(env, "init")
    assert refused.returncode != 0
    assert "chmod 600" in refused.stderr
    assert str(key) in refused.stderr
    assert "Traceback" not in refused.stderr
    # Refused, not repaired behind the owner's back, and the key is kept.
    assert stat.S_IMODE(key.stat().st_mode) == 0o644
    assert key.read_bytes() == key_bytes
