"""bench/RESULTS.md: one section per benchmark, each opened by its marker line; a benchmark replaces its own section
and keeps the others, in a fixed order (search, statistics, load)."""

from __future__ import annotations

import re
from pathlib import Path

SEARCH = "<!-- search bench -->"
STATS = "<!-- stats bench -->"
LOAD = "<!-- load bench -->"
ORDER = (SEARCH, STATS, LOAD)
_MARKER = re.compile(r"^<!-- [a-z]+ bench -->$", re.MULTILINE)


def read_sections(path: Path) -> dict[str, str]:
    """The sections of ``path`` by marker (without the marker line); text before any marker is the search
    benchmark's, which wrote none before the sections had markers."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    found = list(_MARKER.finditer(text))
    sections = {}
    head = text[: found[0].start() if found else len(text)].strip()
    if head:
        sections[SEARCH] = head
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        sections[match.group(0)] = text[match.end() : end].strip()
    return sections


def write_section(path: Path, marker: str, body: str) -> None:
    """Replace the section of ``marker`` in ``path`` with ``body``, keeping every other section."""
    sections = read_sections(path)
    sections[marker] = body.strip()
    ordered = [m for m in ORDER if m in sections] + [m for m in sections if m not in ORDER]
    path.write_text("\n\n".join(f"{m}\n\n{sections[m]}" for m in ordered) + "\n", encoding="utf-8")
