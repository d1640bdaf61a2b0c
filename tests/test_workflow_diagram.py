"""The workflow diagrams: an SVG drawn from the definition alone, and the read-only pages that show it to
administrators and supervisors."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from casework.workflow import Deadline, load_all, load_definition
from casework.workflow.diagram import deadline_words, to_svg
from tests.conftest import AuthActions, build_app

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"
NS = "{http://www.w3.org/2000/svg}"

#: A province's own procedure, with a label that tries to break out of the SVG.
PROVINCE_WORKFLOW = """
[workflow]
label = { vi = "Quy trình thí điểm Quảng Ninh", en = "Quang Ninh pilot" }
initial = "open"
legal_basis = "Quyết định 12/2024/QĐ-UBND tỉnh Quảng Ninh"
provinces = ["22"]

[[stages]]
id = "open"
label = { vi = "Tiếp nhận </text><script>alert(1)</script>", en = "Open \\"quoted\\" & <b>bold</b>" }
form = "Mẫu 01"

[[stages]]
id = "assess"
label = { vi = "Đánh giá\\u0007 tại xã", en = "Assessment" }
deadline = { working_days = 1, from = "received", rule = "QĐ 12/2024, Điều 3" }

[[stages]]
id = "done"
label = { vi = "Kết thúc", en = "Done" }
final = true

[[transitions]]
id = "assess"
from = "open"
to = "assess"
label = { vi = "Đánh giá <ngay>", en = "Assess" }
roles = ["social_worker"]

[[transitions]]
id = "finish"
from = ["open", "assess"]
to = "done"
label = { vi = "Kết thúc hồ sơ", en = "Finish" }
roles = ["supervisor"]

[[transitions]]
id = "again"
from = "done"
to = "open"
label = { vi = "Mở lại", en = "Reopen" }
roles = ["supervisor"]
"""


@pytest.fixture(scope="module")
def default():
    return load_all(WORKFLOWS)["default"]


def svg_root(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, under test


def boxes(root: ET.Element) -> dict[str, ET.Element]:
    found = [g for g in root.iter(f"{NS}g") if g.get("class") == "stage"]
    assert len(found) == len({g.get("data-stage") for g in found}), "two boxes for one stage"
    return {g.get("data-stage"): g for g in found}


def shown_text(element: ET.Element) -> str:
    """The visible text of an element: its <text> lines joined (wrapped lines break at spaces)."""
    return " ".join(shown_text_of(text) for text in element.iter(f"{NS}text"))


def shown_text_of(text: ET.Element) -> str:
    return " ".join(text.itertext())


def arrows(root: ET.Element) -> list[tuple[str, str, str]]:
    """(from, transition, to) of every transition arrow: a path that ends with a marker."""
    found = []
    for path in root.iter(f"{NS}path"):
        if path.get("class") == "transition":
            assert path.get("marker-end", "").startswith("url(#"), "a transition arrow without an arrowhead"
            found.append((path.get("data-from"), path.get("data-transition"), path.get("data-to")))
    return found


# --- the drawing ---------------------------------------------------------------------------------------------------


def test_each_stage_is_one_box_with_its_vietnamese_label_form_and_deadline(default):
    root = svg_root(to_svg(default))
    drawn = boxes(root)
    assert list(drawn) == list(default.stages)
    for stage_id, stage in default.stages.items():
        assert stage.label.vi in shown_text(drawn[stage_id])
    drafting = shown_text(drawn["plan_drafting"])
    assert "Mẫu 04" in drafting and "5 ngày làm việc" in drafting
    assert "12 giờ" in shown_text(drawn["emergency_intervention"])
    assert "12 giờ" in shown_text(drawn["report_received"])  # the danger deadline
    assert root.find(f"{NS}title").text == default.label.vi


def test_english_shows_the_english_labels_and_deadlines(default):
    drawn = boxes(svg_root(to_svg(default, locale="en")))
    for stage_id, stage in default.stages.items():
        assert stage.label.en in shown_text(drawn[stage_id])
        assert stage.label.vi not in shown_text(drawn[stage_id])
    assert "5 working days" in shown_text(drawn["plan_drafting"])
    assert "12 hours" in shown_text(drawn["emergency_intervention"])


def test_deadlines_read_in_words_in_both_languages():
    assert deadline_words(Deadline(start="received", hours=12)) == "12 giờ"
    assert deadline_words(Deadline(start="entered", working_days=5)) == "5 ngày làm việc"
    assert deadline_words(Deadline(start="entered", working_days=5), "en") == "5 working days"
    assert deadline_words(Deadline(start="entered", hours=1), "en_GB") == "1 hour"
    assert deadline_words(Deadline(start="entered", working_days=1), "en") == "1 working day"


def test_one_arrow_per_source_stage_and_transition(default):
    root = svg_root(to_svg(default))
    expected = [(source, t.id, t.to) for t in default.transitions for source in t.sources]
    assert sorted(arrows(root)) == sorted(expected)
    assert len(expected) == 20  # close alone leaves eight stages
    markers = {m.get("id") for m in root.iter(f"{NS}marker")}
    for path in root.iter(f"{NS}path"):
        if path.get("marker-end"):
            assert path.get("marker-end")[len("url(#") : -1] in markers
    # Besides the transitions, only the start dot's arrow and the legend's sample carry an arrowhead.
    others = [
        group.get("class")
        for group in root.iter(f"{NS}g")
        for path in group.findall(f"{NS}path")
        if path.get("marker-end") and path.get("class") != "transition"
    ]
    assert sorted(others) == ["legend", "start"]
    assert not [p for p in root.findall(f"{NS}path") if p.get("marker-end") and p.get("class") != "transition"]
    # Every arrow is labelled with its transition's name, next to it.
    labels = {
        (t.get("data-from"), t.get("data-transition")): shown_text_of(t)
        for t in root.iter(f"{NS}text")
        if t.get("class") == "transition-label"
    }
    assert labels[("plan_approval", "return_plan")] == "Trả lại kế hoạch để sửa"
    assert len(labels) == len(expected)


def test_the_initial_stage_is_marked_and_final_stages_drawn_differently(default):
    root = svg_root(to_svg(default))
    drawn = boxes(root)
    assert [s for s, g in drawn.items() if g.get("data-initial")] == ["report_received"]
    assert [s for s, g in drawn.items() if g.get("data-final")] == ["closed"]
    assert len(drawn["closed"].findall(f"{NS}rect")) == 2  # a double border
    assert drawn["closed"].find(f"{NS}rect").get("fill") != drawn["support"].find(f"{NS}rect").get("fill")
    start = [g for g in root.iter(f"{NS}g") if g.get("class") == "start"]
    assert len(start) == 1 and start[0].get("data-stage") == "report_received"


def top_of(box: ET.Element) -> float:
    return float(box.find(f"{NS}rect").get("y"))


def test_layers_follow_the_distance_from_the_initial_stage_with_the_closing_stage_last(default):
    drawn = boxes(svg_root(to_svg(default)))
    y = {stage_id: top_of(box) for stage_id, box in drawn.items()}
    assert y["report_received"] < y["initial_assessment"] == y["emergency_intervention"] < y["detailed_assessment"]
    assert y["detailed_assessment"] < y["plan_drafting"] < y["plan_approval"] < y["support"] < y["review"]
    assert y["closed"] == max(y.values()) and list(y.values()).count(y["closed"]) == 1


def test_back_edges_are_dashed_curves(default):
    root = svg_root(to_svg(default))
    paths = {(p.get("data-from"), p.get("data-transition")): p for p in root.iter(f"{NS}path") if p.get("class")}
    for back in (("plan_approval", "return_plan"), ("review", "new_plan_cycle"), ("closed", "reopen")):
        d = paths[back].get("d")
        assert re.search(r"[QC]", d), f"{back} is not drawn as a curve: {d}"
        assert paths[back].get("stroke-dasharray"), back
    assert not paths[("plan_drafting", "submit_plan")].get("stroke-dasharray")


def test_the_svg_holds_no_script_no_style_and_no_outside_reference(default):
    svg = to_svg(default)
    root = svg_root(svg)
    tags = {element.tag.removeprefix(NS) for element in root.iter()}
    assert not tags & {"script", "style", "foreignObject", "image", "a", "use", "iframe"}
    for element in root.iter():
        for name, value in element.attrib.items():
            assert not name.endswith("href"), (element.tag, name, value)
            assert name != "style" and not name.startswith("on"), (element.tag, name)
            for reference in re.findall(r"url\(([^)]*)\)", value):
                assert reference.startswith("#"), (element.tag, name, value)
    assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in svg and "@import" not in svg


def test_text_from_a_definition_file_is_escaped(tmp_path):
    path = tmp_path / "quang_ninh.toml"
    path.write_text(PROVINCE_WORKFLOW, encoding="utf-8")
    definition = load_definition(path)
    for locale in ("vi", "en"):
        svg = to_svg(definition, locale=locale)
        root = svg_root(svg)  # a control character or a stray "<" would make it unparseable
        assert not [e for e in root.iter() if e.tag.removeprefix(NS) in {"script", "b"}]
    drawn = boxes(svg_root(to_svg(definition)))
    # (a long word is cut across lines)
    assert "</text><script>alert(1)</script>" in shown_text(drawn["open"]).replace(" ", "")
    assert "Đánh giá tại xã" in shown_text(drawn["assess"])
    assert 'Open "quoted" & <b>bold</b>' in shown_text(boxes(svg_root(to_svg(definition, locale="en")))["open"])


def test_the_same_definition_gives_the_same_drawing(default, tmp_path):
    assert to_svg(default) == to_svg(default)
    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    assert to_svg(load_all(tmp_path)["default"], locale="en") == to_svg(default, locale="en")


# --- the pages -----------------------------------------------------------------------------------------------------


def inline_svg(html: str) -> ET.Element:
    found = re.findall(r"<svg\b.*?</svg>", html, re.S)
    assert len(found) == 1, "the page should carry one diagram, inline"
    return ET.fromstring(found[0])  # noqa: S314 - our own page, under test


def sign_in(client, make_user, role: str, username: str):
    make_user(role, username=username)
    response = AuthActions(client).login(username)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_an_administrator_lists_the_workflows_and_opens_the_diagram(app, client, make_user):
    sign_in(client, make_user, "admin", "quantri")
    listing = client.get("/admin/workflows")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert "Quy trình hỗ trợ, can thiệp (Nghị định 56/2017/NĐ-CP)" in html
    assert "default.toml" in html and "Decree 56/2017/NĐ-CP, Chapter III" in html
    assert 'href="/admin/workflows/default"' in html

    page = client.get("/admin/workflows/default")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    drawn = boxes(inline_svg(html))
    assert set(drawn) == set(load_all(WORKFLOWS)["default"].stages)
    # The tables: each stage with its form and the rule of its deadline; each transition with its conditions.
    assert "Decree 56/2017, Art. 28.1" in html and "Mẫu 05" in html
    assert "5 ngày làm việc" in html and "7 ngày làm việc" in html
    assert "<code>plan_approved</code>" in html and "<code>approve_plan</code>" in html
    assert "<code>closure_approved</code>" in html


def test_the_diagram_page_follows_the_language_chosen(app, client, make_user):
    sign_in(client, make_user, "admin", "quantrien")
    assert client.get("/lang/en").status_code == 302
    html = client.get("/admin/workflows/default").get_data(as_text=True)
    drawn = boxes(inline_svg(html))
    assert "Drafting the support plan" in shown_text(drawn["plan_drafting"])


def test_a_supervisor_may_read_the_workflows(app, client, make_user):
    sign_in(client, make_user, "supervisor", "truongxa")
    assert client.get("/admin/workflows").status_code == 200
    response = client.get("/admin/workflows/default")
    assert response.status_code == 200
    assert inline_svg(response.get_data(as_text=True)) is not None


@pytest.mark.parametrize("role", ["social_worker", "auditor", "committee_member", "provincial_officer"])
def test_other_roles_are_refused(app, client, make_user, role):
    sign_in(client, make_user, role, "khac")
    for url in ("/admin/workflows", "/admin/workflows/default"):
        response = client.get(url)
        assert response.status_code == 403, (role, url)
        assert "<svg" not in response.get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_sign_in(app, client):
    for url in ("/admin/workflows", "/admin/workflows/default"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


def test_an_unknown_workflow_is_not_found(app, client, make_user):
    sign_in(client, make_user, "admin", "quantri404")
    assert client.get("/admin/workflows/quang_ninh").status_code == 404
    assert client.get("/admin/workflows/..%2Fdefault").status_code == 404


def test_the_navigation_links_the_workflows_for_those_who_may_read_them(app, client, make_user):
    sign_in(client, make_user, "admin", "quantrinav")
    assert 'href="/admin/workflows"' in client.get("/").get_data(as_text=True)
    other = app.test_client()
    make_user("social_worker", username="canbo")
    AuthActions(other).login("canbo")
    assert 'href="/admin/workflows"' not in other.get("/").get_data(as_text=True)


@pytest.fixture
def province_app(app, app_env, tmp_path):
    """An app on the same database whose workflow folder holds the default and Quảng Ninh's own procedure."""
    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    (tmp_path / "quang_ninh.toml").write_text(PROVINCE_WORKFLOW, encoding="utf-8")
    province_app = build_app({**app_env, "CASEWORK_WORKFLOWS_DIR": str(tmp_path)})
    yield province_app
    with province_app.app_context():
        from casework.extensions import db

        db.engine.dispose()


def test_a_provinces_own_workflow_shows_up_on_the_list(province_app, make_user):
    client = province_app.test_client()
    sign_in(client, make_user, "admin", "quantritinh")
    html = client.get("/admin/workflows").get_data(as_text=True)
    assert "Quy trình thí điểm Quảng Ninh" in html and "quang_ninh.toml" in html
    assert "Tỉnh Quảng Ninh (22)" in html
    assert "Quyết định 12/2024/QĐ-UBND tỉnh Quảng Ninh" in html
    assert "<script>alert(1)" not in html

    page = client.get("/admin/workflows/quang_ninh")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    drawn = boxes(inline_svg(html))
    assert set(drawn) == {"open", "assess", "done"}
    assert "<script>" not in html
    assert "1 ngày làm việc" in html and "QĐ 12/2024, Điều 3" in html
