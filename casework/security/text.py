"""Normalising Vietnamese text for comparison and blind indexes.

Decomposition does not split đ/Đ, so they are replaced first; combining marks are then dropped, case folded and
whitespace collapsed. "Hòa" and "Hoà" (tone-mark placement) fold to the same key, and ’ is treated as '.
"""

from __future__ import annotations

import re
import unicodedata

_WORD_SPLIT = re.compile(r"[^\w']+", re.UNICODE)


def nfc(value: str) -> str:
    """Return ``value`` in Unicode NFC, the form casework stores."""
    return unicodedata.normalize("NFC", value)


def fold(value: str) -> str:
    """Fold to lower case without diacritics, whitespace collapsed: "Nguyễn  Thị Hà" → "nguyen thi ha"."""
    value = value.replace("đ", "d").replace("Đ", "D").replace("’", "'").replace("ʼ", "'")
    decomposed = unicodedata.normalize("NFD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def words(value: str) -> list[str]:
    """The folded words of ``value``, in order, without punctuation: "Nguyễn Thị Hà (bé)" → [nguyen, thi, ha, be]."""
    return [w.strip("'") for w in _WORD_SPLIT.split(fold(value)) if w.strip("'")]


def digits(value: str) -> str:
    """Only the digits of ``value``: "0912 345-678" → "0912345678"."""
    return "".join(ch for ch in value if ch.isdigit())
