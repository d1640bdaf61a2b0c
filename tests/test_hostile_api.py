"""schemathesis against /api/v1, authenticated, over every operation of the OpenAPI document: no answer is a 5xx,
and every answer matches the document (its status is documented, its content type, headers and JSON schema are those
the document gives for that status, a request the document calls invalid is refused, a 405 names what is allowed).

The document is the one the server serves at ``/api/v1/openapi.json``, loaded over HTTP, and the requests go to the
live server (werkzeug's threaded server on the backend's app). Each backend first gets a small world, made through
the API: a social worker, a supervisor and a provincial officer of Quảng Ninh; a new case; a case in support with
its plan, services and a pending closure request; a programme and two payment requests, one submitted. A path
parameter that schemathesis generates as a well-formed id is swapped, three times out of four, for the id of a real
record, so that the operations do real work on real rows rather than answering 404 to random ids; the run fails if
fewer operations than expected ever answered 2xx.

Every phase schemathesis's pytest integration has runs: the document's examples, the coverage phase (boundary and
invalid values of every parameter and field, whole) and the random phase, positive and negative. The random phase
takes ``CASEWORK_FUZZ_EXAMPLES`` examples per operation (15 by default; ``make soak`` raises it), the same ones on
every run unless ``CASEWORK_FUZZ_RANDOM=1`` (``make soak``) asks for new ones.

What the runs found is pinned below the fuzzing test as ordinary tests.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
import zlib
from collections import defaultdict

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks

from casework.api.openapi import build_document
from casework.auth import operations as auth_operations
from casework.extensions import db
from tests.test_api import assert_error, bearer
from tests.test_cases_api import intake
from tests.test_payments_api import PDF, payment_body
from tests.test_support_api import Api

API = "/api/v1"
EXAMPLES = int(os.environ.get("CASEWORK_FUZZ_EXAMPLES", "15"))
#: The same examples on every run of ``make test`` (a failure can be replayed); new ones on every ``make soak``.
RANDOM = os.environ.get("CASEWORK_FUZZ_RANDOM", "") not in ("", "0")

load_all_checks()
#: Every check schemathesis has, less those that cannot hold by design, each with the reason.
EXCLUDED = {
    # "A schema-valid request must be accepted (2xx)". A JSON schema cannot say every rule of the procedure: a
    # commune within the caller's area, a code of casework/codes.toml, a date of birth that agrees with the birth
    # year, a report not received in the future, a service due after it started. Such a request is refused with 422
    # and the rule's field code, as the document says for every operation that takes data; this check would call
    # each of those refusals a failure. (The document does carry what a schema can: enums, patterns, lengths,
    # ranges; `negative_data_rejection`, which stays, holds the app to them.)
    "positive_data_acceptance",
}
CHECKS_RUN = [CHECKS.get_one(name) for name in CHECKS.get_all_names() if name not in EXCLUDED]

#: Who calls each operation: the one whose work it is (the social worker of the cases for the rest).
CALLERS = {
    "GET /stats": "officer",
    "GET /programmes": "officer",
    "POST /programmes": "officer",
    "GET /payments": "officer",
    "POST /payments/{payment_id}/decision": "officer",  # the world's submitted request is above 5,000,000 ₫
    "POST /payments/{payment_id}/disbursement": "officer",
    "POST /cases/{case_id}/closure-requests/{request_id}/decision": "supervisor",
}
#: How many operations that change something must have succeeded in a run (reads must all have): a random body
#: rarely satisfies the procedure's rules (codes of casework/codes.toml, a commune within the caller's area, the
#: version of the case just read, a stage the transition starts from), so a run succeeds on a handful of them.
MIN_WRITES_DONE = 4
#: Reads that may never answer 2xx in a run: a job's id is the one of a job the caller started, and the world
#: starts none.
READS_WITHOUT_RECORDS = {
    "GET /jobs/{job_id}",
    # schemathesis 4.32 sends no request to the document's own address (tests/test_api.py checks it is served).
    "GET /openapi.json",
}


class World:
    """The records of one backend's run, made through the API, and the tokens of the people who made them."""

    def __init__(self, client, make_user) -> None:
        self.client = client
        self.worker = make_user("social_worker", communes=("06970",), username="hoa", full_name="Trần Thị Hoa")
        self.supervisor = make_user("supervisor", communes=("06970",), username="lan", full_name="Nguyễn Thị Lan")
        self.officer = make_user("provincial_officer", username="officer", full_name="Phạm Văn Đức")
        self.tokens = {
            "worker": self.token(self.worker),
            "supervisor": self.token(self.supervisor),
            "officer": self.token(self.officer),
        }
        self.answers: dict[str, set[int]] = defaultdict(set)
        self.swapped: set[str] = set()  # operations that were sent a real id at least once
        w, s, o = (bearer(self.tokens[k]) for k in ("worker", "supervisor", "officer"))
        api = Api(client)
        self.cases = [api.open_case(w), api.open_case(w, child__national_id=None, child__full_name="Hà Văn Lực")]
        supported = self.cases[1]
        api.to_support(w, s, supported)
        self.services = {supported: [x["id"] for x in api.get(w, supported, "services")["items"]]}
        closure = api.post(w, supported, "closure-requests", {"reason": "goals_met", "note": "Đạt mục tiêu"})
        self.closures = {supported: [closure["id"]]}
        programme = self.call(
            o, "POST", "/programmes", 201, json={"name": "Quỹ BTTE", "year": 2026, "budget_vnd": 10**8}
        )
        self.payments = []
        for amount in (1_500_000, 7_000_000):
            body = payment_body(programme["id"], amount)
            self.payments.append(self.call(w, "POST", f"/cases/{supported}/payments", 201, json=body)["id"])
        receipt = {"file": (io.BytesIO(PDF), "hoa-don.pdf")}
        self.call(w, "POST", f"/payments/{self.payments[1]}/attachments", 201, data=receipt)
        self.call(w, "POST", f"/payments/{self.payments[1]}/submit", 200)

    def token(self, user) -> str:
        """A bearer token for ``user``, as if obtained with the second factor just now."""
        issued = auth_operations.issue_token(user, second_factor=True)
        db.session.commit()
        return issued.token

    def call(self, headers, method: str, path: str, status: int, **kwargs) -> dict:
        response = self.client.open(f"{API}{path}", method=method, headers=headers, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.get_json())
        return response.get_json()

    def swap_ids(self, case) -> None:
        """Put real ids in place of well-formed generated ones: always the first of an operation, then three out of
        four (chosen from the generated id, so that a replayed example is the same request)."""
        params = case.path_parameters
        if not params:
            return
        first = case.operation.label not in self.swapped

        def pick(name: str, choices: list[str]) -> str | None:
            value = params.get(name)
            if not isinstance(value, str) or not choices:
                return None
            try:
                uuid.UUID(value)
            except ValueError:
                return None  # a malformed id is the point of the example: keep it
            digest = zlib.crc32(value.encode())
            if digest % 4 == 0 and not first:
                return None
            self.swapped.add(case.operation.label)
            return choices[(digest >> 2) % len(choices)]

        chosen = pick("case_id", self.cases)
        if chosen is not None:
            params["case_id"] = chosen
            for name, table in (("service_id", self.services), ("request_id", self.closures)):
                replacement = pick(name, table.get(chosen, []))
                if replacement is not None:
                    params[name] = replacement
        chosen = pick("payment_id", self.payments)
        if chosen is not None:
            params["payment_id"] = chosen
        code = params.get("code")
        if isinstance(code, str) and (first or zlib.crc32(code.encode()) % 4):
            self.swapped.add(case.operation.label)
            params["code"] = "22"  # Quảng Ninh


@pytest.fixture
def world(app, client, make_user):
    world = World(client, make_user)
    yield world
    # The run did real work on real records: every read answered 2xx at least once, and some writes did.
    operations = {f"{m.upper()} {p}" for p, ops in build_document()["paths"].items() for m in ops}
    done = {label for label, statuses in world.answers.items() if any(200 <= s < 300 for s in statuses)}
    reads = {label for label in operations if label.startswith("GET ")} - READS_WITHOUT_RECORDS
    assert reads <= done, f"reads that never answered 2xx: {sorted(reads - done)}"
    writes = (operations - reads) & done
    assert len(writes) >= MIN_WRITES_DONE, f"only these writes ever answered 2xx: {sorted(writes)}"


@pytest.fixture
def api_schema(live_server, world):
    served = requests.get(f"{live_server}{API}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == build_document()
    schema = schemathesis.openapi.from_url(f"{live_server}{API}/openapi.json")
    schema.config.update(base_url=f"{live_server}{API}")
    # The bearer token is the test's to send (each operation's caller's, a throwaway for DELETE /tokens/current):
    # schemathesis does not generate the Authorization header, and its ignored_auth check still sends requests
    # without it and with a wrong one, which must answer 401.
    schema.config.generation.update(max_examples=EXAMPLES, with_security_parameters=False)
    return schema


@pytest.fixture(autouse=True)
def _quiet_server_log():
    """The live server logs every request at INFO: thousands of lines in a failure's report otherwise."""
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True)
def _node_id(request):
    """schemathesis 4.32's lazy schema renames the test node for each operation through ``node._nodeid``, which
    pytest 9.2's nodes no longer have: give it one (each operation is still reported as a subtest with its label)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(
    deadline=None,  # a request to a server on a shared 2-core machine has no fixed time
    derandomize=not RANDOM,
    database=None,  # no example database in the checkout: every run starts from the same seeds and the world
    suppress_health_check=list(hypothesis.HealthCheck),  # slow examples, and one world for all of them, are meant
)
def test_every_answer_of_the_api_matches_its_document(case, world):
    label = f"{case.method} {case.path}"
    world.swap_ids(case)
    if label == "DELETE /tokens/current":
        token = world.token(world.worker)  # a throwaway: revoking it must not sign the rest of the run out
    else:
        token = world.tokens[CALLERS.get(label, "worker")]
    response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS_RUN)
    world.answers[label].add(response.status_code)


# --- what the fuzzing found, pinned as ordinary tests -----------------------------------------------------------------

NUL_REQUESTS = [
    ("GET", "/api/v1/cases?stage=report%00received", None),
    ("GET", "/api/v1/cases?commune=069%0070", None),
    ("GET", "/api/v1/provinces/2%002/communes", None),
    ("GET", "/api/v1/stats?province=2%002", None),
    ("POST", "/api/v1/tokens", {"username": "hoa\u0000", "password": "x"}),
    ("POST", "/api/v1/cases", {"child": {"full_name": "Lò Thị\u0000"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
def test_text_holding_nul_is_a_400_on_every_database_not_a_500(client, make_user, api_token, method, path, body):
    # PostgreSQL cannot store NUL: a filter or a username holding one was a 500 there (found by schemathesis).
    officer = make_user("provincial_officer")
    response = client.open(path, method=method, json=body, headers=bearer(api_token(officer)))
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("path", ["/cases/?stage=a%00", "/cases/?commune=069%0070", "/cases/?category=x%00"])
def test_a_page_filter_holding_nul_is_a_400(client, make_user, auth, path):
    make_user("social_worker", username="hoa")
    auth.login("hoa")
    assert client.get(path).status_code == 400


def test_a_sign_in_with_nul_in_the_username_is_a_400(client, auth):
    assert auth.password_step("hoa\u0000", "wrong password").status_code == 400


def test_a_programme_whose_group_is_not_a_code_is_refused_not_a_500(client, make_user, api_token):
    officer = make_user("provincial_officer")
    body = {"name": "Quỹ BTTE", "year": 2026, "budget_vnd": 1_000_000, "groups": [{}, ["violence_harm"]]}
    response = client.post(f"{API}/programmes", json=body, headers=bearer(api_token(officer)))
    assert assert_error(response, 422, "validation_failed")["field_codes"] == {
        "groups": ["invalid_code", "invalid_code"]
    }


def test_a_405_names_the_methods_the_resource_supports(client, make_user, api_token):
    response = client.delete(f"{API}/cases", headers=bearer(api_token(make_user())))
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_blank_filters_are_the_same_as_no_filter_as_the_document_says(client, make_user, api_token):
    headers = bearer(api_token(make_user()))
    for path in ("/cases?overdue=&page=&risk=", "/payments?programme=&status="):
        assert client.get(f"{API}{path}", headers=headers).status_code == 200
    officer = bearer(api_token(make_user("provincial_officer")))
    assert client.get(f"{API}/stats?half=&year=&breakdown=", headers=officer).status_code == 200


def test_text_padded_past_its_limit_is_refused_as_the_document_says(client, make_user, api_token):
    # The document says maxLength 4000 for a note; the app counted after trimming, so 20 letters and 4000 carriage
    # returns were taken (found by schemathesis). The length is now counted as sent, as a form's maxlength counts.
    worker = make_user("social_worker", communes=("06970",))
    headers = bearer(api_token(worker))
    notes = f"{API}/cases/{client.post(f'{API}/cases', json=intake(), headers=headers).get_json()['id']}/notes"
    padded = client.post(notes, json={"body": "Gặp trẻ tại trường." + "\r" * 4000}, headers=headers)
    assert assert_error(padded, 422, "validation_failed")["field_codes"] == {"body": ["too_long"]}
    trimmed = client.post(notes, json={"body": "  Gặp trẻ tại trường.\n"}, headers=headers)
    assert trimmed.status_code == 201 and trimmed.get_json()["body"] == "Gặp trẻ tại trường."
    assert_error(client.get(f"{API}/cases?q=" + "a" + " " * 200, headers=headers), 422, "validation_failed")


def test_an_optional_field_sent_as_null_is_left_out_but_false_is_not_an_empty_list(client, make_user, api_token):
    # The document says so; the app read groups: false as "no groups" (found by schemathesis).
    officer = bearer(api_token(make_user("provincial_officer")))
    fund = {"name": "Quỹ BTTE", "year": 2026, "budget_vnd": 1_000_000}
    made = client.post(f"{API}/programmes", json={**fund, "purposes": None, "groups": None}, headers=officer)
    assert made.status_code == 201 and (made.get_json()["purposes"], made.get_json()["groups"]) == ([], [])
    refused = client.post(f"{API}/programmes", json={**fund, "name": "Quỹ khác", "groups": False}, headers=officer)
    assert assert_error(refused, 422, "validation_failed")["field_codes"] == {"groups": ["not_a_list"]}
