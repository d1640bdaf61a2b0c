"""``/api/v1/cases`` (being built)."""

from __future__ import annotations
