"""Vietnam's administrative units: the two-level units since 1 July 2025, and the older three-level ones."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Boolean, CheckConstraint, Date, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.extensions import db

PROVINCE_TYPES = ("tinh", "thanh_pho")
COMMUNE_TYPES = ("xa", "phuong", "dac_khu")


class Province(db.Model):
    """A province or centrally-run city (34 since 1 July 2025), by its official two-digit code."""

    __tablename__ = "provinces"
    __table_args__ = (CheckConstraint("type IN ('tinh', 'thanh_pho')", name="province_type"),)

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(16))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    merged_into_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    merged_on: Mapped[date | None] = mapped_column(Date)

    communes: Mapped[list[Commune]] = relationship(
        back_populates="province", order_by="Commune.code", foreign_keys="Commune.province_code"
    )

    def __repr__(self) -> str:
        return f"<Province {self.code} {self.name}>"


class Commune(db.Model):
    """A commune, ward or special zone (xã, phường, đặc khu), by its official five-digit code."""

    __tablename__ = "communes"
    __table_args__ = (
        CheckConstraint("type IN ('xa', 'phuong', 'dac_khu')", name="commune_type"),
        CheckConstraint("(merged_into_code IS NULL) = (merged_on IS NULL)", name="merge_has_target_and_date"),
        CheckConstraint("merged_into_code IS NULL OR merged_into_code <> code", name="not_merged_into_itself"),
    )

    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(16))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # A unit can later be merged into another from a date; its records keep its code.
    merged_into_code: Mapped[str | None] = mapped_column(ForeignKey("communes.code"))
    merged_on: Mapped[date | None] = mapped_column(Date)

    province: Mapped[Province] = relationship(back_populates="communes", foreign_keys=[province_code])

    def is_active(self, on: date | None = None) -> bool:
        """Say whether the commune still exists on ``on`` (default: today in Vietnam, not the server's day)."""
        if on is None:
            from casework.i18n import local_today  # noqa: PLC0415 - needs the app's time zone setting

            on = local_today()
        return self.merged_on is None or on < self.merged_on

    def __repr__(self) -> str:
        return f"<Commune {self.code} {self.name}>"


class LegacyProvince(db.Model):
    """A province as it was before 1 July 2025 (63 of them)."""

    __tablename__ = "legacy_provinces"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))


class LegacyDistrict(db.Model):
    """A district (cấp huyện); the level was abolished on 1 July 2025."""

    __tablename__ = "legacy_districts"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    province_code: Mapped[str] = mapped_column(ForeignKey("legacy_provinces.code"), index=True)


class LegacyWard(db.Model):
    """A commune or ward as it was before 1 July 2025."""

    __tablename__ = "legacy_wards"

    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    district_code: Mapped[str] = mapped_column(ForeignKey("legacy_districts.code"), index=True)
    province_code: Mapped[str] = mapped_column(ForeignKey("legacy_provinces.code"), index=True)


class LegacyMapping(db.Model):
    """Where an old ward went: one row per new commune that received (part of) it."""

    __tablename__ = "legacy_mappings"

    old_ward_code: Mapped[str] = mapped_column(ForeignKey("legacy_wards.code"), primary_key=True)
    new_commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"), primary_key=True, index=True)
    # An old ward split between several new communes: an import must ask which one.
    is_partial: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
