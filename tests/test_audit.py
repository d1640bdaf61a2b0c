"""The audit trail: events commit with their change or not at all, form one keyed chain under concurrent writers,
cannot be changed through the ORM (nor, on PostgreSQL, through SQL), and every kind of tampering is named by
``casework audit verify``. The auditor's pages filter and export the trail, and the export is itself audited."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from casework import audit, i18n
from casework.audit.chain import GENESIS
from casework.audit.models import AppendOnlyError, AuditEvent, ChainHead, Checkpoint
from casework.dbtypes import utcnow
from casework.extensions import db
from tests.conftest import TEST_PASSWORD, casework_cli

# --- helpers --------------------------------------------------------------------------------------------------------


def events(action: str | None = None) -> list[AuditEvent]:
    """The committed events (optionally of one action), by seq, read afresh."""
    db.session.expire_all()
    stmt = select(AuditEvent).order_by(AuditEvent.seq)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    return list(db.session.scalars(stmt))


def seed(count: int) -> list[AuditEvent]:
    """Record ``count`` events, one transaction each, and return the whole trail."""
    for n in range(count):
        audit.record("test.seed", object_type="case", object_id=f"case-{n + 1}", details={"n": n + 1})
        db.session.commit()
    return events()


@contextmanager
def tampering() -> Iterator:
    """A raw connection of someone who writes to the database directly, with the append-only triggers disabled."""
    db.session.remove()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield conn


def table_text(conn, table: str) -> str:
    return "\n".join(str(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {table}")))  # noqa: S608


@pytest.fixture
def every_five(app, monkeypatch):
    """Sign a checkpoint every 5 events."""
    monkeypatch.setitem(app.config, "CASEWORK_AUDIT_CHECKPOINT_EVERY", 5)


def checkpoint_file(app) -> Path:
    return Path(app.config["CASEWORK_AUDIT_CHECKPOINT_FILE"])


# --- one transaction: the change and its event ----------------------------------------------------------------------


def test_an_event_commits_with_the_change_it_records(app):
    from casework.auth import operations

    user = operations.create_user(
        username="hanh", password=TEST_PASSWORD, role="social_worker", province_code="22", commune_codes=("06970",)
    )
    audit.record("user.create", object_type="user", object_id=user.id, fields=["username", "role"])
    with db.engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM audit_events WHERE action = 'user.create'")).scalar() == 0
    db.session.commit()
    with db.engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM users WHERE username = 'hanh'")).scalar() == 1
        assert other.execute(text("SELECT count(*) FROM audit_events WHERE action = 'user.create'")).scalar() == 1

    (event,) = events("user.create")
    assert event.object_type == "user" and event.object_id == str(user.id)
    assert event.fields == ["role", "username"]
    assert event.actor_id is None and event.actor_username is None  # no request: the system
    assert event.occurred_at.tzinfo is not None and event.occurred_at.utcoffset() == timedelta(0)
    assert audit.verify().ok


def test_a_rolled_back_change_leaves_no_event(app):
    from casework.auth import operations

    operations.create_user(username="rolled", password=TEST_PASSWORD, role="auditor", province_code="22")
    audit.record("user.create", object_type="user", object_id="x")
    db.session.rollback()
    db.session.commit()
    assert events() == []

    audit.record("test.after_rollback")
    db.session.commit()
    (event,) = events()
    assert (event.seq, event.prev_mac) == (1, GENESIS)


def test_a_rolled_back_savepoint_drops_only_its_own_events(app):
    audit.record("test.outer")
    savepoint = db.session.begin_nested()
    audit.record("test.inner")
    savepoint.rollback()
    with db.session.begin_nested():
        audit.record("test.kept")
    db.session.commit()
    assert [e.action for e in events()] == ["test.outer", "test.kept"]
    assert audit.verify().ok


def test_events_of_a_transaction_closed_without_commit_are_dropped_with_a_warning(app, caplog):
    audit.record("test.forgotten")
    db.session.remove()  # what the end of a request does
    assert events() == []
    assert "test.forgotten" in caplog.text and "never committed" in caplog.text


def test_events_of_a_transaction_are_consecutive_in_the_order_recorded(app):
    for name in ("first", "second", "third"):
        audit.record(f"test.{name}")
    db.session.commit()
    trail = events()
    assert [(e.seq, e.action) for e in trail] == [(1, "test.first"), (2, "test.second"), (3, "test.third")]
    assert [e.prev_mac for e in trail] == [GENESIS, trail[0].mac, trail[1].mac]
    head = db.session.get(ChainHead, 1)
    assert (head.last_seq, head.last_mac) == (3, trail[2].mac)


def test_a_commit_without_events_does_not_touch_the_chain(app, make_user):
    make_user("auditor", username="quiet", enrolled=False)
    before = db.session.get(ChainHead, 1).last_seq
    db.session.commit()
    assert db.session.get(ChainHead, 1).last_seq == before


def test_a_failed_sign_in_is_recorded_with_the_failure_it_counts(app, make_user, auth):
    user = make_user("social_worker", username="lan")
    response = auth.password_step("lan", "wrong password!")
    assert response.status_code == 401
    (failed,) = events("auth.sign_in_failed")
    assert failed.details["username"] == "lan"
    assert failed.ip == "127.0.0.1" and failed.request_id
    assert db.session.get(type(user), user.id).failed_logins == 1
    assert audit.verify().ok


def test_record_refuses_what_is_not_an_audit_event(app):
    with pytest.raises(ValueError, match="action"):
        audit.record("")
    with pytest.raises(ValueError, match="object id"):
        audit.record("test.long", object_id="x" * 65)
    with pytest.raises(TypeError, match="JSON"):
        audit.record("test.object", details={"user": object()})
    with pytest.raises(TypeError, match="finite"):
        audit.record("test.nan", details={"n": float("nan")})
    db.session.commit()
    assert events() == []


def test_details_keep_json_values_and_verify_after_a_round_trip(app):
    import uuid
    from datetime import date

    ident = uuid.uuid4()
    audit.record(
        "test.details",
        details={"id": ident, "on": date(2026, 1, 2), "codes": {"b", "a"}, "ratio": 0.1, "tên": "Thái Bình"},
    )
    db.session.commit()
    (event,) = events()
    assert event.details == {
        "id": str(ident),
        "on": "2026-01-02",
        "codes": ["a", "b"],
        "ratio": 0.1,
        "tên": "Thái Bình",
    }
    assert audit.verify().ok


# --- automatic events of audited models -----------------------------------------------------------------------------


@pytest.fixture
def audited_child(monkeypatch):
    from casework.cases.models import Child

    monkeypatch.setattr(Child, "__audited__", True, raising=False)
    return Child


def test_audited_models_record_create_update_and_delete_without_plaintext(app, audited_child):
    child = audited_child(
        sex="female", commune_code="06970", full_name="Nguyễn Thị Hoa", guardian_phone="0912 345 678", birth_year=2015
    )
    db.session.add(child)
    db.session.commit()
    child.full_name = "Nguyễn Thị Hoà"
    child.birth_year = 2016
    db.session.commit()
    assert child.sex == "female"
    child.sex = "female"  # the same value: no change, no event
    db.session.commit()
    db.session.delete(child)
    db.session.commit()

    trail = events()
    assert [e.action for e in trail] == ["children.create", "children.update", "children.delete"]
    assert all(e.object_type == "children" and e.object_id == str(child.id) for e in trail)
    created, updated, deleted = trail
    assert {"full_name", "guardian_phone", "sex", "commune_code", "birth_year"} <= set(created.fields)
    assert not any(name.endswith("_ct") for name in created.fields) and "id" not in created.fields
    assert updated.fields == ["birth_year", "full_name"]
    assert deleted.fields == []
    with tampering() as conn:
        stored = table_text(conn, "audit_events")
    for secret in ("Hoa", "Hoà", "Nguy", "345 678", "0912345678"):
        assert secret not in stored
    assert audit.verify().ok


def test_models_that_do_not_opt_in_record_nothing_by_themselves(app):
    from casework.cases.models import CaseNumberSequence

    assert not getattr(CaseNumberSequence, "__audited__", False)
    db.session.add(CaseNumberSequence(province_code="22", year=2031, last=7))
    db.session.commit()
    assert [e for e in events() if e.object_type == "case_number_sequences"] == []


def test_a_rolled_back_audited_change_leaves_no_automatic_event(app, audited_child):
    db.session.add(audited_child(sex="male", commune_code="06970"))
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    assert events() == []


# --- append-only ----------------------------------------------------------------------------------------------------


def test_the_orm_refuses_to_change_or_delete_an_event(app, every_five):
    seed(5)
    event = events()[0]
    event.action = "test.rewritten"
    with pytest.raises(AppendOnlyError, match="append-only"):
        db.session.flush()
    db.session.rollback()

    db.session.delete(events()[0])
    with pytest.raises(AppendOnlyError, match="append-only"):
        db.session.flush()
    db.session.rollback()

    with pytest.raises(AppendOnlyError):
        db.session.execute(update(AuditEvent).values(action="test.rewritten"))
    db.session.rollback()
    with pytest.raises(AppendOnlyError):
        db.session.execute(delete(AuditEvent).where(AuditEvent.seq > 2))
    db.session.rollback()
    with pytest.raises(AppendOnlyError):
        db.session.execute(delete(Checkpoint))
    db.session.rollback()
    assert len(events()) == 5
    assert audit.verify().ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'test.rewritten' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
        "UPDATE audit_checkpoints SET seq = 4",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
    ],
)
def test_postgresql_refuses_sql_that_changes_the_trail(app, backend, every_five, statement):
    if backend != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's")
    seed(5)
    db.session.remove()
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    assert len(events()) == 5
    assert audit.verify().ok


# --- concurrency ----------------------------------------------------------------------------------------------------


def test_twenty_parallel_writers_leave_one_unbroken_chain(app):
    writers, commits = 20, 5
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            with app.app_context():
                start.wait(timeout=30)
                for n in range(commits):
                    audit.record("test.parallel", details={"writer": writer, "n": n, "part": 1})
                    audit.record("test.parallel", details={"writer": writer, "n": n, "part": 2})
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []

    trail = events()
    total = writers * commits * 2
    assert [e.seq for e in trail] == list(range(1, total + 1))
    assert [e.prev_mac for e in trail[1:]] == [e.mac for e in trail[:-1]]  # one line: no fork
    for first, second in zip(trail[::2], trail[1::2], strict=True):  # a transaction's events stay together
        assert (first.details["writer"], first.details["n"]) == (second.details["writer"], second.details["n"])
        assert (first.details["part"], second.details["part"]) == (1, 2)
    result = audit.verify(batch_size=37)
    assert result.ok, result.problem
    assert result.events == total


# --- checkpoints ----------------------------------------------------------------------------------------------------


def test_checkpoints_are_signed_every_n_events_in_the_database_and_the_file(app, every_five):
    trail = seed(12)
    checkpoints = db.session.scalars(select(Checkpoint).order_by(Checkpoint.seq)).all()
    assert [(c.seq, c.event_mac) for c in checkpoints] == [(5, trail[4].mac), (10, trail[9].mac)]
    lines = [json.loads(line) for line in checkpoint_file(app).read_text().splitlines()]
    assert [(line["seq"], line["event_mac"], line["mac"]) for line in lines] == [
        (c.seq, c.event_mac, c.mac) for c in checkpoints
    ]
    result = audit.verify()
    assert result.ok and result.newest_checkpoint == 10


def test_a_checkpoint_of_a_rolled_back_transaction_reaches_neither_table_nor_file(app, every_five):
    from casework.auth import operations

    seed(4)
    operations.create_user(username="gone", password=TEST_PASSWORD, role="auditor", province_code="22")
    audit.record("test.fifth")
    with db.session.begin_nested():
        pass  # committing a savepoint seals the fifth event and signs a checkpoint, inside the outer transaction
    db.session.rollback()
    assert len(events()) == 4
    assert db.session.scalars(select(Checkpoint)).all() == []
    assert not checkpoint_file(app).exists()
    assert audit.verify().ok


def test_the_checkpoint_command_signs_the_newest_event_once(app, app_env):
    seed(3)
    first = casework_cli(app_env, "audit", "checkpoint")
    assert first.returncode == 0, first.stderr
    assert "checkpoint signed at event 3" in first.stdout
    again = casework_cli(app_env, "audit", "checkpoint")
    assert "event 3 already has a checkpoint" in again.stdout
    assert [c.seq for c in db.session.scalars(select(Checkpoint))] == [3]
    assert [json.loads(line)["seq"] for line in checkpoint_file(app).read_text().splitlines()] == [3]
    assert audit.verify().ok


# --- verification: every kind of tampering is named -----------------------------------------------------------------


def _edit(conn, trail) -> None:
    conn.execute(text("UPDATE audit_events SET object_id = 'case-99' WHERE seq = 3"))


def _delete(conn, trail) -> None:
    conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))


def _insert(conn, trail) -> None:
    """Make room at 4 and forge an event there, linked to event 3 but with a made-up MAC."""
    conn.execute(text("UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 4"))
    conn.execute(text("UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000"))
    forged = {c.name: getattr(trail[3], c.key) for c in AuditEvent.__table__.columns}
    forged.update(seq=4, action="test.forged", prev_mac=trail[2].mac, mac="ab" * 32)
    conn.execute(AuditEvent.__table__.insert().values(**forged))


def _reorder(conn, trail) -> None:
    """Swap events 2 and 3, each keeping its number."""
    table = AuditEvent.__table__
    rows = {e.seq: {c.name: getattr(e, c.key) for c in table.columns if c.name != "seq"} for e in trail[1:3]}
    conn.execute(table.update().where(table.c.seq == 2).values(**rows[3]))
    conn.execute(table.update().where(table.c.seq == 3).values(**rows[2]))


def _rewind_head(conn, trail, seq: int) -> None:
    conn.execute(
        text("UPDATE audit_chain_head SET last_seq = :seq, last_mac = :mac"), {"seq": seq, "mac": trail[seq - 1].mac}
    )


def _truncate(conn, trail) -> None:
    """Cut the tail back past the checkpoint at 5, rewinding the head too."""
    conn.execute(text("DELETE FROM audit_events WHERE seq >= 4"))
    _rewind_head(conn, trail, 3)


def _truncate_with_checkpoints(conn, trail) -> None:
    """Cut the tail and every checkpoint in the database: the file outside it still knows."""
    _truncate(conn, trail)
    conn.execute(text("DELETE FROM audit_checkpoints"))


def _truncate_after_last_checkpoint(conn, trail) -> None:
    """Cut events after the newest checkpoint, leaving the head: the head still knows."""
    conn.execute(text("DELETE FROM audit_events WHERE seq >= 7"))


TAMPERING: dict[str, tuple[Callable, int, str]] = {
    "edited": (_edit, 3, "event 3: its content does not match its MAC"),
    "deleted": (_delete, 4, "event 4 is missing (deleted?)"),
    "inserted": (_insert, 4, "event 4: its content does not match its MAC"),
    "reordered": (_reorder, 2, "event 2 does not follow event 1"),
    "truncated": (_truncate, 4, "event 4 is missing: the trail ends at event 3 but a signed checkpoint covers event 5"),
    "truncated_with_checkpoints": (_truncate_with_checkpoints, 4, "a signed checkpoint covers event 5"),
    "truncated_after_checkpoint": (_truncate_after_last_checkpoint, 7, "the chain head records event 8"),
}


def test_an_intact_trail_verifies_in_python_and_on_the_command_line(app, app_env, every_five):
    seed(8)
    result = audit.verify(batch_size=3)
    assert (result.ok, result.events, result.last_seq, result.newest_checkpoint) == (True, 8, 8, 5)
    cli = casework_cli(app_env, "audit", "verify", "--batch-size", "3")
    assert cli.returncode == 0, cli.stderr
    assert "audit trail intact: 8 events, newest checkpoint at event 5" in cli.stdout


def test_an_empty_trail_verifies(app, app_env):
    assert audit.verify().ok
    assert casework_cli(app_env, "audit", "verify").returncode == 0


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_verify_names_the_first_bad_event_of_a_tampered_trail(app, app_env, every_five, kind):
    change, bad_seq, message = TAMPERING[kind]
    trail = seed(8)
    with tampering() as conn:
        change(conn, trail)

    for batch_size in (1000, 2):
        result = audit.verify(batch_size=batch_size)
        assert not result.ok
        assert result.bad_seq == bad_seq, result.problem
        assert message in result.problem
    cli = casework_cli(app_env, "audit", "verify")
    assert cli.returncode == 1
    assert f"event {bad_seq}" in cli.stderr and message in cli.stderr


def test_a_checkpoint_forged_in_the_database_is_refused(app, every_five):
    trail = seed(6)
    with tampering() as conn:
        conn.execute(
            Checkpoint.__table__.insert().values(seq=6, event_mac=trail[5].mac, created_at=utcnow(), mac="cd" * 32)
        )
    result = audit.verify()
    assert not result.ok and "checkpoint of event 6 in the database is not signed" in result.problem


def test_a_checkpoint_deleted_from_the_database_is_noticed_through_the_file(app, every_five):
    seed(6)
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints"))
    result = audit.verify()
    assert not result.ok and "checkpoint of event 5 is in" in result.problem and "(deleted?)" in result.problem


def test_a_damaged_checkpoint_file_line_is_refused(app, every_five):
    seed(5)
    with checkpoint_file(app).open("a") as fh:
        fh.write('{"seq": 99, "event_mac": "00", "created_at": "2026-01-01T00:00:00Z", "mac": "00"}\n')
    result = audit.verify()
    assert not result.ok and "line 2 of" in result.problem


# --- reading the trail ----------------------------------------------------------------------------------------------


def test_events_for_object_lists_who_touched_it_newest_first(app, make_user):
    reader = make_user("social_worker", username="reader")
    audit.record("case.view", object_type="case", object_id="c-1", actor=reader)
    audit.record("case.view", object_type="case", object_id="c-2", actor=reader)
    audit.record("case.update", object_type="case", object_id="c-1", fields=["risk"], actor=reader)
    db.session.commit()
    log = audit.events_for_object("case", "c-1")
    assert [(e.action, e.actor_username, e.actor_role) for e in log] == [
        ("case.update", "reader", "social_worker"),
        ("case.view", "reader", "social_worker"),
    ]


@pytest.fixture
def auditor_client(make_user, client, auth):
    make_user("auditor", username="kiemtoan")
    assert auth.login("kiemtoan").status_code == 302
    return client


@pytest.fixture
def story(make_user):
    """Events by two users on two cases."""
    lan = make_user("social_worker", username="lan")
    minh = make_user("supervisor", username="minh")
    audit.record("case.view", object_type="case", object_id="case-aaa", actor=lan)
    audit.record("case.update", object_type="case", object_id="case-bbb", fields=["risk"], actor=minh)
    audit.record("case.approve", object_type="case", object_id="case-aaa", actor=minh)
    db.session.commit()


def rows_of(client, query: str = "") -> str:
    """The table of the audit page (not its filter form)."""
    response = client.get(f"/audit/{query}")
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    return html[html.rindex("</form>") :]


def shown(html: str, *values: str) -> bool:
    return all(f"<code>{value}</code>" in html for value in values)


def test_the_auditor_filters_events_by_user_case_action_and_period(app, auditor_client, story):
    everything = rows_of(auditor_client)
    assert shown(everything, "case-aaa", "case-bbb", "auth.sign_in")
    by_user = rows_of(auditor_client, "?user=minh")
    assert shown(by_user, "case-bbb", "case.approve") and not shown(by_user, "case.view")
    by_case = rows_of(auditor_client, "?object_id=case-aaa")
    assert shown(by_case, "case.view", "case.approve") and not shown(by_case, "case-bbb")
    by_action = rows_of(auditor_client, "?action=case.update")
    assert shown(by_action, "case-bbb") and not shown(by_action, "case-aaa")
    by_prefix = rows_of(auditor_client, "?action=case.*")
    assert shown(by_prefix, "case-aaa", "case-bbb") and not shown(by_prefix, "auth.sign_in")

    today = utcnow().astimezone(i18n.local_tz()).date()
    tomorrow = today + timedelta(days=1)
    assert shown(rows_of(auditor_client, f"?since={today:%d/%m/%Y}&until={today:%d/%m/%Y}"), "case-aaa")
    assert shown(rows_of(auditor_client, f"?since={today.isoformat()}"), "case-aaa")
    assert not shown(rows_of(auditor_client, f"?since={tomorrow:%d/%m/%Y}"), "case-aaa")
    assert not shown(rows_of(auditor_client, f"?until={today - timedelta(days=1):%d/%m/%Y}"), "case-aaa")


def test_the_auditor_pages_through_events_newest_first(app, auditor_client):
    for n in range(1, 56):
        audit.record("test.page", object_id=f"obj-{n:03d}")
    db.session.commit()
    first = rows_of(auditor_client, "?action=test.page")
    assert shown(first, "obj-055", "obj-006") and not shown(first, "obj-005")
    assert first.index("obj-055") < first.index("obj-054")
    assert "page=2" in first
    second = rows_of(auditor_client, "?action=test.page&page=2")
    assert shown(second, "obj-005", "obj-001") and not shown(second, "obj-006")


def test_a_malformed_date_is_refused_with_the_expected_format(app, auditor_client):
    response = auditor_client.get("/audit/?since=31/02/2026")
    assert response.status_code == 422
    assert "dd/mm/yyyy" in response.get_data(as_text=True)
    assert auditor_client.get("/audit/export.csv?until=tomorrow").status_code == 422


def test_the_csv_export_holds_the_filtered_events_and_is_itself_audited(app, auditor_client, story):
    response = auditor_client.get("/audit/export.csv?object_id=case-aaa")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert [(r["action"], r["actor_username"], r["object_id"]) for r in rows] == [
        ("case.approve", "minh", "case-aaa"),
        ("case.view", "lan", "case-aaa"),
    ]

    (export,) = events("audit.export")
    assert (export.actor_username, export.actor_role) == ("kiemtoan", "auditor")
    assert export.details == {
        "filters": {"object_id": "case-aaa", "through_seq": export.seq - 1},
        "events": 2,
        "format": "csv",
    }
    assert export.request_id == response.headers["X-Request-ID"]
    assert export.ip == "127.0.0.1"
    assert audit.verify().ok


def test_csv_cells_cannot_run_as_formulas(app, auditor_client):
    audit.record("test.formula", object_id="=HYPERLINK(1)")
    db.session.commit()
    body = auditor_client.get("/audit/export.csv?action=test.formula").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in body


@pytest.mark.parametrize("role", ["social_worker", "supervisor", "provincial_officer", "committee_member", "admin"])
def test_only_auditors_open_the_audit_pages(app, make_user, client, auth, role):
    make_user(role, username="someone")
    auth.login("someone")
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403
    assert "/audit/" not in client.get("/").get_data(as_text=True)
    assert events("audit.export") == []


def test_auditors_find_the_audit_trail_in_the_navigation(app, auditor_client):
    assert 'href="/audit/"' in auditor_client.get("/").get_data(as_text=True)


def test_every_response_carries_its_own_request_id(app, client):
    first = client.get("/login").headers["X-Request-ID"]
    second = client.get("/login", headers={"X-Request-ID": "chosen-by-client"}).headers["X-Request-ID"]
    assert len(first) == 32 and len(second) == 32 and first != second != "chosen-by-client"


def test_event_times_are_utc(app):
    audit.record("test.time")
    db.session.commit()
    (event,) = events()
    assert abs(event.occurred_at - utcnow().astimezone(UTC)) < timedelta(minutes=1)
