"""The legal forms of the case procedure (Decree 56/2017/NĐ-CP, annex), produced from the case so that a commune
never retypes them: Mẫu 01 (intake record), Mẫu 02 (initial risk assessment), Mẫu 03 (detailed assessment and case
meeting), Mẫu 04 (support and intervention plan), Mẫu 05 (the decision approving it) and Mẫu 06 (review).

One function per form assembles a plain :class:`PrintedForm` (headings, label/value rows, tables, signature blocks).
The printable page (``templates/printing/form.html``) and the PDF (:func:`render_pdf`) both draw that same
structure, so they never disagree. The forms are official documents and always in Vietnamese, whatever the
language of the interface; only the refusals (a form with nothing to print yet) follow the interface.

Printing a form shows a child's identifying details: :func:`record_printed` writes ``case.form_printed`` with the
form's code, the format and the record's id, never its content.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from flask_babel import lazy_gettext as _l
from fpdf import FPDF
from fpdf.fonts import FontFace
from sqlalchemy import select

from casework import audit, codes
from casework.auth.models import User
from casework.cases.models import CASE_CODE_LISTS, Case, CaseChange
from casework.errors import Conflict, NotFound
from casework.extensions import db
from casework.i18n import format_date, format_datetime, local_tz
from casework.locations.models import Commune
from casework.support import operations
from casework.support.models import Assessment, MonitoringVisit, ServiceRecord, SupportPlan

FONT_DIR = Path(__file__).resolve().parent.parent / "static" / "fonts"

#: The forms, in the order of the procedure.
FORM_CODES = ("mau01", "mau02", "mau03", "mau04", "mau05", "mau06")
#: What ``?id=`` names for each form: an assessment of a kind, or a support plan (Mẫu 01 has nothing to choose).
ASSESSMENT_KIND_OF = {"mau02": "initial", "mau03": "detailed", "mau06": "review"}
PLAN_FORMS = ("mau04", "mau05")

NOT_RECORDED = "Chưa ghi nhận"
SIGN_HINT = "(Ký, ghi rõ họ tên)"

# Mẫu 06: the risk scale rates three harm factors and the child's own capacity (Decree 56/2017, annex).
RATED_FACTORS = (
    ("harm_severity", "harm_note", "Mức độ nghiêm trọng của tổn hại đối với trẻ em"),
    ("abuser_access", "access_note", "Khả năng tiếp cận trẻ em của người gây tổn hại"),
    ("care_obstacles", "obstacles_note", "Những trở ngại trong môi trường chăm sóc trẻ em"),
    ("child_capacity", "capacity_note", "Khả năng tự bảo vệ và phục hồi của trẻ em"),
)
PLAN_STATUS_VI = {
    "draft": "Dự thảo",
    "submitted": "Đã trình phê duyệt",
    "approved": "Đã phê duyệt",
    "returned": "Bị trả lại để chỉnh sửa",
    "ended": "Đã kết thúc",
}
REVIEW_OUTCOME_VI = {
    "end": "Kết thúc kế hoạch hỗ trợ, can thiệp (trẻ em hết nguy cơ, ổn định)",
    "new_plan": "Xây dựng kế hoạch hỗ trợ, can thiệp mới",
    "continue": "Tiếp tục thực hiện kế hoạch hỗ trợ, can thiệp hiện tại",
}
SERVICE_OUTCOME_VI = {"completed": "Đã hoàn thành", "ongoing": "Đang thực hiện", "not_delivered": "Chưa thực hiện được"}
VISIT_OUTCOME_VI = {"stable": "Ổn định", "improving": "Có tiến triển", "concern": "Đáng lo ngại", "danger": "Nguy hiểm"}
CODE_LIST_VI = {
    "special_circumstances": "Nhóm trẻ em có hoàn cảnh đặc biệt",
    "at_risk": "Nguy cơ",
    "abuse_types": "Hình thức xâm hại",
}
COMMUNE_PREFIXES = ("Xã ", "Phường ", "Đặc khu ")


# --- the structure both renderings draw ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a form: a label and its value."""

    label: str
    value: str


@dataclass(frozen=True)
class Table:
    """A table of a form; ``widths`` are relative column widths, ``empty`` is said when there is no row."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[int, ...]
    empty: str = "Không có."


@dataclass(frozen=True)
class Section:
    """A part of a form: its heading, then paragraphs, rows, a table and closing notes, in that order."""

    heading: str = ""
    paragraphs: tuple[str, ...] = ()
    rows: tuple[Row, ...] = ()
    table: Table | None = None
    notes: tuple[str, ...] = ()
    centered: bool = False  # a decision's "CHỦ TỊCH ..." and "QUYẾT ĐỊNH:" lines
    italic: bool = False  # a decision's "Căn cứ ..." lines


@dataclass(frozen=True)
class Signature:
    """A signature block: who signs, the hint, and the name printed under the space for the signature."""

    title: str
    name: str = ""
    hint: str = SIGN_HINT


@dataclass(frozen=True)
class PrintedForm:
    """Everything a form shows, in Vietnamese, ready to be drawn as a page or a PDF."""

    code: str  # mau01 .. mau06
    number: str  # "Mẫu số 01"
    authority: tuple[str, ...]  # ("ỦY BAN NHÂN DÂN", "XÃ BA CHẼ")
    place_date: str  # "Ba Chẽ, ngày 01 tháng 3 năm 2025"
    title: str
    subtitle: str = ""
    reference: str = ""  # a decision's "Số: ..../QĐ-UBND"
    sections: tuple[Section, ...] = ()
    signatures: tuple[Signature, ...] = ()
    recipients: tuple[str, ...] = ()  # a decision's "Nơi nhận"
    case_number: str = ""
    record_id: str | None = None  # the assessment or plan printed (None for Mẫu 01)

    @property
    def filename(self) -> str:
        return f"{self.code}-{self.case_number}.pdf"


# --- small helpers ------------------------------------------------------------------------------------------------


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _text(value: str | None, missing: str = NOT_RECORDED) -> str:
    """Free text as recorded (NFC), or what a form says when nothing was recorded."""
    if value is None or not str(value).strip():
        return missing
    return _nfc(str(value).strip())


def _vi(list_name: str, code: str | None) -> str:
    return _nfc(codes.label(list_name, code, "vi")) if code else NOT_RECORDED


def _day(value: date | datetime | None) -> str:
    return format_date(value) if value else NOT_RECORDED


def _moment(value: datetime | None) -> str:
    if value is None:
        return NOT_RECORDED
    local = value.astimezone(local_tz())
    return f"{local:%H} giờ {local:%M} phút, ngày {local:%d/%m/%Y}"


def _person(user_id: uuid.UUID | None) -> str:
    """A colleague's full name as it is printed on a form ("" leaves the line to be written by hand)."""
    user = db.session.get(User, user_id) if user_id else None
    if user is None:
        return ""
    return _nfc(user.full_name or user.username)


def _commune(case: Case) -> Commune:
    return db.session.get(Commune, case.commune_code)


def _authority(commune: Commune) -> tuple[str, ...]:
    return ("ỦY BAN NHÂN DÂN", _nfc(commune.name).upper())


def _place(commune: Commune) -> str:
    name = _nfc(commune.name)
    for prefix in COMMUNE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def place_date(commune: Commune, moment: date | datetime | None) -> str:
    """The place and date line of an administrative document: "Ba Chẽ, ngày 05 tháng 3 năm 2025".

    Decree 30/2020/NĐ-CP, Annex I: days below 10 and the months January and February take a leading zero.
    """
    if moment is None:
        return f"{_place(commune)}, ngày ..... tháng ..... năm ......."
    if isinstance(moment, datetime):
        moment = moment.astimezone(local_tz()).date()
    month = f"{moment.month:02d}" if moment.month <= 2 else str(moment.month)
    return f"{_place(commune)}, ngày {moment.day:02d} tháng {month} năm {moment.year}"


def _age(case: Case) -> str:
    child = case.child
    if child.date_of_birth:
        return format_date(child.date_of_birth)
    if child.birth_year:
        return f"Năm sinh {child.birth_year}"
    if child.estimated_age is not None:
        return f"Khoảng {child.estimated_age} tuổi (ước tính)"
    return NOT_RECORDED


def _child_rows(case: Case, *, full: bool = False) -> tuple[Row, ...]:
    child = case.child
    rows = [
        Row("Họ và tên trẻ em", _text(child.full_name)),
        Row("Ngày, tháng, năm sinh (hoặc tuổi ước tính)", _age(case)),
        Row("Giới tính", _vi("sex", child.sex)),
    ]
    if full:
        if child.other_names:
            rows.append(Row("Tên gọi khác", _text(child.other_names)))
        rows.append(Row("Dân tộc", _vi("ethnicity", child.ethnicity)))
        disability = "Không"
        if child.has_disability:
            disability = "Có" + (f" ({_text(child.disability_kind)})" if child.disability_kind else "")
        rows.append(Row("Khuyết tật", disability))
    rows.append(Row("Nơi cư trú", _text(child.address)))
    rows.append(Row("Xã, phường quản lý hồ sơ", _nfc(_commune(case).name)))
    rows.append(Row("Cha, mẹ hoặc người chăm sóc trẻ em", _text(child.guardian_name)))
    if full:
        rows.append(Row("Số điện thoại của cha, mẹ hoặc người chăm sóc", _text(child.guardian_phone)))
    return tuple(rows)


def _risk_at_intake(case: Case) -> str:
    """The risk level recorded at intake: assessments change the case's level later, Mẫu 01 keeps the first."""
    first = db.session.scalar(
        select(CaseChange)
        .where(CaseChange.case_id == case.id, CaseChange.field == "risk_level")
        .order_by(CaseChange.changed_at, CaseChange.id)
        .limit(1)
    )
    return (first.old_value if first is not None and first.old_value else None) or case.risk_level


def _ratings_table(assessment: Assessment) -> Table:
    rows = tuple(
        (str(n), label, _vi("risk_levels", getattr(assessment, rating)), _text(getattr(assessment, note), ""))
        for n, (rating, note, label) in enumerate(RATED_FACTORS, start=1)
    )
    return Table(("TT", "Yếu tố đánh giá", "Mức độ", "Nhận xét"), rows, (7, 58, 20, 65))


def _conclusion_rows(assessment: Assessment) -> tuple[Row, ...]:
    rows = [
        Row("Mức độ nguy cơ theo thang đánh giá", _vi("risk_levels", assessment.suggested_level)),
        Row("Mức độ nguy cơ được xác định", _vi("risk_levels", assessment.risk_level)),
    ]
    if assessment.risk_level != assessment.suggested_level:
        rows.append(Row("Lý do điều chỉnh mức độ nguy cơ", _text(assessment.override_reason)))
    return tuple(rows)


def _emergency_table(case: Case, until: datetime | None = None) -> Table:
    measures = [m for m in operations.emergency_measures_of(case) if until is None or m.recorded_at <= until]
    rows = tuple(
        (format_datetime(m.taken_at), _vi("emergency_measures", m.measure), _text(m.place, ""), _text(m.note, ""))
        for m in measures
    )
    return Table(
        ("Thời gian", "Biện pháp", "Nơi an toàn hiện tại của trẻ", "Ghi chú"),
        rows,
        (22, 45, 38, 45),
        empty="Chưa có biện pháp bảo vệ khẩn cấp nào được ghi nhận.",
    )


def _services_table(plan: SupportPlan) -> Table:
    rows = tuple(
        (
            str(n),
            _vi("service_types", s.service_type),
            _text(s.details, ""),
            _text(s.responsible, ""),
            format_date(s.due_on) if s.due_on else "",
        )
        for n, s in enumerate(plan.services, start=1)
    )
    return Table(
        ("TT", "Hoạt động, dịch vụ", "Nội dung cụ thể", "Người, cơ quan thực hiện", "Thời hạn"),
        rows,
        (7, 33, 50, 38, 22),
        empty="Chưa có hoạt động, dịch vụ nào.",
    )


def _general_rows(case: Case, *rows: Row) -> tuple[Row, ...]:
    return (Row("Số hồ sơ", case.case_number), *rows)


# --- choosing the record a form prints ----------------------------------------------------------------------------


def _as_uuid(record_id: str | uuid.UUID, message) -> uuid.UUID:
    try:
        return uuid.UUID(str(record_id))
    except ValueError:
        raise NotFound(message) from None


def _assessment(case: Case, kind: str, record_id: str | None, missing) -> Assessment:
    if record_id:
        message = _l("No such assessment on this case.")
        assessment = db.session.get(Assessment, _as_uuid(record_id, message))
        if assessment is None or assessment.case_id != case.id or assessment.kind != kind:
            raise NotFound(message)
        return assessment
    of_kind = [a for a in operations.assessments_of(case) if a.kind == kind]
    if not of_kind:
        raise Conflict(missing, code="form_not_ready")
    return of_kind[-1]


def _plan(case: Case, record_id: str | None) -> SupportPlan | None:
    if not record_id:
        return None
    message = _l("No such support plan on this case.")
    plan = db.session.get(SupportPlan, _as_uuid(record_id, message))
    if plan is None or plan.case_id != case.id:
        raise NotFound(message)
    return plan


def was_approved(plan: SupportPlan) -> bool:
    """Say whether the commune chairman approved ``plan`` (Mẫu 05 exists).

    An ended plan was approved: a new cycle starts only from a review, which follows an approved plan.
    """
    return plan.status in ("approved", "ended") and plan.decided_at is not None and plan.decided_by_id is not None


def _approved_plan_before(case: Case, moment: datetime) -> SupportPlan | None:
    approved = [p for p in operations.plans_of(case) if was_approved(p) and p.decided_at <= moment]
    return approved[-1] if approved else None


def choices(case: Case, form_code: str) -> list[tuple[str, str]]:
    """The records a form can be printed from, newest first, as ``(id, label)``: earlier ones are chosen by id."""
    if form_code in ASSESSMENT_KIND_OF:
        kind = ASSESSMENT_KIND_OF[form_code]
        found = [a for a in operations.assessments_of(case) if a.kind == kind]
        return [(str(a.id), format_datetime(a.assessed_at)) for a in reversed(found)]
    if form_code in PLAN_FORMS:
        plans = operations.plans_of(case)
        if form_code == "mau05":
            plans = [p for p in plans if was_approved(p)]
        return [(str(p.id), str(_l("Cycle %(cycle)d", cycle=p.cycle))) for p in reversed(plans)]
    return []


# --- the forms ----------------------------------------------------------------------------------------------------


def _mau01(case: Case, record_id: str | None) -> PrintedForm:
    """Mẫu 01: the intake record of the report about the child."""
    commune = _commune(case)
    codes_rows = tuple(
        Row(CODE_LIST_VI[name], "; ".join(_vi(name, c) for c in case.codes_of(name)))
        for name in CASE_CODE_LISTS
        if case.codes_of(name)
    )
    reporter = (case.reporter_name, case.reporter_phone, case.reporter_address)
    if any(reporter):
        # Mẫu 01: the reporter's details are kept (and printed) only with their consent.
        reporter_section = Section(
            "V. THÔNG TIN VỀ NGƯỜI BÁO TIN (ghi khi người báo tin đồng ý)",
            rows=(
                Row("Họ và tên", _text(reporter[0])),
                Row("Số điện thoại", _text(reporter[1])),
                Row("Địa chỉ", _text(reporter[2])),
            ),
        )
    else:
        reporter_section = Section(
            "V. THÔNG TIN VỀ NGƯỜI BÁO TIN (ghi khi người báo tin đồng ý)",
            paragraphs=("Người báo tin không cung cấp hoặc không đồng ý ghi nhận thông tin cá nhân.",),
        )
    return PrintedForm(
        code="mau01",
        number="Mẫu số 01",
        authority=_authority(commune),
        place_date=place_date(commune, case.received_at),
        title="BIÊN BẢN TIẾP NHẬN THÔNG TIN, THÔNG BÁO, TỐ GIÁC",
        subtitle="về trẻ em bị xâm hại hoặc có nguy cơ bị bạo lực, bóc lột, bỏ rơi",
        sections=(
            Section(
                "I. THÔNG TIN TIẾP NHẬN",
                rows=_general_rows(
                    case,
                    Row("Thời gian tiếp nhận", _moment(case.received_at)),
                    Row("Hình thức tiếp nhận", _vi("report_channels", case.channel)),
                    Row("Nguồn thông tin", _vi("report_sources", case.source)),
                    Row("Người tiếp nhận", _person(case.created_by_id) or NOT_RECORDED),
                ),
            ),
            Section("II. THÔNG TIN VỀ TRẺ EM", rows=_child_rows(case, full=True)),
            Section(
                "III. TÌNH TRẠNG CỦA TRẺ EM",
                rows=(
                    Row("Nội dung thông tin, tình trạng hiện tại của trẻ em", _text(case.summary)),
                    *codes_rows,
                    Row(
                        "Trẻ em đang gặp nguy hiểm tức thời (cần can thiệp khẩn cấp trong 12 giờ)",
                        "Có" if case.immediate_danger else "Không",
                    ),
                    Row("Mức độ nguy cơ ban đầu", _vi("risk_levels", _risk_at_intake(case))),
                ),
            ),
            Section("IV. CÁC BIỆN PHÁP ĐÃ THỰC HIỆN", table=_emergency_table(case)),
            reporter_section,
        ),
        signatures=(Signature("NGƯỜI TIẾP NHẬN", _person(case.created_by_id)),),
        case_number=case.case_number,
    )


def _assessment_form(case: Case, assessment: Assessment, form_code: str) -> PrintedForm:
    commune = _commune(case)
    general = _general_rows(
        case,
        Row("Ngày tiếp nhận thông tin", _day(case.received_at)),
        Row("Thời gian đánh giá", _moment(assessment.assessed_at)),
        Row("Người đánh giá", _person(assessment.assessed_by_id) or NOT_RECORDED),
    )
    child = Section("II. THÔNG TIN VỀ TRẺ EM", rows=_child_rows(case))
    if form_code == "mau02":
        sections = (
            Section("I. THÔNG TIN CHUNG", rows=general),
            child,
            Section("III. ĐÁNH GIÁ CÁC YẾU TỐ NGUY CƠ", table=_ratings_table(assessment)),
            Section(
                "IV. KẾT LUẬN",
                rows=(
                    *_conclusion_rows(assessment),
                    Row(
                        "Trẻ em đang gặp nguy hiểm tức thời (cần can thiệp khẩn cấp trong 12 giờ)",
                        "Có" if case.immediate_danger else "Không",
                    ),
                ),
            ),
            Section(
                "V. BIỆN PHÁP BẢO VỆ KHẨN CẤP ĐÃ THỰC HIỆN", table=_emergency_table(case, until=assessment.assessed_at)
            ),
        )
        return PrintedForm(
            code="mau02",
            number="Mẫu số 02",
            authority=_authority(commune),
            place_date=place_date(commune, assessment.assessed_at),
            title="BIÊN BẢN ĐÁNH GIÁ NGUY CƠ BAN ĐẦU",
            subtitle="đối với trẻ em bị xâm hại hoặc có nguy cơ bị bạo lực, bóc lột, bỏ rơi",
            sections=sections,
            signatures=(Signature("NGƯỜI ĐÁNH GIÁ", _person(assessment.assessed_by_id)),),
            case_number=case.case_number,
            record_id=str(assessment.id),
        )
    # Mẫu 03: the detailed assessment and the case meeting that identifies the child's needs (Art. 27).
    sections = (
        Section(
            "I. THÔNG TIN CHUNG",
            rows=(*general, Row("Thành phần tham dự họp trường hợp", _text(assessment.attendees))),
        ),
        child,
        Section("III. ĐÁNH GIÁ CHI TIẾT CÁC YẾU TỐ NGUY CƠ", table=_ratings_table(assessment)),
        Section(
            "IV. NHU CẦU HỖ TRỢ, CAN THIỆP CỦA TRẺ EM VÀ GIA ĐÌNH",
            paragraphs=(_text(assessment.needs),),
        ),
        Section("V. KẾT LUẬN", rows=_conclusion_rows(assessment)),
    )
    return PrintedForm(
        code="mau03",
        number="Mẫu số 03",
        authority=_authority(commune),
        place_date=place_date(commune, assessment.assessed_at),
        title="BIÊN BẢN ĐÁNH GIÁ CHI TIẾT VÀ HỌP TRƯỜNG HỢP",
        subtitle="xác định nhu cầu hỗ trợ, can thiệp đối với trẻ em",
        sections=sections,
        signatures=(Signature("NGƯỜI ĐÁNH GIÁ", _person(assessment.assessed_by_id)),),
        case_number=case.case_number,
        record_id=str(assessment.id),
    )


def _mau02(case: Case, record_id: str | None) -> PrintedForm:
    """Mẫu 02: the initial risk assessment."""
    missing = _l("No initial risk assessment (Mẫu 02) has been recorded for this case yet.")
    return _assessment_form(case, _assessment(case, "initial", record_id, missing), "mau02")


def _mau03(case: Case, record_id: str | None) -> PrintedForm:
    """Mẫu 03: the detailed assessment and case meeting."""
    missing = _l("No detailed assessment (Mẫu 03) has been recorded for this case yet.")
    return _assessment_form(case, _assessment(case, "detailed", record_id, missing), "mau03")


def _assessment_behind(case: Case, plan: SupportPlan) -> Assessment | None:
    """The latest assessment (detailed first, else initial) the plan was drafted from."""
    cutoff = plan.decided_at if was_approved(plan) else None
    made = [
        a for a in operations.assessments_of(case) if a.kind != "review" and (cutoff is None or a.assessed_at <= cutoff)
    ]
    detailed = [a for a in made if a.kind == "detailed"]
    return (detailed or made or [None])[-1]


def _mau04(case: Case, record_id: str | None) -> PrintedForm:
    """Mẫu 04: the support and intervention plan."""
    plan = _plan(case, record_id) or operations.current_plan(case)
    if plan is None:
        raise Conflict(_l("No support plan (Mẫu 04) has been drafted for this case yet."), code="form_not_ready")
    if not plan.goals and not plan.services:
        raise Conflict(
            _l(
                "The support plan of cycle %(cycle)d has no goals yet: save the plan before printing it.",
                cycle=plan.cycle,
            ),
            code="form_not_ready",
        )
    commune = _commune(case)
    basis = _assessment_behind(case, plan)
    if basis is None:
        assessed = Section("II. KẾT QUẢ ĐÁNH GIÁ NGUY CƠ", paragraphs=("Chưa có kết quả đánh giá nguy cơ.",))
    else:
        kind_vi = "Đánh giá chi tiết (Mẫu số 03)" if basis.kind == "detailed" else "Đánh giá ban đầu (Mẫu số 02)"
        assessed = Section(
            "II. KẾT QUẢ ĐÁNH GIÁ NGUY CƠ",
            rows=(
                Row("Căn cứ", f"{kind_vi} ngày {format_date(basis.assessed_at)}"),
                Row("Mức độ nguy cơ", _vi("risk_levels", basis.risk_level)),
                Row("Nhu cầu của trẻ em", _text(basis.needs)),
            ),
        )
    status = PLAN_STATUS_VI.get(plan.status, plan.status)
    if was_approved(plan):
        status = f"{status}, phê duyệt ngày {format_date(plan.decided_at)}"
    signatures = [Signature("NGƯỜI LẬP KẾ HOẠCH", _person(plan.created_by_id))]
    if was_approved(plan):
        signatures.append(Signature("NGƯỜI PHÊ DUYỆT", _person(plan.decided_by_id)))
    return PrintedForm(
        code="mau04",
        number="Mẫu số 04",
        authority=_authority(commune),
        place_date=place_date(commune, plan.submitted_at or plan.created_at),
        title="KẾ HOẠCH HỖ TRỢ, CAN THIỆP",
        subtitle="đối với trẻ em bị xâm hại hoặc có nguy cơ bị bạo lực, bóc lột, bỏ rơi"
        + ("" if was_approved(plan) else " (dự thảo)"),
        sections=(
            Section("I. THÔNG TIN VỀ TRẺ EM", rows=(Row("Số hồ sơ", case.case_number), *_child_rows(case))),
            assessed,
            Section("III. MỤC TIÊU HỖ TRỢ, CAN THIỆP", paragraphs=(_text(plan.goals),)),
            Section("IV. CÁC HOẠT ĐỘNG, DỊCH VỤ HỖ TRỢ, CAN THIỆP", table=_services_table(plan)),
            Section(
                "V. THEO DÕI, RÀ SOÁT, ĐÁNH GIÁ",
                rows=(
                    Row("Chu kỳ kế hoạch", str(plan.cycle)),
                    Row("Thời gian rà soát, đánh giá", _day(plan.review_on)),
                    Row("Tình trạng kế hoạch", status),
                ),
            ),
        ),
        signatures=tuple(signatures),
        case_number=case.case_number,
        record_id=str(plan.id),
    )


def _mau05(case: Case, record_id: str | None) -> PrintedForm:
    """Mẫu 05: the commune chairman's decision approving the plan (Decree 56/2017, Art. 28.2-3)."""
    plan = _plan(case, record_id)
    if plan is None:
        approved = [p for p in operations.plans_of(case) if was_approved(p)]
        if not approved:
            raise Conflict(
                _l("The support plan has not been approved yet: Mẫu 05 is the decision approving it."),
                code="form_not_ready",
            )
        plan = approved[-1]
    elif not was_approved(plan):
        raise Conflict(
            _l(
                "The support plan of cycle %(cycle)d has not been approved: Mẫu 05 is the decision approving it.",
                cycle=plan.cycle,
            ),
            code="form_not_ready",
        )
    commune = _commune(case)
    commune_vi = _nfc(commune.name)
    child = case.child
    review = f" trước ngày {format_date(plan.review_on)}" if plan.review_on else ""
    article_1_notes = [f"Thời gian rà soát, đánh giá kết quả thực hiện kế hoạch: {_day(plan.review_on)}."]
    if plan.decision_note:
        article_1_notes.append(f"Ý kiến của người phê duyệt: {_text(plan.decision_note)}")
    return PrintedForm(
        code="mau05",
        number="Mẫu số 05",
        authority=_authority(commune),
        reference="Số: ........../QĐ-UBND",
        place_date=place_date(commune, plan.decided_at),
        title="QUYẾT ĐỊNH",
        subtitle="Về việc phê duyệt kế hoạch hỗ trợ, can thiệp đối với trẻ em",
        sections=(
            Section(f"CHỦ TỊCH ỦY BAN NHÂN DÂN {commune_vi.upper()}", centered=True),
            Section(
                italic=True,
                paragraphs=(
                    "Căn cứ Luật Tổ chức chính quyền địa phương;",
                    "Căn cứ Luật Trẻ em ngày 05 tháng 4 năm 2016;",
                    "Căn cứ Nghị định số 56/2017/NĐ-CP ngày 09 tháng 5 năm 2017 của Chính phủ quy định chi tiết "
                    "Luật Trẻ em;",
                    "Xét đề nghị của công chức phụ trách công tác trẻ em"
                    + (f" ({_person(plan.created_by_id)})" if _person(plan.created_by_id) else "")
                    + ".",
                ),
            ),
            Section("QUYẾT ĐỊNH:", centered=True),
            Section(
                "Điều 1.",
                paragraphs=(
                    f"Phê duyệt kế hoạch hỗ trợ, can thiệp (chu kỳ {plan.cycle}) đối với trẻ em có thông tin sau:",
                ),
                rows=(
                    Row("Họ và tên trẻ em", _text(child.full_name)),
                    Row("Số hồ sơ", case.case_number),
                    Row("Ngày, tháng, năm sinh (hoặc tuổi ước tính)", _age(case)),
                    Row("Giới tính", _vi("sex", child.sex)),
                    Row("Nơi cư trú", _text(child.address)),
                    Row("Mục tiêu hỗ trợ, can thiệp", _text(plan.goals)),
                    Row("Các hoạt động, dịch vụ hỗ trợ, can thiệp", "như bảng dưới đây"),
                ),
                table=_services_table(plan),
                notes=tuple(article_1_notes),
            ),
            Section(
                "Điều 2.",
                paragraphs=(
                    "Các cơ quan, tổ chức, cá nhân có tên tại Điều 1 tổ chức thực hiện các hoạt động, dịch vụ hỗ trợ, "
                    "can thiệp theo đúng nội dung và thời hạn. Công chức phụ trách công tác trẻ em theo dõi, "
                    f"rà soát, đánh giá kết quả thực hiện kế hoạch{review} và báo cáo Chủ tịch Ủy ban nhân dân.",
                ),
            ),
            Section(
                "Điều 3.",
                paragraphs=(
                    "Quyết định này có hiệu lực kể từ ngày ký. Văn phòng Ủy ban nhân dân, công chức phụ trách công "
                    "tác trẻ em, gia đình, người chăm sóc trẻ em và các cơ quan, tổ chức, cá nhân có liên quan chịu "
                    "trách nhiệm thi hành Quyết định này.",
                ),
            ),
        ),
        signatures=(Signature("CHỦ TỊCH", _person(plan.decided_by_id), hint="(Ký, ghi rõ họ tên, đóng dấu)"),),
        recipients=("- Như Điều 3;", "- Lưu: VT, hồ sơ trẻ em."),
        case_number=case.case_number,
        record_id=str(plan.id),
    )


def _mau06(case: Case, record_id: str | None) -> PrintedForm:
    """Mẫu 06: the review of the plan, with the risk scale rated again (Art. 30)."""
    missing = _l("No review (Mẫu 06) has been recorded for this case yet.")
    review = _assessment(case, "review", record_id, missing)
    commune = _commune(case)
    plan = _approved_plan_before(case, review.assessed_at)
    reviewed_day = review.assessed_at.astimezone(local_tz()).date()
    services = [
        s
        for s in operations.services_of(case)
        if s.delivered_on <= reviewed_day and (plan is None or s.plan_id == plan.id)
    ]
    since = plan.decided_at.astimezone(local_tz()).date() if plan else None
    visits = [
        v
        for v in operations.visits_of(case)
        if v.visited_on <= reviewed_day and (since is None or v.visited_on >= since)
    ]
    plan_text = (
        f"Chu kỳ {plan.cycle}, phê duyệt ngày {format_date(plan.decided_at)}"
        if plan
        else "Chưa có kế hoạch hỗ trợ, can thiệp được phê duyệt"
    )
    return PrintedForm(
        code="mau06",
        number="Mẫu số 06",
        authority=_authority(commune),
        place_date=place_date(commune, review.assessed_at),
        title="BIÊN BẢN RÀ SOÁT, ĐÁNH GIÁ",
        subtitle="kết quả thực hiện kế hoạch hỗ trợ, can thiệp đối với trẻ em",
        sections=(
            Section(
                "I. THÔNG TIN CHUNG",
                rows=_general_rows(
                    case,
                    Row("Kế hoạch được rà soát", plan_text),
                    Row("Thời gian rà soát, đánh giá", _moment(review.assessed_at)),
                    Row("Người rà soát, đánh giá", _person(review.assessed_by_id) or NOT_RECORDED),
                ),
            ),
            Section("II. THÔNG TIN VỀ TRẺ EM", rows=_child_rows(case)),
            Section("III. KẾT QUẢ THỰC HIỆN KẾ HOẠCH"),
            Section("1. Các dịch vụ đã cung cấp", table=_delivered_table(services)),
            Section("2. Các lần theo dõi, thăm trẻ em", table=_visits_table(visits)),
            Section("IV. ĐÁNH GIÁ LẠI MỨC ĐỘ NGUY CƠ", table=_ratings_table(review)),
            Section(rows=_conclusion_rows(review)),
            Section(
                "V. TÌNH TRẠNG CỦA TRẺ EM VÀ MỨC ĐỘ AN TOÀN CỦA MÔI TRƯỜNG SỐNG",
                paragraphs=(_text(review.findings),),
            ),
            Section(
                "VI. ĐỀ XUẤT",
                rows=(Row("Kết quả rà soát", REVIEW_OUTCOME_VI.get(review.review_outcome or "", NOT_RECORDED)),),
            ),
        ),
        signatures=(Signature("NGƯỜI RÀ SOÁT, ĐÁNH GIÁ", _person(review.assessed_by_id)),),
        case_number=case.case_number,
        record_id=str(review.id),
    )


def _delivered_table(services: list[ServiceRecord]) -> Table:
    rows = tuple(
        (
            format_date(s.delivered_on),
            _vi("service_types", s.service_type),
            _text(s.provider, ""),
            SERVICE_OUTCOME_VI.get(s.outcome, s.outcome),
        )
        for s in services
    )
    return Table(
        ("Ngày", "Dịch vụ", "Người, cơ sở cung cấp", "Kết quả"),
        rows,
        (20, 45, 50, 35),
        empty="Chưa có dịch vụ nào được ghi nhận.",
    )


def _visits_table(visits: list[MonitoringVisit]) -> Table:
    rows = tuple(
        (format_date(v.visited_on), VISIT_OUTCOME_VI.get(v.outcome, v.outcome), _text(v.notes, "")) for v in visits
    )
    return Table(("Ngày", "Kết quả theo dõi", "Ghi chú"), rows, (20, 30, 100), empty="Chưa có lần theo dõi nào.")


_BUILDERS: dict[str, Callable[[Case, str | None], PrintedForm]] = {
    "mau01": _mau01,
    "mau02": _mau02,
    "mau03": _mau03,
    "mau04": _mau04,
    "mau05": _mau05,
    "mau06": _mau06,
}


def build_form(case: Case, form_code: str, record_id: str | None = None) -> PrintedForm:
    """Assemble form ``form_code`` (``mau01`` .. ``mau06``) of ``case``.

    :param record_id: the assessment (Mẫu 02, 03, 06) or plan (Mẫu 04, 05) to print; by default the latest
        (for Mẫu 05, the latest approved plan). Mẫu 01 has nothing to choose and ignores it.
    :raises NotFound: an unknown form, or ``record_id`` names no record of this form on this case.
    :raises Conflict: the form has nothing to print yet (``form_not_ready``); the message names what is missing.
    """
    builder = _BUILDERS.get(form_code)
    if builder is None:
        raise NotFound(_l("No such form."))
    return builder(case, record_id or None)


def record_printed(case: Case, actor: User, printed: PrintedForm, file_format: str) -> None:
    """Record that ``actor`` printed a form of ``case`` (the child's details left the screen)."""
    audit.record(
        "case.form_printed",
        object_type="case",
        object_id=case.id,
        actor=actor,
        details={"form": printed.code, "format": file_format, "record": printed.record_id},
    )


# --- the PDF ------------------------------------------------------------------------------------------------------

FONT = "NotoSerif"
FONT_FILES = {"": "NotoSerif-Regular.ttf", "B": "NotoSerif-Bold.ttf", "I": "NotoSerif-Italic.ttf"}
NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
# Decree 30/2020/NĐ-CP, Annex I: A4, margins top and bottom 20-25 mm, left 30-35 mm, right 15-20 mm; text 13-14 pt.
MARGINS = {"left": 30.0, "top": 20.0, "right": 15.0, "bottom": 20.0}
TEXT_SIZE = 12.5
LINE = 6.0
TABLE_SIZE = 10.5
TABLE_LINE = 5.0
TABLE_PADDING = 1.2
AUTHORITY_WIDTH = 62.0


class _FormPDF(FPDF):
    """An A4 page with the form's number, the case number and "Trang x/y" in the footer."""

    def __init__(self, printed: PrintedForm) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.printed = printed
        self.set_margins(MARGINS["left"], MARGINS["top"], MARGINS["right"])
        self.set_auto_page_break(auto=True, margin=MARGINS["bottom"])
        for style, name in FONT_FILES.items():
            self.add_font(FONT, style, str(FONT_DIR / name))
        self.set_lang("vi")
        # The document's metadata names the form, never the child.
        self.set_title(f"{printed.number} - {printed.case_number}")
        self.set_creator("casework")

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FONT, "I", 9)
        self.cell(
            0,
            5,
            f"{self.printed.number} · Hồ sơ số {self.printed.case_number} · Trang {self.page_no()}/{{nb}}",
            align="C",
        )


def _rule(pdf: FPDF, centre: float, y: float, width: float) -> None:
    pdf.line(centre - width / 2, y, centre + width / 2, y)


def _fitting_size(pdf: FPDF, text: str, width: float, style: str, size: float) -> float:
    """The largest size up to ``size`` at which ``text`` fits on one line of ``width``."""
    while size > 9:
        pdf.set_font(FONT, style, size)
        if pdf.get_string_width(text) <= width - 1:
            break
        size -= 0.5
    return size


def _draw_header(pdf: _FormPDF, printed: PrintedForm) -> None:
    x0, width = pdf.l_margin, pdf.epw
    right = width - AUTHORITY_WIDTH
    pdf.set_font(FONT, "B", 10)
    pdf.cell(0, 5, printed.number, align="R", new_x="LMARGIN", new_y="NEXT")
    y0 = pdf.get_y() + 1
    # The issuing body, on the left.
    pdf.set_xy(x0, y0)
    for line in printed.authority:
        pdf.set_font(FONT, "B", _fitting_size(pdf, line, AUTHORITY_WIDTH, "B", 12))
        pdf.multi_cell(AUTHORITY_WIDTH, 5.5, line, align="C", new_x="LEFT", new_y="NEXT")
    _rule(pdf, x0 + AUTHORITY_WIDTH / 2, pdf.get_y() + 0.8, 22)
    if printed.reference:
        pdf.set_y(pdf.get_y() + 2.5)
        pdf.set_font(FONT, "", 12)
        pdf.multi_cell(AUTHORITY_WIDTH, 5.5, printed.reference, align="C", new_x="LEFT", new_y="NEXT")
    left_end = pdf.get_y()
    # The national name and motto, on the right, with the place and date under them.
    pdf.set_xy(x0 + AUTHORITY_WIDTH, y0)
    pdf.set_font(FONT, "B", _fitting_size(pdf, NATION, right, "B", 12))
    pdf.cell(right, 5.5, NATION, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "B", _fitting_size(pdf, MOTTO, right, "B", 13))
    pdf.cell(right, 6, MOTTO, align="C", new_x="LEFT", new_y="NEXT")
    _rule(pdf, x0 + AUTHORITY_WIDTH + right / 2, pdf.get_y() + 0.5, pdf.get_string_width(MOTTO))
    pdf.set_xy(x0 + AUTHORITY_WIDTH, pdf.get_y() + 3)
    pdf.set_font(FONT, "I", 12)
    pdf.multi_cell(right, 6, printed.place_date, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_y(max(left_end, pdf.get_y()) + 7)
    # The title.
    pdf.set_font(FONT, "B", 14)
    pdf.multi_cell(0, 7, printed.title, align="C", new_x="LMARGIN", new_y="NEXT")
    if printed.subtitle:
        pdf.set_font(FONT, "B", 13)
        pdf.multi_cell(0, 6.5, printed.subtitle, align="C", new_x="LMARGIN", new_y="NEXT")
    _rule(pdf, x0 + width / 2, pdf.get_y() + 1, 40)
    pdf.ln(6)


def _row_height(pdf: FPDF, cells: tuple[str, ...], widths: list[float]) -> float:
    lines = max(
        len(pdf.multi_cell(w - 2 * TABLE_PADDING, TABLE_LINE, text or " ", dry_run=True, output="LINES"))
        for text, w in zip(cells, widths, strict=True)
    )
    return lines * TABLE_LINE + 2 * TABLE_PADDING


def _draw_table(pdf: _FormPDF, table: Table) -> None:
    if not table.rows:
        pdf.set_font(FONT, "I", TEXT_SIZE)
        pdf.multi_cell(0, LINE, table.empty, new_x="LMARGIN", new_y="NEXT")
        return
    total = sum(table.widths)
    widths = [pdf.epw * w / total for w in table.widths]
    pdf.set_font(FONT, "B", TABLE_SIZE)
    heading = _row_height(pdf, table.columns, widths)
    pdf.set_font(FONT, "", TABLE_SIZE)
    room = pdf.eph - heading - 10
    if any(_row_height(pdf, row, widths) > room for row in table.rows):
        # A row taller than a page cannot be drawn as a table row: the same content, one row after another.
        for row in table.rows:
            for label, value in zip(table.columns, row, strict=True):
                pdf.set_font(FONT, "B", TEXT_SIZE)
                pdf.write(LINE, f"{label}: ")
                pdf.set_font(FONT, "", TEXT_SIZE)
                pdf.write(LINE, value or "")
                pdf.ln(LINE)
            pdf.ln(2)
        return
    with pdf.table(
        col_widths=table.widths,
        width=pdf.epw,
        align="LEFT",
        line_height=TABLE_LINE,
        text_align="LEFT",
        v_align="TOP",
        padding=TABLE_PADDING,
        headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
    ) as drawn:
        for cells in (table.columns, *table.rows):
            row = drawn.row()
            for text in cells:
                row.cell(text)
    pdf.ln(2)


def _draw_section(pdf: _FormPDF, section: Section) -> None:
    align = "C" if section.centered else "L"
    if section.heading:
        if pdf.get_y() + 20 > pdf.page_break_trigger:
            pdf.add_page()  # never a heading alone at the foot of a page
        pdf.set_font(FONT, "B", TEXT_SIZE)
        pdf.multi_cell(0, LINE + 0.5, section.heading, align=align, new_x="LMARGIN", new_y="NEXT")
    for paragraph in section.paragraphs:
        pdf.set_font(FONT, "I" if section.italic else "", TEXT_SIZE)
        pdf.multi_cell(0, LINE, paragraph, align="C" if section.centered else "J", new_x="LMARGIN", new_y="NEXT")
    for row in section.rows:
        pdf.set_font(FONT, "B", TEXT_SIZE)
        pdf.write(LINE, f"{row.label}: ")
        pdf.set_font(FONT, "", TEXT_SIZE)
        pdf.write(LINE, row.value)
        pdf.ln(LINE)
    if section.table is not None:
        pdf.ln(1)
        _draw_table(pdf, section.table)
    for note in section.notes:
        pdf.set_font(FONT, "", TEXT_SIZE)
        pdf.multi_cell(0, LINE, note, align="J", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _draw_signatures(pdf: _FormPDF, printed: PrintedForm) -> None:
    if pdf.get_y() + 50 > pdf.page_break_trigger:
        pdf.add_page()  # a signature block is never split across pages
    pdf.ln(4)
    y0 = pdf.get_y()
    half = pdf.epw / 2
    signatures = printed.signatures
    if printed.recipients or len(signatures) == 1:
        # One signer signs on the right; a decision lists its recipients on the left.
        columns = [(pdf.l_margin + half, half, signatures[0])] if signatures else []
    else:
        width = pdf.epw / len(signatures)
        columns = [(pdf.l_margin + n * width, width, s) for n, s in enumerate(signatures)]
    bottom = y0
    if printed.recipients:
        pdf.set_xy(pdf.l_margin, y0)
        pdf.set_font(FONT, "B", 11.5)
        pdf.multi_cell(half, 5.5, "Nơi nhận:", align="L", new_x="LEFT", new_y="NEXT")
        pdf.set_font(FONT, "", 10.5)
        for line in printed.recipients:
            pdf.multi_cell(half, 5, line, align="L", new_x="LEFT", new_y="NEXT")
        bottom = pdf.get_y()
    for x, width, signature in columns:
        pdf.set_xy(x, y0)
        pdf.set_font(FONT, "B", TEXT_SIZE)
        pdf.multi_cell(width, LINE, signature.title, align="C", new_x="LEFT", new_y="NEXT")
        pdf.set_font(FONT, "I", 11)
        pdf.multi_cell(width, 5.5, signature.hint, align="C", new_x="LEFT", new_y="NEXT")
        pdf.set_xy(x, pdf.get_y() + 24)
        pdf.set_font(FONT, "B", TEXT_SIZE)
        pdf.multi_cell(width, LINE, signature.name or " ", align="C", new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_y(bottom)


def render_pdf(printed: PrintedForm) -> bytes:
    """Draw ``printed`` as an A4 PDF: national name and motto, title, rows, tables, signature blocks, page numbers."""
    pdf = _FormPDF(printed)
    pdf.add_page()
    _draw_header(pdf, printed)
    for section in printed.sections:
        _draw_section(pdf, section)
    _draw_signatures(pdf, printed)
    return bytes(pdf.output())
