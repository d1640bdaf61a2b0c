"""The scope module: one place that turns a user into what they may see."""

from __future__ import annotations

from sqlalchemy import select

from casework import scope
from casework.extensions import db
from casework.locations.models import Commune


def visible_communes(user) -> set[str]:
    """The communes whose records ``user`` may see, through the same filter every protected query uses."""
    return set(db.session.scalars(scope.filter_to_scope(select(Commune.code), Commune.code, user)))


def test_a_social_worker_sees_only_their_communes(make_user):
    worker = make_user("social_worker", communes=("06970",))
    assert visible_communes(worker) == {"06970"}
    assert scope.can_access_commune(worker, "06970")
    assert not scope.can_access_commune(worker, "06979")


def test_a_supervisor_sees_the_communes_they_supervise(make_user):
    supervisor = make_user("supervisor", communes=("06970", "06979"))
    assert visible_communes(supervisor) == {"06970", "06979"}
    assert scope.can_supervise(supervisor, "06979")
    assert not scope.can_supervise(supervisor, "06652")


def test_a_provincial_officer_sees_the_whole_province_and_nothing_else(make_user):
    officer = make_user("provincial_officer")
    province = set(db.session.scalars(select(Commune.code).where(Commune.province_code == "22")))
    assert visible_communes(officer) == province
    assert scope.can_access_commune(officer, "06652")
    assert not scope.can_access_commune(officer, "00004")  # Hà Nội


def test_committee_members_auditors_and_admins_see_no_childs_record(make_user):
    for role in ("committee_member", "auditor", "admin"):
        user = make_user(role)
        assert visible_communes(user) == set(), role
        assert not scope.can_view_records(user), role
        assert not scope.can_access_commune(user, "06970"), role


def test_statistics_audit_and_user_administration_each_belong_to_one_kind_of_user(make_user):
    committee = make_user("committee_member")
    officer = make_user("provincial_officer")
    auditor = make_user("auditor")
    admin = make_user("admin")
    worker = make_user("social_worker")
    assert scope.can_view_statistics(committee, "22") and scope.can_view_statistics(officer, "22")
    assert not scope.can_view_statistics(committee, "01")
    assert not scope.can_view_statistics(worker)
    assert scope.can_view_audit(auditor) and not scope.can_view_audit(admin)
    assert scope.can_manage_users(admin, "22") and not scope.can_manage_users(admin, "01")
    assert not scope.can_manage_users(officer)


def test_a_deactivated_user_sees_nothing(make_user):
    worker = make_user("social_worker")
    worker.active = False
    assert visible_communes(worker) == set()
    assert not scope.can_access_commune(worker, "06970")


def test_nobody_signed_in_sees_nothing():
    class Anonymous:
        is_authenticated = False

    assert not scope.can_view_records(Anonymous())
    assert not scope.can_access_commune(None, "06970")
