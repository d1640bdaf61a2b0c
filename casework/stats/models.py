"""What makes a province's dashboard fast without ever being stale.

``stats_versions`` holds one number per province that moves whenever anything the indicators read changes there
(a case, its child, codes, steps, plans, services, payments): the change and the move commit together
(:mod:`casework.stats.snapshots`). ``stats_snapshots`` keeps computed reports (every indicator, both periods,
already suppressed for a k) with the province's number at the time; a snapshot whose number is not the current one
is never shown, it is computed again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db


class StatsVersion(db.Model):
    __tablename__ = "stats_versions"

    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class StatsSnapshot(db.Model):
    __tablename__ = "stats_snapshots"

    id: Mapped[uuid.UUID] = uuid_pk()
    key: Mapped[str] = mapped_column(String(200), unique=True)  # province, commune, period, breakdown, k, language
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    milliseconds: Mapped[int] = mapped_column(Integer, default=0)  # how long computing it took
    payload: Mapped[dict] = mapped_column(JSON)
