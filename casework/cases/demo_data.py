"""Synthetic children and cases for the demo and the benchmarks (``casework demo --cases N``).

Everything here is invented by a seeded generator, and looks like a register a province could keep: Vietnamese
names with their real frequencies and diacritics (and the naming customs of the Dao, Mông, Tày, Thái and Ê-đê
where they live), official commune codes of several provinces, groups, risks and sources in plausible proportions,
cases at every stage of the support procedure, reported over the last three years, some of them overdue.

:func:`plan` is pure: the same seed, moment and workers give the same children and cases. :func:`generate` writes a
plan the fast way, rows built in Python and inserted with Core ``insert()`` executemany in chunks, yet stores exactly
what the ORM stores: each value encrypted with :func:`~casework.security.fields.encrypt_value` for its table, column
and row, and the blind-index terms of :meth:`Encrypted.terms` under the current data key. Generated cases are found
by search, decrypted and shown like any other. One audit event records the whole generation, not one per row.
"""

from __future__ import annotations

import csv
import random
import time
import uuid
from bisect import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import accumulate
from typing import Any

from sqlalchemy import insert, select, update

from casework import audit, codes
from casework.auth.models import User, UserCommune
from casework.auth.roles import SOCIAL_WORKER
from casework.cases.models import (
    Assignment,
    Case,
    CaseCode,
    CaseNumberSequence,
    Child,
    SiblingLink,
)
from casework.extensions import db
from casework.i18n import local_tz
from casework.locations.models import Commune
from casework.locations.operations import DATA_DIR
from casework.security import text as normal
from casework.security.fields import BlindIndexEntry, Encrypted, encrypt_value
from casework.security.keys import keyring

#: Rows per INSERT batch: big enough to amortise round trips, small enough to keep memory flat at 100,000 cases.
CHUNK_SIZE = 2000
YEARS = 3

# --- weighted choices -------------------------------------------------------------------------------------------


class Weighted:
    """Choose among values with weights, from a given random generator (so that a seed decides everything)."""

    def __init__(self, pairs: Mapping[Any, float] | Sequence[tuple[Any, float]]) -> None:
        items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        self.values = [value for value, _ in items]
        self.cumulative = list(accumulate(weight for _, weight in items))

    def pick(self, rng: random.Random) -> Any:
        return self.values[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


def _chance(rng: random.Random, p: float) -> bool:
    return rng.random() < p


# --- where: provinces, communes --------------------------------------------------------------------------------

#: Share of the cases per province. Quảng Ninh (22), where the demo users work, gets the largest share; Cao Bằng,
#: Sơn La and Lào Cai bring the northern mountains and their minorities, Đắk Lắk the Central Highlands.
PROVINCE_SHARES = {"22": 35, "01": 18, "79": 17, "40": 7, "04": 6, "14": 6, "15": 6, "66": 5}
#: Communes with a share of all cases of their own: those of the demo social workers (``casework/demo.py``), so
#: that their caseloads are full. The rest of the province's share spreads over its other communes.
FOCUS_COMMUNES = {"06970": 10, "06979": 10}
MOUNTAIN_PROVINCES = frozenset({"04", "14", "15"})
SOUTHERN_PROVINCES = frozenset({"79", "66"})


@cache
def _units() -> tuple[dict[str, str], dict[str, list[tuple[str, str, str]]]]:
    """Province names, and the communes of each province as (code, name, type), from the units shipped."""
    with (DATA_DIR / "provinces.csv").open(encoding="utf-8") as fh:
        provinces = {row["code"]: normal.nfc(row["name"]) for row in csv.DictReader(fh)}
    communes: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    with (DATA_DIR / "communes.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            communes[row["province_code"]].append((row["code"], normal.nfc(row["name"]), row["type"]))
    return provinces, dict(communes)


def _commune_chooser(rng: random.Random) -> tuple[Weighted, dict[str, tuple[str, str, str]]]:
    """A weighted choice of commune codes: the focus communes by their share, the others of each province by a
    Zipf-like weight (a few busy communes, many quiet ones) in an order the seed decides."""
    _, communes = _units()
    weights: dict[str, float] = {}
    info: dict[str, tuple[str, str, str]] = {}
    for province, share in PROVINCE_SHARES.items():
        units = communes[province]
        focus = [u for u in units if u[0] in FOCUS_COMMUNES]
        others = [u for u in units if u[0] not in FOCUS_COMMUNES]
        rng.shuffle(others)
        rest = share - sum(FOCUS_COMMUNES[u[0]] for u in focus)
        zipf = [1 / (rank + 1) ** 0.9 for rank in range(len(others))]
        total = sum(zipf)
        for unit in focus:
            weights[unit[0]] = FOCUS_COMMUNES[unit[0]]
        for unit, weight in zip(others, zipf, strict=True):
            weights[unit[0]] = rest * weight / total
        for code, name, kind in units:
            info[code] = (province, name, kind)
    return Weighted(weights), info


# --- who: ethnicity and names -------------------------------------------------------------------------------------

#: Ethnicity (``codes.toml``) per province, roughly as the 2019 census counts them; communes listed apart.
ETHNICITY_BY_PROVINCE = {
    "01": {"01": 97, "06": 1.5, "02": 0.5, "09": 0.5, "04": 0.5},
    "79": {"01": 93, "04": 5, "05": 1.2, "17": 0.5, "07": 0.3},
    "22": {"01": 88, "09": 5, "02": 3, "18": 2, "15": 1.5, "04": 0.5},
    "40": {"01": 86, "03": 10, "29": 2, "08": 2},
    "04": {"02": 40, "07": 31, "08": 11, "09": 10, "01": 6, "15": 2},
    "14": {"03": 53, "01": 17, "08": 16, "06": 8, "09": 2, "29": 2, "34": 1, "39": 1},
    "15": {"01": 45, "08": 18, "02": 12, "09": 12, "03": 5, "25": 3, "07": 3, "35": 2},
    "66": {"01": 70, "12": 17, "20": 3, "07": 3, "02": 3, "10": 2, "08": 2},
}
#: Ba Chẽ and Kỳ Thượng, mountain communes of Quảng Ninh where many Dao, Tày and Sán Chay families live.
ETHNICITY_BY_COMMUNE = {
    "06970": {"01": 45, "09": 30, "02": 12, "15": 10, "04": 3},
    "06979": {"09": 70, "01": 15, "02": 10, "15": 5},
}


def _weights(text: str) -> dict[str, float]:
    """Read ``"Nguyễn 38.4, Trần 12.1"`` as ``{"Nguyễn": 38.4, "Trần": 12.1}``: name tables read like their sources."""
    pairs = (item.strip().rpartition(" ") for item in text.split(","))
    return {normal.nfc(name): float(weight) for name, _, weight in pairs}


# Family names of the Kinh with their frequencies (per cent, as usually cited from Lê Trung Hoá's survey). Hoàng and
# Huỳnh, Vũ and Võ are one name each, said differently in the north and the south.
_KINH_COMMON = _weights(
    "Nguyễn 38.4, Trần 12.1, Lê 9.5, Phạm 7.0, Phan 4.5, Đặng 2.1, Bùi 2.0, Đỗ 1.4, Hồ 1.3, Ngô 1.3, Dương 1.0, "
    "Đinh 0.8, Trịnh 0.6, Lý 0.5, Đoàn 0.5, Trương 0.5, Lâm 0.4, Mai 0.4, Cao 0.4, Hà 0.4, Lương 0.3, Tạ 0.3, "
    "Lưu 0.3, Chu 0.2, Tô 0.2, Thái 0.2, Quách 0.1, Kiều 0.1, La 0.1"
)
KINH_FAMILIES_NORTH = {**_KINH_COMMON, **_weights("Hoàng 5.0, Huỳnh 0.1, Vũ 3.7, Võ 0.2")}
KINH_FAMILIES_SOUTH = {**_KINH_COMMON, **_weights("Huỳnh 4.5, Hoàng 0.6, Võ 3.5, Vũ 0.4")}

# Children born since 2010 more often carry a middle name other than Văn or Thị, and sometimes two.
MIDDLE_MALE = _weights(
    "Văn 18, Minh 14, Đức 10, Gia 10, Bảo 7, Quốc 6, Hoàng 6, Anh 5, Hữu 5, Thành 4, Đăng 4, Nhật 4, Thanh 4, "
    "Tuấn 3, Trung 3"
)
MIDDLE_FEMALE = _weights(
    "Thị 22, Ngọc 14, Thu 6, Thanh 6, Minh 6, Phương 6, Bảo 6, Khánh 6, Kim 5, Mai 4, Quỳnh 4, Hải 3, Hoài 3, "
    "Diệu 3, Tường 2, Tú 2"
)
GIVEN_MALE = _weights(
    "Minh 6, Anh 5, Huy 5, Khang 5, Phúc 5, Bảo 4, Nam 4, Khoa 4, Long 4, Quân 4, Đạt 4, Duy 4, Khôi 4, An 4, "
    "Đức 3, Tuấn 3, Dũng 3, Hùng 3, Hải 3, Sơn 3, Thành 3, Phong 3, Hiếu 3, Kiên 3, Lâm 3, Thịnh 3, Tùng 3, Lộc 3, "
    "Hưng 3, Nguyên 3, Phát 3, Nhật 2, Tài 2, Trung 2, Vinh 2, Thiện 2, Tín 2, Toàn 2, Việt 2, Quang 2"
)
GIVEN_FEMALE = _weights(
    "Anh 6, Linh 6, Trang 5, Thảo 5, Vy 5, Nhi 5, Hân 5, Ngọc 4, Hà 4, Hương 4, Mai 4, My 4, Ngân 4, Thư 4, Chi 4, "
    "Lan 3, Quỳnh 3, Trâm 3, Uyên 3, Yến 3, Hoa 3, Hằng 3, Giang 3, Huyền 3, Phương 3, An 3, Như 3, Hạnh 2, Tâm 2, "
    "Thủy 2, Diệp 2, Châu 2, Nhung 2, Oanh 2, Loan 2, Tuyết 2, Khuê 1"
)
# Parents, grandparents and reporters: Văn and Thị, and the given names of their generation.
ADULT_GIVEN = {
    "male": Weighted(
        _weights(
            "Hùng 5, Dũng 5, Tuấn 5, Thắng 4, Cường 4, Hải 4, Sơn 4, Long 3, Nam 3, Bình 3, Hòa 3, Thành 3, "
            "Trung 3, Quang 3, Tùng 3, Hưng 3, Phong 2, Toàn 2, Lực 2, Tiến 2"
        )
    ),
    "female": Weighted(
        _weights(
            "Hương 5, Lan 5, Hoa 5, Hằng 4, Thủy 4, Nga 4, Hà 4, Mai 4, Loan 3, Liên 3, Tuyết 3, Huệ 3, Nhung 3, "
            "Yến 3, Oanh 2, Thắm 2, Hạnh 2, Hiền 2, Dung 2, Phượng 2"
        )
    ),
}
NICKNAMES = ("Bin", "Bơ", "Na", "Su", "Tí", "Tũn", "Mít", "Bống", "Cún", "Gạo", "Sóc", "Bi", "Ken", "Tôm", "Xu", "Bông")


@dataclass(frozen=True)
class NameScheme:
    """How one people names its children: family names, middle names, given names, and their order."""

    families: Mapping[str, float]
    middle_male: Mapping[str, float] = field(default_factory=lambda: MIDDLE_MALE)
    middle_female: Mapping[str, float] = field(default_factory=lambda: MIDDLE_FEMALE)
    given_male: Mapping[str, float] = field(default_factory=lambda: GIVEN_MALE)
    given_female: Mapping[str, float] = field(default_factory=lambda: GIVEN_FEMALE)
    #: Ê-đê, Gia-rai, Mnông: "Y Blim Niê", "H'Hen Niê": the given name first, Y for boys and H' for girls, and the
    #: mother's family name (matrilineal).
    given_first: bool = False
    #: Share of children with two middle names ("Nguyễn Ngọc Bảo Anh").
    double_middle: float = 0.15


NAME_SCHEMES = {
    "kinh_north": NameScheme(KINH_FAMILIES_NORTH),
    "kinh_south": NameScheme(KINH_FAMILIES_SOUTH),
    "tay": NameScheme(
        _weights("Hoàng 22, Nông 18, Lục 10, Lương 8, Ma 8, Hà 7, Triệu 6, Bế 6, Lăng 5, Đàm 4"), double_middle=0.05
    ),
    "thai": NameScheme(
        _weights("Lò 25, Cầm 15, Quàng 12, Lường 12, Điêu 8, Hà 8, Vi 6, Lữ 5, Tòng 5, Lộc 4"),
        middle_male=_weights("Văn 80, Minh 10, Đức 10"),
        middle_female=_weights("Thị 85, Ngọc 10, Thu 5"),
        given_male={**GIVEN_MALE, **_weights("Ơn 4, Piệng 3, Xôm 3, Panh 3")},
        given_female={**GIVEN_FEMALE, **_weights("Ỏn 4, Xiêng 3, Bua 3, Pâng 3")},
        double_middle=0.0,
    ),
    "dao": NameScheme(
        _weights("Triệu 30, Bàn 25, Lý 15, Đặng 12, Chìu 8, Phùn 5, Tằng 5"),
        middle_male=_weights("Văn 50, Tài 10, Tiến 10, Quý 10, Minh 10, Đức 10"),
        middle_female=_weights("Thị 80, Ngọc 10, Kim 10"),
        given_male=_weights(
            "Sình 6, Phin 6, Chiêu 5, Quẩy 5, Vần 5, Tòn 4, Sếnh 4, Cao 3, Minh 4, Hùng 3, Phúc 3, Dũng 3, Hải 3, "
            "Tài 3, Quang 3"
        ),
        given_female=_weights(
            "Mẩy 6, Mùi 6, Chàn 5, Liềng 5, Nải 4, Xuân 4, Hoa 4, Phương 3, Duyên 3, Vân 3, Thu 3, Hạnh 3, Lan 3"
        ),
        double_middle=0.0,
    ),
    "mong": NameScheme(
        _weights("Giàng 20, Sùng 15, Vàng 15, Thào 12, Lầu 8, Hầu 8, Mùa 8, Lý 6, Cứ 4, Sình 4"),
        middle_male=_weights("A 50, Seo 20, Mí 20, Văn 10"),
        middle_female=_weights("Thị 85, Seo 10, Mí 5"),
        given_male=_weights("Páo 5, Dính 5, Chứ 5, Sử 4, Dế 4, Pó 4, Lử 4, Chơ 3, Tủa 3, Nhà 3, Chính 3, Thắng 3"),
        given_female=_weights("Mỷ 5, Máy 5, Dở 4, Chi 4, Xúa 4, Pằng 4, Sua 3, Ly 4, Của 3, Dua 3, Mai 3, Súa 3"),
        double_middle=0.0,
    ),
    "muong": NameScheme(_weights("Bùi 35, Đinh 25, Quách 10, Hà 10, Cao 10, Xa 5, Trương 5")),
    "hoa": NameScheme(_weights("Lý 20, Trương 15, Lâm 15, Hứa 10, Quách 10, Lưu 10, Mã 8, Tăng 7")),
    "san_diu": NameScheme(_weights("Trần 25, Lưu 20, Diệp 15, Tạ 15, Phương 10, Lý 10, Đặng 5")),
    "cham": NameScheme(_weights("Đàng 30, Thập 20, Quảng 15, Báo 15, Châu 10, Lưu 10"), double_middle=0.0),
    "ha_nhi": NameScheme(_weights("Lý 30, Chu 25, Phu 20, Pờ 15, Sừng 10"), double_middle=0.0),
    "khmer": NameScheme(
        _weights("Thạch 35, Sơn 25, Danh 15, Kim 15, Lâm 10"),
        middle_male=_weights("Văn 60, Minh 40"),
        given_male=_weights("Sóc 5, Phol 5, Rin 5, Pha 5, Sa Rây 4, Vĩnh 4"),
        given_female=_weights("Sa Ri 5, Chanh Đa 5, Sô Phi 4, Mây 5, Pha Ly 4, Sóc Kha 4"),
        double_middle=0.0,
    ),
    "highland": NameScheme(
        _weights("Niê 25, Mlô 15, Êban 15, Ksơr 12, Byă 10, Adrơng 8, Knul 8, Siu 7, Nay 7"),
        given_male=_weights("Blim 5, Khoa 4, Hùng 4, Nguôn 4, Thuôn 4, Sing 4, Điêm 3, Jôn 3, Bhiêr 3, Tlang 3"),
        given_female=_weights("Hen 5, Bia 4, Nhi 4, Mai 4, Yơn 4, Ly 4, Diệp 3, Juen 3, Rim 3, Xuân 3"),
        given_first=True,
    ),
}
SCHEME_OF_ETHNICITY = {
    **dict.fromkeys(("02", "07", "15", "25"), "tay"),  # Tày, Nùng, Sán Chay, Giáy
    **dict.fromkeys(("03", "29", "34", "39"), "thai"),  # Thái, Khơ-mú, Xinh-mun, La Ha
    **dict.fromkeys(("12", "20", "10"), "highland"),  # Ê-đê, Mnông, Gia-rai
    "06": "muong",
    "04": "hoa",
    "18": "san_diu",
    "17": "cham",
    "35": "ha_nhi",
    "09": "dao",
    "08": "mong",
    "05": "khmer",
}


def _scheme_for(ethnicity: str, province: str) -> str:
    if ethnicity == "01":
        return "kinh_south" if province in SOUTHERN_PROVINCES else "kinh_north"
    return SCHEME_OF_ETHNICITY.get(ethnicity, "kinh_north")


@cache
def _pickers(scheme: str) -> dict[str, Weighted]:
    s = NAME_SCHEMES[scheme]
    return {
        "family": Weighted(s.families),
        "middle_male": Weighted(s.middle_male),
        "middle_female": Weighted(s.middle_female),
        "given_male": Weighted(s.given_male),
        "given_female": Weighted(s.given_female),
    }


def child_name(rng: random.Random, scheme: str, sex: str, family: str | None = None) -> tuple[str, str]:
    """A child's full name under ``scheme`` and their family name (kept for a sibling)."""
    s, p = NAME_SCHEMES[scheme], _pickers(scheme)
    sex = sex if sex in ("female", "male") else rng.choice(("female", "male"))
    family = family or p["family"].pick(rng)
    given = p[f"given_{sex}"].pick(rng)
    if s.given_first:
        return f"{'H' + chr(39) if sex == 'female' else 'Y '}{given} {family}", family
    middle = []
    for _ in range(2 if _chance(rng, s.double_middle) else 1):
        word = p[f"middle_{sex}"].pick(rng)
        if word not in (family, given, *middle):  # never "Nguyễn Minh Minh" or "Hoàng Hoàng Long"
            middle.append(word)
    return " ".join([family, *(middle or ["Thị" if sex == "female" else "Văn"]), given]), family


def adult_name(rng: random.Random, scheme: str, sex: str, family: str | None = None) -> str:
    """A parent's, grandparent's or reporter's name: Văn or Thị, and a given name of their generation."""
    s, p = NAME_SCHEMES[scheme], _pickers(scheme)
    family = family or p["family"].pick(rng)
    if s.given_first:
        return f"{'H' + chr(39) if sex == 'female' else 'Y '}{p[f'given_{sex}'].pick(rng)} {family}"
    given = ADULT_GIVEN[sex] if scheme.startswith("kinh") else p[f"given_{sex}"]
    return f"{family} {'Thị' if sex == 'female' else 'Văn'} {given.pick(rng)}"


# --- what: groups, risks, sources --------------------------------------------------------------------------------

#: What brings a case: a form of abuse, a risk of it (Law on Children, Arts. 4 and 49) or a group of Article 10.
PROFILES = Weighted({"abuse": 38, "at_risk": 37, "special": 25})
ABUSE_TYPES = Weighted(
    {
        "violence": 40,
        "neglect": 22,
        "sexual_abuse": 12,
        "exploitation": 9,
        "abandonment": 7,
        "other": 7,
        "trafficking": 3,
    }
)
#: The group of Article 10 a form of abuse often puts the child in, and how often it does.
GROUP_OF_ABUSE = {
    "violence": ("violence_harm", 0.35),
    "sexual_abuse": ("sexually_abused", 0.7),
    "exploitation": ("exploited", 0.5),
    "trafficking": ("trafficked", 0.8),
    "abandonment": ("abandoned", 0.6),
}
AT_RISK = Weighted({"risk_violence": 50, "risk_abandonment": 25, "risk_exploitation": 25})
SPECIAL_GROUPS = Weighted(
    {
        "disability": 22,
        "school_dropout_labour": 15,
        "serious_illness_poor_household": 14,
        "in_conflict_with_law": 10,
        "orphan_both_parents": 8,
        "without_support": 6,
        "abandoned": 5,
        "hiv_aids": 3,
        "drug_addiction": 3,
        "migrant_unaccompanied": 3,
    }
)
#: Risk levels by profile, so that abuse weighs heavier while the whole stays near low 45%, medium 35%, high 20%.
RISK_BY_PROFILE = {
    "abuse": Weighted({"low": 25, "medium": 40, "high": 35}),
    "at_risk": Weighted({"low": 60, "medium": 32, "high": 8}),
    "special": Weighted({"low": 55, "medium": 33, "high": 12}),
}
SOURCES = Weighted(
    {
        "hotline_111": 18,
        "school": 17,
        "community": 15,
        "commune_committee": 12,
        "police": 10,
        "family": 9,
        "health_station": 7,
        "social_services": 5,
        "child": 3,
        "media": 2,
        "other": 2,
    }
)
CHANNELS = {
    "hotline_111": Weighted({"phone": 1}),
    "school": Weighted({"in_person": 50, "phone": 30, "third_party": 20}),
    "police": Weighted({"in_person": 50, "third_party": 40, "phone": 10}),
    "community": Weighted({"in_person": 50, "phone": 45, "online": 5}),
    "commune_committee": Weighted({"third_party": 60, "in_person": 40}),
    "family": Weighted({"in_person": 60, "phone": 40}),
    "health_station": Weighted({"third_party": 50, "phone": 30, "in_person": 20}),
    "social_services": Weighted({"third_party": 70, "phone": 20, "online": 10}),
    "child": Weighted({"in_person": 60, "phone": 40}),
    "media": Weighted({"online": 90, "third_party": 10}),
    "other": Weighted({"phone": 40, "in_person": 40, "online": 20}),
}
# Law on Persons with Disabilities 2010, Art. 3: the kinds of disability.
DISABILITY_KINDS = Weighted(
    {"mobility": 30, "intellectual": 25, "hearing_speech": 15, "psychosocial": 12, "visual": 10, "other": 8}
)
#: Age at the report, 0 to 15: older children are reported more (school, work, the street).
AGES = Weighted({age: 2 if age < 3 else 3 if age < 6 else 5 if age < 11 else 6 for age in range(16)})

OPENINGS = {
    "hotline_111": "Tổng đài 111 chuyển tin báo",
    "school": "Giáo viên chủ nhiệm báo",
    "community": "Hàng xóm báo",
    "commune_committee": "UBND xã chuyển thông tin",
    "police": "Công an xã thông báo",
    "family": "Người thân trình báo",
    "health_station": "Trạm y tế báo",
    "social_services": "Hội Liên hiệp Phụ nữ xã báo",
    "child": "Trẻ tự đến trình báo",
    "media": "Phát hiện qua mạng xã hội",
    "other": "Tin báo",
}
SITUATIONS = {
    "violence": ("trẻ bị cha đánh nhiều lần, có vết bầm trên tay và lưng", "trẻ bị người nhà đánh đập, bỏ đói"),
    "neglect": (
        "trẻ thường xuyên ở nhà một mình, thiếu ăn, không được chăm sóc",
        "trẻ nghỉ học dài ngày, không ai đưa đón",
    ),
    "sexual_abuse": ("nghi trẻ bị xâm hại tình dục, cần đưa đi khám và hỗ trợ tâm lý",),
    "exploitation": ("trẻ phải đi làm thuê ở xưởng gỗ, làm việc quá sức", "trẻ bị người quen bắt đi bán hàng rong"),
    "trafficking": ("nghi trẻ bị dụ dỗ sang bên kia biên giới, gia đình mất liên lạc",),
    "abandonment": ("phát hiện trẻ sơ sinh bị bỏ rơi trước cổng trạm y tế",),
    "other": ("trẻ có biểu hiện bất thường sau khi gia đình xảy ra mâu thuẫn",),
    "risk_violence": ("cha mẹ thường xuyên mâu thuẫn, cha hay say rượu, trẻ có nguy cơ bị bạo lực",),
    "risk_exploitation": ("trẻ bỏ học, có người rủ đi làm xa, có nguy cơ bị bóc lột",),
    "risk_abandonment": ("mẹ đi làm xa, trẻ ở với ông bà già yếu, có nguy cơ bị bỏ rơi",),
    "disability": ("trẻ khuyết tật, gia đình khó khăn, cần hỗ trợ chăm sóc và học tập",),
    "school_dropout_labour": ("trẻ bỏ học đi làm phụ hồ kiếm sống",),
    "serious_illness_poor_household": ("trẻ mắc bệnh tim bẩm sinh, gia đình thuộc hộ nghèo",),
    "in_conflict_with_law": ("trẻ bị tạm giữ vì trộm cắp tài sản, cần hỗ trợ",),
    "orphan_both_parents": ("trẻ mồ côi cả cha lẫn mẹ, đang ở với bà ngoại",),
    "without_support": ("trẻ không nơi nương tựa, sống một mình",),
    "abandoned": ("trẻ bị bỏ rơi, chưa xác định được cha mẹ",),
    "hiv_aids": ("trẻ nhiễm HIV, cần hỗ trợ điều trị và đi học",),
    "drug_addiction": ("trẻ sử dụng ma túy, cần hỗ trợ cai nghiện",),
    "migrant_unaccompanied": ("trẻ di cư một mình, không có người chăm sóc",),
}

# --- when: stages and deadlines ---------------------------------------------------------------------------------

STAGES = (
    "report_received",
    "initial_assessment",
    "detailed_assessment",
    "plan_drafting",
    "plan_approval",
    "support",
    "review",
    "closed",
)
#: Share of the cases at each stage: two in three closed; open ones are mostly receiving support.
STAGE_SHARES = {
    "report_received": 3,
    "initial_assessment": 4,
    "detailed_assessment": 4,
    "plan_drafting": 4,
    "plan_approval": 3,
    "support": 13,
    "review": 4,
    "closed": 65,
}
#: Days each stage may take before its deadline: the shape of Decree 56/2017's procedure (report checked within
#: the day, 12 hours in immediate danger; assessments, the plan, its approval; support reviewed every three months).
#: Demo data only: the workflow definitions are what the application enforces.
STAGE_DAYS = {
    "report_received": 1.0,
    "initial_assessment": 3.0,
    "detailed_assessment": 7.0,
    "plan_drafting": 5.0,
    "plan_approval": 5.0,
    "support": 90.0,
    "review": 15.0,
}
#: Where closed cases were closed, and why (``closure_reasons`` of codes.toml).
CLOSED_AFTER = Weighted({"initial_assessment": 15, "detailed_assessment": 5, "review": 80})
CLOSURE_REASONS = {
    "initial_assessment": Weighted({"risk_removed": 60, "moved_away": 15, "transferred": 15, "other": 10}),
    "detailed_assessment": Weighted({"risk_removed": 40, "transferred": 35, "moved_away": 15, "other": 10}),
    "review": Weighted(
        {
            "goals_met": 45,
            "risk_removed": 30,
            "moved_away": 8,
            "turned_16": 8,
            "transferred": 5,
            "other": 3,
            "deceased": 1,
        }
    ),
}
#: Share of stages overrun (a late assessment, a review not held): open cases past their deadline are overdue.
LATE = 0.18
MOBILE_PREFIXES = (
    "032",
    "033",
    "034",
    "035",
    "036",
    "037",
    "038",
    "039",
    "056",
    "058",
    "070",
    "076",
    "077",
    "078",
    "079",
    "081",
    "082",
    "083",
    "084",
    "085",
    "086",
    "088",
    "089",
    "090",
    "091",
    "093",
    "094",
    "096",
    "097",
    "098",
)


# --- the plan -------------------------------------------------------------------------------------------------------


@dataclass
class ChildPlan:
    """A child to create: what :class:`~casework.cases.models.Child` stores, in plaintext."""

    key: int
    full_name: str
    family_name: str
    sex: str
    ethnicity: str
    commune_code: str
    province_code: str
    address: str
    date_of_birth: date | None
    birth_year: int | None
    estimated_age: int | None
    other_names: str | None = None
    national_id: str | None = None
    guardian_name: str | None = None
    guardian_phone: str | None = None
    has_disability: bool = False
    disability_kind: str | None = None
    sibling_of: int | None = None  # the key of a sibling planned before


@dataclass
class CasePlan:
    """A case to create, about ``child``."""

    child: ChildPlan
    received_at: datetime
    created_at: datetime
    updated_at: datetime
    source: str
    channel: str
    risk_level: str
    immediate_danger: bool
    codes: list[tuple[str, str]]
    summary: str
    stage: str
    steps: int  # stage changes so far (the row's version is one more)
    next_deadline_at: datetime | None
    entered_at: datetime  # when the case entered its stage
    closed_at: datetime | None
    closure_reason: str | None
    worker: str | None  # username of the social worker holding the case
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_address: str | None = None


def _apportion(n: int, shares: Mapping[str, float]) -> list[str]:
    """``n`` labels in exact proportion to ``shares`` (largest remainders), so a small run has every stage."""
    total = sum(shares.values())
    exact = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k in shares for _ in range(counts[k])]


class _Planner:
    def __init__(self, seed: int, now: datetime, workers: Mapping[str, Sequence[str]]) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets: it must repeat for a seed
        self.now = now
        self.start = now - timedelta(days=365 * YEARS)
        self.workers = {code: sorted(names) for code, names in workers.items() if names}
        self.communes, self.commune_info = _commune_chooser(self.rng)
        self.provinces, _ = _units()
        self.ethnicities = {
            key: Weighted(weights) for key, weights in (ETHNICITY_BY_PROVINCE | ETHNICITY_BY_COMMUNE).items()
        }
        self.national_ids: set[str] = set()
        self.families: dict[str, list[ChildPlan]] = defaultdict(list)  # recent children per commune
        self.children = 0

    # -- people ------------------------------------------------------------------------------------------------

    def phone(self) -> str:
        return self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**7):07d}"

    def national_id(self, province: str, sex: str, born: int) -> str:
        """A 12-digit personal ID: province of birth, century and sex, year, then six digits."""
        century_sex = (0 if sex == "male" else 1) + (2 if born >= 2000 else 0)
        while True:
            value = f"0{province}{century_sex}{born % 100:02d}{self.rng.randrange(10**6):06d}"
            if value not in self.national_ids:
                self.national_ids.add(value)
                return value

    def address(self, commune: str) -> str:
        province, name, kind = self.commune_info[commune]
        if kind == "phuong":
            place = self.rng.choice(
                (f"Tổ {self.rng.randint(1, 40)}", f"Số {self.rng.randint(1, 200)}, ngõ {self.rng.randint(1, 90)}")
            )
        else:
            place = f"{'Bản' if province in MOUNTAIN_PROVINCES else 'Thôn'} {self.rng.randint(1, 15)}"
        return f"{place}, {name}, {self.provinces[province]}"

    def child(self, commune: str, received: datetime) -> ChildPlan:
        rng = self.rng
        province = self.commune_info[commune][0]
        self.children += 1
        sibling = None
        family = self.families[commune]
        if family and _chance(rng, 0.05):  # a brother or sister of a child reported before in the commune
            sibling = rng.choice(family)
        local = self.ethnicities.get(commune, self.ethnicities[province])
        ethnicity = sibling.ethnicity if sibling else local.pick(rng)
        scheme = _scheme_for(ethnicity, province)
        sex = "unknown" if _chance(rng, 0.01) else rng.choice(("female", "male"))
        name, family_name = child_name(rng, scheme, sex, family=sibling.family_name if sibling else None)
        age = AGES.pick(rng)
        received_day = received.astimezone(UTC).date()
        born = received_day - timedelta(days=365 * age + rng.randrange(365))
        known = rng.random()
        plan = ChildPlan(
            key=self.children,
            full_name=name,
            family_name=family_name,
            sex=sex,
            ethnicity=ethnicity,
            commune_code=commune,
            province_code=province,
            address=sibling.address if sibling else self.address(commune),
            date_of_birth=born if known < 0.75 else None,
            birth_year=born.year if known < 0.96 else None,
            estimated_age=age if known >= 0.96 else None,  # Mẫu 01: an estimated age when nothing else is known
            sibling_of=sibling.key if sibling else None,
        )
        if _chance(rng, 0.15):
            plan.other_names = rng.choice(("", "Bé ")) + rng.choice(NICKNAMES)
        if plan.birth_year and _chance(rng, 0.4):
            plan.national_id = self.national_id(
                province if _chance(rng, 0.9) else rng.choice(list(PROVINCE_SHARES)), sex, plan.birth_year
            )
        if sibling:
            plan.guardian_name, plan.guardian_phone = sibling.guardian_name, sibling.guardian_phone
        else:
            if _chance(rng, 0.9):
                if NAME_SCHEMES[scheme].given_first:
                    guardian = ("female", family_name)  # the child bears the mother's family name
                else:
                    guardian = ("male", family_name) if _chance(rng, 0.55) else ("female", None)
                plan.guardian_name = adult_name(rng, scheme, guardian[0], family=guardian[1])
            if _chance(rng, 0.8):
                plan.guardian_phone = self.phone()
        family.append(plan)
        del family[:-30]
        return plan

    # -- cases -----------------------------------------------------------------------------------------------------

    def codes(self, profile: str, child: ChildPlan) -> list[tuple[str, str]]:
        rng = self.rng
        picked: list[tuple[str, str]] = []
        if profile == "abuse":
            kinds = {ABUSE_TYPES.pick(rng) for _ in range(2 if _chance(rng, 0.15) else 1)}
            for kind in sorted(kinds):
                picked.append(("abuse_types", kind))
                group = GROUP_OF_ABUSE.get(kind)
                if group and _chance(rng, group[1]):
                    picked.append(("special_circumstances", group[0]))
        elif profile == "at_risk":
            for risk in sorted({AT_RISK.pick(rng) for _ in range(2 if _chance(rng, 0.1) else 1)}):
                picked.append(("at_risk", risk))
        else:
            picked.append(("special_circumstances", SPECIAL_GROUPS.pick(rng)))
            if _chance(rng, 0.2):
                picked.append(("at_risk", AT_RISK.pick(rng)))
        if ("special_circumstances", "disability") in picked or _chance(rng, 0.03):
            child.has_disability = True
            child.disability_kind = DISABILITY_KINDS.pick(rng)
            if ("special_circumstances", "disability") not in picked and _chance(rng, 0.5):
                picked.append(("special_circumstances", "disability"))
        return sorted(set(picked))

    def summary(self, source: str, picked: list[tuple[str, str]]) -> str:
        main = next((code for list_name, code in picked if list_name != "special_circumstances"), picked[0][1])
        situation = self.rng.choice(SITUATIONS.get(main, SITUATIONS["other"]))
        return f"{OPENINGS[source]}: {situation}."

    def duration(self, stage: str, danger: bool) -> float:
        """Days a past stage took: mostly within its time, sometimes over it."""
        limit = self.limit(stage, danger)
        rng = self.rng
        if stage == "support":
            return limit * rng.uniform(0.3, 1.0) if not _chance(rng, LATE) else limit * rng.uniform(1.0, 1.6)
        return limit * (rng.uniform(0.1, 1.0) if not _chance(rng, LATE) else rng.uniform(1.0, 3.0))

    @staticmethod
    def limit(stage: str, danger: bool) -> float:
        return 0.5 if stage == "report_received" and danger else STAGE_DAYS[stage]

    def growth_moment(self, latest: datetime) -> datetime:
        """A moment between the window's start and ``latest``, more likely recent: the density grows by half over
        the window (more reports each year, as awareness of the 111 hotline spreads)."""
        x = 2 * ((1 + 1.25 * self.rng.random()) ** 0.5 - 1) if latest > self.start else 0.0
        return self.start + (latest - self.start) * x

    def case(self, stage: str) -> CasePlan:
        rng, now = self.rng, self.now
        commune = self.communes.pick(rng)
        profile = PROFILES.pick(rng)
        risk = RISK_BY_PROFILE[profile].pick(rng)
        danger = risk == "high" and _chance(rng, 0.3)
        source = SOURCES.pick(rng)
        if stage == "closed":
            closed_after = CLOSED_AFTER.pick(rng)
            passed = STAGES[: STAGES.index(closed_after) + 1]
            days = [self.duration(s, danger) for s in passed]
            total = timedelta(days=sum(days))
            received = self.growth_moment(now - total)
            closed_at = received + total
            entered = closed_at
            deadline = None
        else:
            passed = STAGES[: STAGES.index(stage)]
            days = [self.duration(s, danger) for s in passed]
            limit = self.limit(stage, danger)
            in_stage = limit * (rng.uniform(0.0, 1.0) if not _chance(rng, LATE) else rng.uniform(1.0, 3.0))
            entered = now - timedelta(days=in_stage)
            received = max(entered - timedelta(days=sum(days)), self.start)
            deadline = entered + timedelta(days=limit)
            closed_at = None
            closed_after = None
        child = self.child(commune, received)
        picked = self.codes(profile, child)
        reason = None
        if closed_after:
            reason = CLOSURE_REASONS[closed_after].pick(rng)
            age_then = (closed_at.date() - child.date_of_birth).days // 365 if child.date_of_birth else None
            if reason == "turned_16" and (age_then is None or age_then < 16):
                reason = "goals_met"
        workers = self.workers.get(commune, ())
        worker = rng.choice(workers) if workers and (stage != "report_received" or _chance(rng, 0.5)) else None
        created = min(received + timedelta(minutes=rng.randint(5, 360)), now)
        plan = CasePlan(
            child=child,
            received_at=received,
            created_at=created,
            updated_at=max(entered, created),
            source=source,
            channel=CHANNELS[source].pick(rng),
            risk_level=risk,
            immediate_danger=danger,
            codes=picked,
            summary=self.summary(source, picked),
            stage=stage,
            steps=len(passed),
            next_deadline_at=deadline,
            entered_at=entered,
            closed_at=closed_at,
            closure_reason=reason,
            worker=worker,
        )
        if _chance(rng, 0.45 if source != "hotline_111" else 0.2):  # Mẫu 01: kept only with the reporter's consent
            plan.reporter_name = adult_name(rng, _scheme_for("01", child.province_code), rng.choice(("female", "male")))
            if _chance(rng, 0.75):
                plan.reporter_phone = self.phone()
            if _chance(rng, 0.3):
                plan.reporter_address = self.address(commune)
        return plan


def plan(n: int, *, seed: int, now: datetime, workers: Mapping[str, Sequence[str]] | None = None) -> list[CasePlan]:
    """Invent ``n`` cases (and their children), the same ones for the same seed, moment and workers.

    :param now: the moment the data is "as of" (aware); reports fall in the three years before it.
    :param workers: usernames of the social workers of each commune; they hold its cases.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    for reasons in CLOSURE_REASONS.values():
        unknown = [code for code in reasons.values if not codes.is_code("closure_reasons", code)]
        if unknown:
            raise ValueError(f"closure reasons not in codes.toml: {unknown}")
    planner = _Planner(seed, now, workers or {})
    stages = _apportion(n, STAGE_SHARES)
    planner.rng.shuffle(stages)
    return [planner.case(stage) for stage in stages]


# --- writing ------------------------------------------------------------------------------------------------------


@dataclass
class Generated:
    """What :func:`generate` wrote, and how long it took."""

    cases: int
    children: int
    seed: int
    seconds: float
    by_stage: dict[str, int] = field(default_factory=dict)


def workers_by_commune() -> dict[str, list[User]]:
    """The active social workers of each commune, who will hold its generated cases."""
    rows = db.session.execute(
        select(UserCommune.commune_code, User)
        .join(User, User.id == UserCommune.user_id)
        .where(User.role == SOCIAL_WORKER, User.active.is_(True))
    ).all()
    result: dict[str, list[User]] = defaultdict(list)
    for code, user in rows:
        result[code].append(user)
    return dict(result)


def seal_row(owner: type, row: dict[str, Any], values: Mapping[str, Any], key_id: str, entries: list[dict]) -> None:
    """Encrypt ``values`` into ``row`` and add their blind-index entries, exactly as setting them on a model does
    (``Encrypted.__set__`` and the before-flush index maintenance): NFC text, ISO dates, empty as NULL."""
    row_id = row["id"]
    for name, value in values.items():
        descriptor: Encrypted = getattr(owner, name)
        if value is None or value == "":
            row[descriptor.column] = None
            continue
        if isinstance(value, date):
            text = value.isoformat()
        else:
            value = normal.nfc(value)
            text = value
        row[descriptor.column] = encrypt_value(text, table=descriptor.table, column=descriptor.column, row_id=row_id)
        for term in descriptor.terms(value, key_id):
            entries.append(
                {
                    "table_name": descriptor.table,
                    "column_name": descriptor.column,
                    "row_id": row_id,
                    "key_id": key_id,
                    "term": term,
                    "commune_code": row.get("commune_code"),
                }
            )


def _numbers(plans: Sequence[CasePlan]) -> tuple[list[str], dict[tuple[str, int], int], set[tuple[str, int]]]:
    """Case numbers in order of reception per province and year, continuing the sequences (taken under lock)."""
    tz = local_tz()
    existing = {
        (province, year): last
        for province, year, last in db.session.execute(
            select(CaseNumberSequence.province_code, CaseNumberSequence.year, CaseNumberSequence.last).with_for_update()
        )
    }
    last = dict(existing)
    numbers = [""] * len(plans)
    for index in sorted(range(len(plans)), key=lambda i: plans[i].received_at):
        key = (plans[index].child.province_code, plans[index].received_at.astimezone(tz).year)
        last[key] = last.get(key, 0) + 1
        numbers[index] = f"{key[0]}-{key[1]}-{last[key]:06d}"
    return numbers, last, set(existing)


def generate(
    n: int,
    *,
    seed: int,
    now: datetime | None = None,
    actor: User | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> Generated:
    """Create ``n`` synthetic cases and their children in the current transaction, and record one audit event.

    The caller commits. Cases of a commune with active social workers are assigned to them.

    :raises LookupError: the administrative units are not loaded (run ``casework init``).
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    staff = workers_by_commune()
    plans = plan(n, seed=seed, now=now, workers={code: [u.username for u in users] for code, users in staff.items()})
    worker_ids = {u.username: u.id for users in staff.values() for u in users}
    wanted = {p.child.commune_code for p in plans}
    known = set(db.session.scalars(select(Commune.code).where(Commune.code.in_(sorted(wanted))))) if wanted else set()
    if wanted - known:
        raise LookupError(f"communes {sorted(wanted - known)[:5]} are not loaded; run `casework init`")
    numbers, sequences, existing = _numbers(plans)
    key_id = keyring().current_key_id()
    child_ids: dict[int, uuid.UUID] = {}
    siblings: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for first in range(0, len(plans), chunk_size):
        children, cases, case_codes, assignments, entries = [], [], [], [], []
        for index in range(first, min(first + chunk_size, len(plans))):
            p, c = plans[index], plans[index].child
            worker_id = worker_ids.get(p.worker) if p.worker else None
            child_id = child_ids[c.key] = uuid.uuid4()
            child_row: dict[str, Any] = {
                "id": child_id,
                "sex": c.sex,
                "birth_year": c.birth_year,
                "estimated_age": c.estimated_age,
                "ethnicity": c.ethnicity,
                "has_disability": c.has_disability,
                "disability_kind": c.disability_kind,
                "commune_code": c.commune_code,
                "province_code": c.province_code,
                "created_at": p.created_at,
                "created_by_id": worker_id,
            }
            seal_row(
                Child,
                child_row,
                {
                    "full_name": c.full_name,
                    "other_names": c.other_names,
                    "date_of_birth": c.date_of_birth,
                    "national_id": c.national_id,
                    "address": c.address,
                    "guardian_name": c.guardian_name,
                    "guardian_phone": c.guardian_phone,
                },
                key_id,
                entries,
            )
            children.append(child_row)
            if c.sibling_of is not None:
                siblings.add(tuple(sorted((child_ids[c.sibling_of], child_id))))
            case_row: dict[str, Any] = {
                "id": uuid.uuid4(),
                "case_number": numbers[index],
                "child_id": child_id,
                "commune_code": c.commune_code,
                "province_code": c.province_code,
                "received_at": p.received_at,
                "source": p.source,
                "channel": p.channel,
                "risk_level": p.risk_level,
                "immediate_danger": p.immediate_danger,
                "stage": p.stage,
                "workflow": "default",
                "assigned_to_id": worker_id,
                "next_deadline_at": p.next_deadline_at,
                "stage_entered_at": p.entered_at,
                "closed_at": p.closed_at,
                "closure_reason": p.closure_reason,
                "import_fingerprint": None,
                "created_at": p.created_at,
                "created_by_id": worker_id,
                "updated_at": p.updated_at,
                "version": p.steps + 1,
            }
            seal_row(
                Case,
                case_row,
                {
                    "reporter_name": p.reporter_name,
                    "reporter_phone": p.reporter_phone,
                    "reporter_address": p.reporter_address,
                    "summary": p.summary,
                },
                key_id,
                entries,
            )
            cases.append(case_row)
            case_codes.extend({"case_id": case_row["id"], "list_name": ln, "code": code} for ln, code in p.codes)
            if worker_id:
                assignments.append(
                    {
                        "id": uuid.uuid4(),
                        "case_id": case_row["id"],
                        "worker_id": worker_id,
                        "assigned_by_id": worker_id,
                        "started_at": p.created_at,
                        "ended_at": None,
                        "reason_ct": None,
                    }
                )
        for table, rows in (
            (Child.__table__, children),
            (BlindIndexEntry.__table__, entries),
            (Case.__table__, cases),
            (CaseCode.__table__, case_codes),
            (Assignment.__table__, assignments),
        ):
            if rows:
                db.session.execute(insert(table), rows)
        if progress:
            progress(min(first + chunk_size, len(plans)), len(plans))
    if siblings:
        db.session.execute(
            insert(SiblingLink.__table__),
            [{"child_a_id": a, "child_b_id": b, "created_at": now, "created_by_id": None} for a, b in sorted(siblings)],
        )
    table = CaseNumberSequence.__table__
    for (province, year), last in sorted(sequences.items()):
        if (province, year) in existing:
            db.session.execute(
                update(table).where(table.c.province_code == province, table.c.year == year).values(last=last)
            )
    new = [
        {"province_code": p, "year": y, "last": last}
        for (p, y), last in sorted(sequences.items())
        if (p, y) not in existing
    ]
    if new:
        db.session.execute(insert(table), new)
    audit.record("demo.generate", details={"cases": n}, actor=actor)
    db.session.flush()
    return Generated(
        cases=n,
        children=len(child_ids),
        seed=seed,
        seconds=time.perf_counter() - started,
        by_stage=dict(Counter(p.stage for p in plans)),
    )
