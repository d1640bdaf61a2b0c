"""Field encryption, blind indexes, key rotation and master-key handling."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from casework.cases.models import Child
from casework.errors import Conflict, ValidationFailed
from casework.extensions import db
from casework.security import fields, rotation
from casework.security.keys import DataKey, MasterKeyError, keyring, write_master_key_file
from casework.security.text import fold
from tests.conftest import build_app, casework_cli

ROOT = Path(__file__).resolve().parent.parent
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_child(**values) -> Child:
    child = Child(sex=values.pop("sex", "female"), commune_code=values.pop("commune_code", "06970"), **values)
    db.session.add(child)
    db.session.commit()
    return child


CHILDREN = Child.__table__


def raw(column: str, child: Child) -> str:
    """The stored (encrypted) value of a column, read without the ORM's decryption."""
    return db.session.execute(select(CHILDREN.c[column]).where(CHILDREN.c.id == child.id)).scalar()


def overwrite(column: str, child: Child, value: str) -> None:
    db.session.execute(update(CHILDREN).where(CHILDREN.c.id == child.id).values({column: value}))
    db.session.commit()


# --- round trips and refusals ---------------------------------------------------------------------------------


@HYPOTHESIS
@given(value=st.text(min_size=1, max_size=300))
def test_any_unicode_text_round_trips(app, value):
    row = uuid.uuid4()
    sealed = fields.encrypt_value(value, table="children", column="full_name_ct", row_id=row)
    assert sealed.startswith(f"v1:{keyring().current_key_id()}:")
    assert fields.decrypt_value(sealed, table="children", column="full_name_ct", row_id=row) == value


def test_the_same_value_encrypts_differently_each_time(app):
    row = uuid.uuid4()
    first = fields.encrypt_value("Nguyễn Thị Hà", table="children", column="full_name_ct", row_id=row)
    second = fields.encrypt_value("Nguyễn Thị Hà", table="children", column="full_name_ct", row_id=row)
    assert first != second  # a fresh nonce each time: equal names are not visible as equal ciphertexts


def test_a_value_is_stored_encrypted_and_read_back_decrypted(app):
    child = make_child(full_name="Nguyễn Thị Hà", date_of_birth=date(2014, 3, 9), national_id="001214003456")
    assert raw("full_name_ct", child).startswith("v1:")
    assert "Nguy" not in raw("full_name_ct", child)
    db.session.expire_all()
    again = db.session.get(Child, child.id)
    assert (again.full_name, again.date_of_birth, again.national_id) == (
        "Nguyễn Thị Hà",
        date(2014, 3, 9),
        "001214003456",
    )


def test_a_ciphertext_moved_to_another_row_is_refused(app):
    victim = make_child(full_name="Lê Văn Tám")
    other = make_child(full_name="Trần Thị Bé")
    overwrite("full_name_ct", other, raw("full_name_ct", victim))
    db.session.expire_all()
    with pytest.raises(fields.DecryptionError) as refused:
        _ = db.session.get(Child, other.id).full_name
    assert str(other.id) in str(refused.value) and "Tám" not in str(refused.value)


def test_a_ciphertext_moved_to_another_column_is_refused(app):
    child = make_child(full_name="Lê Văn Tám", guardian_name="Lê Văn Cha")
    overwrite("guardian_name_ct", child, raw("full_name_ct", child))
    db.session.expire_all()
    with pytest.raises(fields.DecryptionError, match="guardian_name_ct"):
        _ = db.session.get(Child, child.id).guardian_name


@HYPOTHESIS
@given(data=st.data())
def test_one_flipped_bit_anywhere_is_refused(app, data):
    row = uuid.uuid4()
    sealed = fields.encrypt_value("Phạm Thị Lan", table="children", column="full_name_ct", row_id=row)
    prefix, body = sealed.rsplit(":", 1)
    raw_bytes = bytearray(fields._unb64(body))
    bit = data.draw(st.integers(min_value=0, max_value=len(raw_bytes) * 8 - 1))
    raw_bytes[bit // 8] ^= 1 << (bit % 8)
    tampered = f"{prefix}:{fields._b64(bytes(raw_bytes))}"
    with pytest.raises(fields.DecryptionError):
        fields.decrypt_value(tampered, table="children", column="full_name_ct", row_id=row)


@pytest.mark.parametrize("cut", [1, 10, 30])
def test_a_truncated_ciphertext_is_refused(app, cut):
    row = uuid.uuid4()
    sealed = fields.encrypt_value("Phạm Thị Lan", table="children", column="full_name_ct", row_id=row)
    with pytest.raises(fields.DecryptionError):
        fields.decrypt_value(sealed[:-cut], table="children", column="full_name_ct", row_id=row)


@pytest.mark.parametrize("garbage", ["Phạm Thị Lan", "v2:abcdefgh:AAAA", "v1:zz:AAAA", "v1:00000000:!!!!"])
def test_anything_but_a_casework_ciphertext_is_refused(app, garbage):
    with pytest.raises(fields.DecryptionError):
        fields.decrypt_value(garbage, table="children", column="full_name_ct", row_id=uuid.uuid4())


def test_decryption_errors_never_contain_the_value(app):
    child = make_child(full_name="Đỗ Thị Mai")
    with pytest.raises(fields.DecryptionError) as refused:
        fields.decrypt_value(raw("full_name_ct", child), table="children", column="full_name_ct", row_id=uuid.uuid4())
    assert "Mai" not in str(refused.value) and raw("full_name_ct", child) not in str(refused.value)


def test_a_wrong_master_key_stops_start_up_with_a_clear_message(app, app_env, tmp_path):
    wrong = tmp_path / "wrong.key"
    write_master_key_file(wrong)
    with pytest.raises(MasterKeyError, match="does not open data key"):
        build_app({**app_env, "CASEWORK_MASTER_KEY_FILE": str(wrong)})


def test_a_malformed_or_exposed_master_key_file_is_refused(app, app_env, tmp_path):
    short = tmp_path / "short.key"
    short.write_text("c2hvcnQ=\n")
    short.chmod(0o600)
    with pytest.raises(MasterKeyError, match="bytes"):
        build_app(
            {
                **app_env,
                "CASEWORK_CONFIG": "production",
                "CASEWORK_MASTER_KEY_FILE": str(short),
                "CASEWORK_SECRET_KEY": "s" * 40,
            }
        )
    exposed = tmp_path / "exposed.key"
    write_master_key_file(exposed)
    exposed.chmod(0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        build_app(
            {
                **app_env,
                "CASEWORK_CONFIG": "production",
                "CASEWORK_MASTER_KEY_FILE": str(exposed),
                "CASEWORK_SECRET_KEY": "s" * 40,
            }
        )


# --- blind indexes -------------------------------------------------------------------------------------------


def find(field, query) -> set[uuid.UUID]:
    ids = set(db.session.scalars(fields.candidate_ids(field, query)))
    return {i for i in ids if fields.confirm(field, field.__get__(db.session.get(Child, i)), query)}


def keys_with_pairs(pairs: bool) -> None:
    """Make every data key one of now (``pairs``), or one of before the pairs of name words, whose entries would
    have single words only. Data keys are kept between tests: a test that takes the pairs away gives them back."""
    db.session.rollback()
    db.session.execute(update(DataKey).values(pair_terms=pairs))
    db.session.commit()
    keyring().forget()


@pytest.fixture
def pairs_given_back(app):
    yield
    keys_with_pairs(True)


@pytest.fixture(params=["pairs", "single words"])
def name_index(request, pairs_given_back):
    """Name searches both ways: through the pairs of words (keys of now), and word by word (keys of before)."""
    if request.param == "single words":
        keys_with_pairs(False)
    return request.param


@pytest.mark.parametrize("query", ["nguyen thi ha", "Hà Nguyễn Thị", "NGUYEN HA", "ha", "  nguyễn   hà "])
def test_name_search_ignores_diacritics_case_and_word_order(app, name_index, query):
    ha = make_child(full_name="Nguyễn Thị Hà")
    make_child(full_name="Nguyễn Văn Hải")
    make_child(full_name="Trần Thị Hoa")
    assert find(Child.full_name, query) == {ha.id}


def test_name_search_matches_tone_mark_placement_and_d_with_stroke(app, name_index):
    hoa = make_child(full_name="Đặng Thị Hoà")  # old-style tone placement
    assert find(Child.full_name, "dang thi hòa") == {hoa.id}


def test_name_search_needs_every_word(app, name_index):
    make_child(full_name="Nguyễn Thị Hà")
    make_child(full_name="Lan Nguyễn")
    make_child(full_name="Thị Lan")
    assert find(Child.full_name, "nguyen thi lan") == set()
    assert find(Child.full_name, "ha lan") == set()


def test_two_words_of_a_name_are_one_term_together(app, pairs_given_back, monkeypatch):
    monkeypatch.setattr(fields, "COMMON_TERM_ROWS", 2)  # "ha" rare, "nguyen" common: word by word, only "ha"
    monkeypatch.setattr(fields, "_counted", {})  # counts are kept a few minutes, and earlier tests had these words
    ha = make_child(full_name="Nguyễn Thị Hà")
    make_child(full_name="Nguyễn Văn Hải")
    make_child(full_name="Nguyễn Văn Bình")
    other_ha = make_child(full_name="Hà Văn Hải")
    entries = db.session.scalar(
        select(func.count()).where(
            fields.BlindIndexEntry.row_id == ha.id, fields.BlindIndexEntry.column_name == "full_name_ct"
        )
    )
    assert entries == 6  # three words and the three pairs of them
    # A lookup of two words reads their pair alone: the rows having both, before anything is confirmed.
    assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "ha nguyen"))) == {ha.id}
    assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "thị HÀ nguyễn"))) == {ha.id}
    # A key of before has no pairs: the same lookup goes word by word (the rarer word's rows, confirmed), and
    # finds the same.
    keys_with_pairs(False)
    assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "ha nguyen"))) == {ha.id, other_ha.id}
    assert find(Child.full_name, "ha nguyen") == {ha.id}


def test_keys_status_says_when_a_key_has_no_pairs_of_name_words(app, app_env, pairs_given_back):
    status = casework_cli(app_env, "keys", "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"current\s+\d+\s+\d+\s+\d+\s+yes", status.stdout) and "word by word" not in status.stdout
    keys_with_pairs(False)
    status = casework_cli(app_env, "keys", "status")
    assert re.search(r"current\s+\d+\s+\d+\s+\d+\s+no", status.stdout)
    assert "name searches go word by word" in status.stdout and "rotate the key" in status.stdout


def test_a_rotation_brings_the_pairs_once_the_old_key_is_retired(app, pairs_given_back):
    ring = keyring()
    ha = make_child(full_name="Nguyễn Thị Hà")
    keys_with_pairs(False)
    old = ring.current_key_id()
    assert not ring.pairs_everywhere()
    try:
        new = rotation.rotate(ring)
        db.session.commit()
        assert db.session.get(DataKey, new.id).pair_terms and not db.session.get(DataKey, old).pair_terms
        rotation.reencrypt_all(ring)
        assert find(Child.full_name, "nguyen ha") == {ha.id}
        assert not ring.pairs_everywhere()  # the old key is still readable: entries under it may lack the pairs
        rotation.retire(ring, old)
        db.session.commit()
        ring.forget()
        assert ring.pairs_everywhere()
        assert set(db.session.scalars(fields.candidate_ids(Child.full_name, "ha nguyen"))) == {ha.id}
    finally:
        _restore_single_key(ring)


@pytest.mark.parametrize("bound", [1, 2, 100])  # every word common; the family and middle name common; none
def test_common_words_widen_the_candidates_never_the_matches(app, monkeypatch, name_index, bound):
    monkeypatch.setattr(fields, "COMMON_TERM_ROWS", bound)
    an = make_child(full_name="Nguyễn Văn An")
    make_child(full_name="Nguyễn Văn Bình")
    make_child(full_name="Nguyễn Thị An")
    make_child(full_name="Trần Văn Cường")
    candidates = set(db.session.scalars(fields.candidate_ids(Child.full_name, "nguyen van an")))
    assert an.id in candidates
    assert find(Child.full_name, "nguyen van an") == {an.id}
    assert find(Child.full_name, "an van") == {an.id}


def test_id_and_phone_search_are_exact_on_digits(app):
    child = make_child(national_id="001214003456", guardian_phone="0912 345 678")
    assert find(Child.national_id, "001-214-003-456") == {child.id}
    assert find(Child.national_id, "001214003457") == set()
    assert find(Child.guardian_phone, "0912345678") == {child.id}
    assert find(Child.guardian_phone, "0912345") == set()


def test_index_entries_follow_changes_and_deletes(app):
    child = make_child(full_name="Nguyễn Thị Hà")
    child.full_name = "Nguyễn Thị Lan"
    db.session.commit()
    assert find(Child.full_name, "ha") == set()
    assert find(Child.full_name, "lan") == {child.id}
    db.session.delete(child)
    db.session.commit()
    assert db.session.scalar(select(fields.BlindIndexEntry.id).where(fields.BlindIndexEntry.row_id == child.id)) is None


def test_index_terms_are_truncated_and_keyed(app):
    make_child(full_name="Nguyễn Thị Hà")
    bits = app.config["CASEWORK_BLIND_INDEX_BITS"]
    terms = db.session.scalars(select(fields.BlindIndexEntry.term)).all()
    assert terms and all(0 <= t < 2**bits for t in terms)


# --- rotation ------------------------------------------------------------------------------------------------


def all_on_key(kid: str) -> bool:
    for column in ("full_name_ct", "national_id_ct", "guardian_name_ct"):
        values = db.session.scalars(select(CHILDREN.c[column]).where(CHILDREN.c[column].is_not(None))).all()
        if any(not v.startswith(f"v1:{kid}:") for v in values):
            return False
    keys = set(db.session.scalars(select(fields.BlindIndexEntry.key_id)).all())
    return keys <= {kid}


def test_rotation_reencrypts_everything_and_the_old_key_can_then_be_retired(app):
    ring = keyring()
    old = ring.current_key_id()
    children = [make_child(full_name=f"Nguyễn Thị Hà {i}", national_id=f"0012140034{i:02d}") for i in range(25)]
    new = rotation.rotate(ring)
    db.session.commit()
    try:
        with pytest.raises(Conflict):
            rotation.retire(ring, old)  # values still use it
        db.session.rollback()
        # Reading and writing go on during the rotation: old values read, new ones use the new key.
        db.session.expire_all()
        assert db.session.get(Child, children[0].id).full_name == "Nguyễn Thị Hà 0"
        late = make_child(full_name="Trần Văn Mới")
        assert raw("full_name_ct", late).startswith(f"v1:{new.id}:")
        result = rotation.reencrypt_all(ring, batch_size=7)
        assert result["children"] == 25
        assert all_on_key(new.id)
        db.session.expire_all()
        assert [db.session.get(Child, c.id).full_name for c in children] == [f"Nguyễn Thị Hà {i}" for i in range(25)]
        assert find(Child.full_name, "nguyen ha 7") == {children[7].id}
        assert rotation.reencrypt_all(ring)["children"] == 0  # running twice changes nothing
        status = {row["id"]: row for row in rotation.key_status(ring)}
        assert status[old]["values"] == 0 and status[new.id]["values"] > 0
        rotation.retire(ring, old)
        db.session.commit()
        assert db.session.get(DataKey, old).wrapped == ""
    finally:
        _restore_single_key(ring)


def test_the_current_key_cannot_be_retired(app):
    ring = keyring()
    with pytest.raises(Conflict):
        rotation.retire(ring, ring.current_key_id())


ROTATION_SCRIPT = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests.conftest import build_app
from casework.extensions import db
from casework.security import rotation
from casework.security.keys import keyring
app = build_app(dict(os.environ))
with app.app_context():
    def slow(percent, message):
        print("progress", percent, flush=True)
        time.sleep(0.3)
    rotation.reencrypt_all(keyring(), progress=slow, batch_size=5)
    print("finished", flush=True)
"""


def test_a_rotation_killed_midway_resumes_and_ends_with_every_value_on_the_new_key(app, app_env):
    ring = keyring()
    children = [make_child(full_name=f"Phạm Minh Khang {i}", national_id=f"0012140035{i:02d}") for i in range(40)]
    new = rotation.rotate(ring)
    db.session.commit()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")} | app_env
        proc = subprocess.Popen(
            [sys.executable, "-c", ROTATION_SCRIPT.format(root=str(ROOT))], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().startswith("progress")  # at least one batch committed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        db.session.expire_all()
        moved = db.session.scalar(
            select(func.count()).select_from(CHILDREN).where(CHILDREN.c.full_name_ct.startswith(f"v1:{new.id}:"))
        )
        assert 0 < moved < 40, moved  # killed half-way
        rotation.reencrypt_all(ring)
        assert all_on_key(new.id)
        db.session.expire_all()
        assert sorted(db.session.get(Child, c.id).full_name for c in children) == sorted(
            f"Phạm Minh Khang {i}" for i in range(40)
        )
    finally:
        _restore_single_key(ring)


def _restore_single_key(ring):
    """Leave one current key for the next tests (data keys are kept between tests)."""
    db.session.rollback()
    db.session.execute(text("DELETE FROM blind_index_entries"))
    db.session.execute(text("DELETE FROM children"))
    current = ring.current_key_id()
    for key in db.session.scalars(select(DataKey).where(DataKey.id != current)):
        db.session.delete(key)
    db.session.commit()
    ring.forget()


def test_keys_commands_rotate_report_and_refuse_to_retire_a_key_in_use(app, app_env, request):
    if app.config["CASEWORK_REDIS_URL"]:
        request.getfixturevalue("rq_worker")  # the job goes through Redis to a real worker
    make_child(full_name="Vũ Thị Ngọc")
    old = keyring().current_key_id()
    try:
        rotated = casework_cli(app_env, "keys", "rotate", "--wait", timeout=120)
        assert rotated.returncode == 0, rotated.stderr
        status = casework_cli(app_env, "keys", "status")
        assert old in status.stdout and "current" in status.stdout
        retired = casework_cli(app_env, "keys", "retire", old)
        if retired.returncode != 0:  # only if the job has not finished re-encrypting yet
            assert "still protects" in retired.stderr
        keyring().forget()
        db.session.expire_all()
        assert db.session.get(Child, db.session.scalar(select(Child.id))).full_name == "Vũ Thị Ngọc"
    finally:
        _restore_single_key(keyring())


# --- master key backup ---------------------------------------------------------------------------------------


def test_master_key_backup_round_trips_and_refuses_a_wrong_passphrase(app, app_env, tmp_path):
    backup = tmp_path / "master.backup"
    exported = casework_cli(
        app_env,
        "keys",
        "export-backup",
        "--output",
        str(backup),
        "--passphrase-stdin",
        stdin="a long backup passphrase\n",
    )
    assert exported.returncode == 0, exported.stderr
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    restored = tmp_path / "restored.key"
    wrong = casework_cli(
        app_env,
        "keys",
        "import-backup",
        "--input",
        str(backup),
        "--output",
        str(restored),
        "--passphrase-stdin",
        stdin="not the passphrase\n",
    )
    assert wrong.returncode != 0 and "wrong passphrase" in wrong.stderr and not restored.exists()
    right = casework_cli(
        app_env,
        "keys",
        "import-backup",
        "--input",
        str(backup),
        "--output",
        str(restored),
        "--passphrase-stdin",
        stdin="a long backup passphrase\n",
    )
    assert right.returncode == 0, right.stderr
    assert restored.read_text() == Path(app.config["CASEWORK_KEY_FILE"]).read_text()


def test_a_short_backup_passphrase_is_refused(app):
    with pytest.raises(ValidationFailed):
        rotation.export_backup(b"k" * 32, "short")


# --- no plaintext at rest -------------------------------------------------------------------------------------

SECRETS = {
    "full_name": "Hoàng Thị Phương Thảo",
    "other_names": "Bé Xíu Nhỏ",
    "national_id": "079214009876",
    "address": "Số 17 ngõ Quỳnh, thôn Đồng Tâm",
    "guardian_name": "Hoàng Văn Quyết",
    "guardian_phone": "0987654321",
}
#: Written through the API with the case: the report, the reporter, a note.
CASE_SECRETS = {
    "summary": "Cháu bị cha dượng đánh bầm tím ở lưng",
    "reporter_name": "Trịnh Khắc Luỹ",
    "reporter_phone": "0977123456",
    "reporter_address": "Xóm Bãi Gianh, bản Nậm Khiêu",
    "note": "Cháu kể lại chuyện với cô giáo chủ nhiệm",
}


def _needles() -> list[bytes]:
    needles = set()
    for value in [*SECRETS.values(), *CASE_SECRETS.values()]:
        for form in (value, fold(value), value.upper(), fold(value).replace(" ", "")):
            needles.add(form.encode("utf-8"))
        for word in value.split():
            if len(fold(word)) >= 5:
                needles.add(word.encode("utf-8"))
                needles.add(fold(word).encode("utf-8"))
    needles.add(b"2013-11-05")
    return sorted(needles)


def _database_bytes(app, backend, app_env) -> bytes:
    """Everything the database holds, as an attacker with a copy of it would see it."""
    db.session.remove()
    if backend == "sqlite":
        db.engine.dispose()  # checkpoint the WAL into the file
        base = Path(app_env["CASEWORK_DATABASE_URL"].removeprefix("sqlite:///"))
        files = [str(p) for p in sorted(base.parent.glob(base.name + "*"))]
        # Read in another process: closing a descriptor of the database file in this one would drop the POSIX
        # locks that SQLite holds through its other connections here.
        return subprocess.run(["cat", *files], capture_output=True, check=True).stdout
    dsn = app_env["CASEWORK_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(["/usr/lib/postgresql/15/bin/pg_dump", "--no-owner", dsn], capture_output=True, check=True)
    assert b"COPY public.children" in dump.stdout  # the dump is real
    return dump.stdout


def test_no_plaintext_reaches_the_database(app, backend, app_env, make_user, api_token, client):
    # Words of the names also occur in place names (Phường Hoàng Mai...): a leak is any occurrence more than before.
    before = _database_bytes(app, backend, app_env)
    make_child(date_of_birth=date(2013, 11, 5), **SECRETS)
    # And through the app's own door: an intake, a correction and a note over the API.
    token = api_token(make_user("social_worker", username="leaktest"))
    headers = {"Authorization": f"Bearer {token}"}
    child = dict(SECRETS, date_of_birth="2013-11-05", sex="female", commune_code="06970")
    child["full_name"] = SECRETS["full_name"]
    created = client.post(
        "/api/v1/cases",
        headers=headers,
        json={
            "child": child,
            "categories": ["violence_harm"],
            "abuse_types": ["violence"],
            "risk_level": "high",
            "source": "school",
            "received_at": "2025-05-02T09:30:00+07:00",
            "summary": CASE_SECRETS["summary"],
            "reporter": {
                "name": CASE_SECRETS["reporter_name"],
                "phone": CASE_SECRETS["reporter_phone"],
                "address": CASE_SECRETS["reporter_address"],
            },
            "confirm_new_child": True,
        },
    )
    assert created.status_code == 201, created.get_json()
    case_id = created.get_json()["id"]
    noted = client.post(f"/api/v1/cases/{case_id}/notes", headers=headers, json={"body": CASE_SECRETS["note"]})
    assert noted.status_code == 201, noted.get_json()
    after = _database_bytes(app, backend, app_env)
    assert len(after) > 0
    leaked = [n.decode() for n in _needles() if after.count(n) > before.count(n)]
    assert leaked == [], f"plaintext at rest: {leaked}"
    # And the whole values never occur at all.
    values = [*SECRETS.values(), *CASE_SECRETS.values()]
    whole = [v for v in values if v.encode() in after or fold(v).encode() in after]
    assert whole == []
