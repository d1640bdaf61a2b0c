"""Disclosure control for published counts: small counts hidden, and enough others hidden that none can be worked
out again from the totals of its table.

A table is a grid of cells with a total for each row, each column and the whole (any of them may be absent). A
*line* is a set of published numbers that add up to another: the cells of a row and the row's total, the cells of
a column and its total, the row totals and the grand total, the column totals and the grand total.

What a reader knows of a hidden number: a count shown as "<k" (a *primary* suppression) is between 1 and k-1; any
other hidden number (a *complement*, shown "×") is 0 or at least k, since a count from 1 to k-1 would have been
shown "<k". :func:`recoverable` plays that reader, who works a hidden number out:

1. by linear algebra over all the lines at once: a line with exactly one hidden member gives it away, and so do
   combinations of lines (two blocks of hidden cells joined by a single hidden cell give that cell away through
   the sum of their rows minus the sum of their columns);
2. by the marks' bounds, narrowed line by line and through the combinations of lines until nothing changes: in a
   row "4, 4, 10 | 18" with both 4s hidden as "<5", the pair adds up to 8 and each is at most 4, so both are 4;
   and a complement that is 0 protects nothing there either;
3. by trying each value a hidden "<k" could have and following the consequences through the lines: a value that
   leads to a contradiction is ruled out, and a count with one value left is worked out.

:func:`suppress` hides every count from 1 to k-1 (cells and totals), then adds complements until the reader finds
nothing: first in each line with exactly one hidden member (cheap, and most of the work), then next to whatever the
reader still works out. A complement is the smallest non-zero cell of the line that needs one, else its non-zero
total, else a zero. A hidden zero that is worked out tells nothing about anyone, and is allowed.

When every number of a table is hidden and the marks alone still give one away (four cells "<5" whose total is
"<5" are 1 each), all are shown as complements, which say nothing about their size.

Tables whose cells are not additive (a child in several groups counts in each) get the first step as if they were
additive, which hides more than needed, never less; the reader's equations are the lines that do add up. The
reader above is not a full integer-programming attack, but the tests set an exhaustive one on small tables.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

PRIMARY = "primary"
COMPLEMENT = "complement"
#: Complements are added one per round; a table that still gives counts away after this many rounds, or whose
#: exposed counts have not gone down for STALLED_ROUNDS rounds, has every count hidden instead (:func:`suppress`).
MAX_ROUNDS = 60
STALLED_ROUNDS = 12

Key = tuple[
    str, Hashable, Hashable
]  # ("cell", row, column) | ("row", row, None) | ("column", None, column) | ("total", None, None)

_PRIME = (1 << 61) - 1  # linear algebra modulo a large prime: the lines' matrices have 0/±1 minors, so it is exact
_Interval = tuple[int | None, int | None]  # inclusive; None: unbounded on that side
_Domain = list[_Interval]  # what a hidden number can be: a union of intervals, in order
_Equation = tuple[list | None, list[tuple[Key, int]], int]  # (the line or None, [(key, coefficient)], their sum)


@dataclass
class Grid:
    """Counts of a two-way table; ``rows`` and ``columns`` in display order."""

    rows: list[Hashable]
    columns: list[Hashable]
    cells: dict[tuple[Hashable, Hashable], int]
    row_totals: dict[Hashable, int] = field(default_factory=dict)
    column_totals: dict[Hashable, int] = field(default_factory=dict)
    total: int | None = None

    def value(self, key: Key) -> int | None:
        kind, row, column = key
        if kind == "cell":
            return self.cells.get((row, column), 0)
        if kind == "row":
            return self.row_totals.get(row)
        if kind == "column":
            return self.column_totals.get(column)
        return self.total

    def lines(self) -> Iterable[list[Key]]:
        """Each set of published numbers that sum to another, as keys (the total last)."""
        for row in self.rows:
            if row in self.row_totals:
                yield [("cell", row, c) for c in self.columns] + [("row", row, None)]
        for column in self.columns:
            if column in self.column_totals:
                yield [("cell", r, column) for r in self.rows] + [("column", None, column)]
        if self.total is not None:
            if self.row_totals:
                yield [("row", r, None) for r in self.rows if r in self.row_totals] + [("total", None, None)]
            if self.column_totals:
                yield [("column", None, c) for c in self.columns if c in self.column_totals] + [("total", None, None)]

    def members(self) -> Iterable[Key]:
        for row in self.rows:
            for column in self.columns:
                yield ("cell", row, column)
        for row in self.row_totals:
            yield ("row", row, None)
        for column in self.column_totals:
            yield ("column", None, column)
        if self.total is not None:
            yield ("total", None, None)


def suppress(grid: Grid, k: int) -> dict[Key, str]:
    """Which numbers of ``grid`` to hide, and why (:data:`PRIMARY` or :data:`COMPLEMENT`). ``k`` <= 1 hides nothing."""
    hidden: dict[Key, str] = {}
    if k <= 1:
        return hidden
    for key in grid.members():
        value = grid.value(key)
        if value is not None and 1 <= value < k:
            hidden[key] = PRIMARY
    if not hidden:
        return hidden
    lines = _lines(grid)
    fewest, stalled = None, 0
    for _round in range(MAX_ROUNDS):
        _single_members(grid, lines, hidden)
        exposed = [(key, line) for key, line in _worked_out(grid, lines, hidden, k).items() if grid.value(key)]
        if not exposed:
            return hidden
        if fewest is None or len(exposed) < fewest:
            fewest, stalled = len(exposed), 0
        else:
            stalled += 1
            if stalled >= STALLED_ROUNDS:
                break
        key, line = exposed[0]  # one at a time: a complement often protects several numbers
        if not _protect(lines, hidden, key, line):
            return dict.fromkeys(hidden, COMPLEMENT)  # everything is hidden and the marks still tell: see above
    # A table of small counts scattered over many zeros (a province's first cases by commune) can take hundreds of
    # complements, one round each, most of them zeros that protect nothing: give up and hide every count.
    return _every_count(grid, hidden)


def _every_count(grid: Grid, hidden: dict[Key, str]) -> dict[Key, str]:
    """Every non-zero number of the table hidden, as complements: the lines then publish only zeros, whose sums a
    reader can scale as far as they like, so no hidden number has a single possible value."""
    return {key: COMPLEMENT for key in grid.members() if grid.value(key)} | dict.fromkeys(hidden, COMPLEMENT)


def recoverable(grid: Grid, hidden: dict[Key, str], k: int | None = None) -> list[Key]:
    """The hidden numbers, zeros aside, that a reader can work out from the published ones (the empty list when
    suppression holds), in the table's order.

    :param k: also use what the marks tell (a primary is 1 to k-1, a complement 0 or at least k); without it, only
        the linear algebra of the lines.
    """
    found = {key for key in _worked_out(grid, _lines(grid), hidden, k) if grid.value(key)}
    order = {key: i for i, key in enumerate(grid.members())}
    return sorted(found, key=lambda key: order.get(key, len(order)))


# --- the reader ------------------------------------------------------------------------------------------------------


def _worked_out(grid: Grid, lines, hidden: dict[Key, str], k: int | None) -> dict[Key, list | None]:
    """Every hidden number the reader works out, with the line that gave it away (None: several lines at once).

    What one way finds, the others use: the equations are reduced again without the numbers already known.
    """
    known: dict[Key, list | None] = {}
    # The reader's equations are the lines that add up; the structure alone (step 1) uses every line.
    holding = [line for line in lines if _constant(line, ()) == 0]
    while True:
        rest = {key: reason for key, reason in hidden.items() if key not in known}
        found: dict[Key, list | None] = {terms[0][0]: None for terms in _reduce(lines, rest) if len(terms) == 1}
        if not found and k is not None and k > 1:
            equations: list[_Equation] = [(line, _terms(line, hidden), _constant(line, hidden)) for line in holding]
            equations += [
                (None, terms, sum(c * grid.value(key) for key, c in terms)) for terms in _reduce(holding, rest)
            ]
            found = dict(_pinned(grid, [e for e in equations if e[1]], hidden, k, known))
        if not found:
            return known
        known.update(found)


def _lines(grid: Grid) -> list[list[tuple[Key, int]]]:
    """The lines as (key, value) with the published members only (a missing total is not a member)."""
    out = []
    for line in grid.lines():
        members = [(key, grid.value(key)) for key in line]
        members = [(key, value) for key, value in members if value is not None]
        if len(members) > 1:
            out.append(members)
    return out


def _coefficient(line, key: Key) -> int:
    """The sign of ``key`` in the line's equation: cells add up, the total (the last member) is subtracted."""
    return -1 if key == line[-1][0] else 1


def _terms(line, hidden) -> list[tuple[Key, int]]:
    return [(key, _coefficient(line, key)) for key, _ in line if key in hidden]


def _constant(line, hidden) -> int:
    """What the hidden members of ``line`` add up to (with their signs): minus the published members' sum. With
    nothing hidden it is 0 exactly when the line adds up."""
    return -sum(_coefficient(line, key) * value for key, value in line if key not in hidden)


def _reduce(lines, hidden: dict[Key, str]) -> list[list[tuple[Key, int]]]:
    """The lines' equations over the hidden numbers in reduced row echelon form (Gauss-Jordan modulo a prime), as
    terms (key, coefficient); an equation that names one number fixes it. The published numbers only move the
    constants, which follow from the table."""
    variables: dict[Key, int] = {}
    rows: list[dict[int, int]] = []
    for line in lines:
        row = {}
        for key, _ in line:
            if key in hidden:
                index = variables.setdefault(key, len(variables))
                row[index] = _coefficient(line, key) % _PRIME
        if row:
            rows.append(row)
    pivots: dict[int, dict[int, int]] = {}  # pivot column -> its row, reduced
    for row in rows:
        for column, pivot_row in pivots.items():
            factor = row.get(column)
            if factor:
                for c, v in pivot_row.items():
                    row[c] = (row.get(c, 0) - factor * v) % _PRIME
                row = {c: v for c, v in row.items() if v}
        if not row:
            continue
        column = min(row)
        inverse = pow(row[column], _PRIME - 2, _PRIME)
        row = {c: v * inverse % _PRIME for c, v in row.items()}
        for other in pivots.values():
            factor = other.get(column)
            if factor:
                for c, v in row.items():
                    other[c] = (other.get(c, 0) - factor * v) % _PRIME
                for c in [c for c, v in other.items() if not v]:
                    del other[c]
        pivots[column] = row
    names = {index: key for key, index in variables.items()}
    # Coefficients back to small integers (the matrices of tables with totals keep them 0 and ±1).
    return [
        [(names[c], v if v <= _PRIME // 2 else v - _PRIME) for c, v in sorted(row.items())] for row in pivots.values()
    ]


def _pinned(grid: Grid, equations: list[_Equation], hidden: dict[Key, str], k: int, known) -> list:
    """(key, line) of the hidden numbers, not yet ``known``, that the marks' bounds leave one value for (steps 2
    and 3 of the module's reader)."""
    domains: dict[Key, _Domain] = {key: _domain(key, hidden, k) for key in hidden}
    for key in known:
        domains[key] = [(grid.value(key), grid.value(key))]
    watch: dict[Key, list[int]] = defaultdict(list)
    for index, (_, terms, _) in enumerate(equations):
        for key, _ in terms:
            watch[key].append(index)
    pinned_by: dict[Key, list | None] = {}
    if not _narrow(equations, watch, domains, range(len(equations)), pinned_by):
        return []  # the published numbers contradict the marks: nothing to work out from them
    moves = _Moves(grid, hidden, k, known)
    for key in hidden:
        if hidden[key] != PRIMARY or key in known or _single(domains[key]) or moves.exist(key):
            continue
        # A primary's values form one interval: shave values off each end while trying them contradicts the rest.
        for end in (0, -1):
            while not _single(domains[key]):
                lo, hi = domains[key][0][0], domains[key][-1][1]
                value = (lo, hi)[end]
                trial = dict(domains)
                trial[key] = [(value, value)]
                if _narrow(equations, watch, trial, watch[key], None):
                    break
                domains[key] = [(lo + 1, hi)] if end == 0 else [(lo, hi - 1)]
                if _single(domains[key]):
                    pinned_by.setdefault(key, None)
                if not _narrow(equations, watch, domains, watch[key], pinned_by):
                    return []  # cannot happen for equations that hold; nothing is claimed then
    return [(key, pinned_by.get(key)) for key in hidden if key not in known and _single(domains[key])]


class _Moves:
    """Quick proof that a hidden count is not worked out: another table the reader cannot tell from the true one.

    In the table extended by its totals (row totals as a last column, column totals as a last row, the grand total
    in the corner), adding d to two opposite corners of a rectangle of hidden numbers and taking it from the other
    two (signs turned for totals) keeps every line's sum. If the four new values still fit their marks, the
    reader cannot tell the two tables apart, so the count has more than one possible value.
    """

    def __init__(self, grid: Grid, hidden: dict[Key, str], k: int, known) -> None:
        self.grid, self.hidden, self.k, self.known = grid, hidden, k, known
        self.rows: dict[Hashable, list[Key]] = defaultdict(list)
        self.columns: dict[Hashable, list[Key]] = defaultdict(list)
        self.at: dict[tuple[Hashable, Hashable], Key] = {}
        for key in hidden:
            if key not in known:
                where = self.position(key)
                self.rows[where[0]].append(key)
                self.columns[where[1]].append(key)
                self.at[where] = key

    @staticmethod
    def position(key: Key) -> tuple[Hashable, Hashable]:
        kind, row, column = key
        return (
            ("r", row) if kind in ("cell", "row") else ("T",),
            ("c", column) if kind in ("cell", "column") else ("T",),
        )

    def fits(self, key: Key, value: int) -> bool:
        if self.hidden[key] == PRIMARY:
            return 1 <= value < self.k
        return value == 0 or value >= self.k

    def exist(self, key: Key) -> bool:
        r1, c1 = self.position(key)
        sign = {("T",): -1}
        value = self.grid.value(key)
        for across in self.rows[r1]:
            c2 = self.position(across)[1]
            for down in self.columns[c1]:
                r2 = self.position(down)[0]
                corner = self.at.get((r2, c2))
                if across == key or down == key or corner is None:
                    continue
                s_r, s_c = sign.get(r1, 1) * sign.get(r2, 1), sign.get(c1, 1) * sign.get(c2, 1)
                for d in range(1 - value, self.k - value):
                    if d and all(
                        self.fits(m, self.grid.value(m) + change)
                        for m, change in ((across, -d * s_c), (down, -d * s_r), (corner, d * s_r * s_c))
                    ):
                        return True
        return False


def _narrow(equations, watch, domains: dict[Key, _Domain], start: Iterable[int], pinned_by) -> bool:
    """Narrow ``domains`` through the equations (those in ``start`` first, then those of every number narrowed)
    until nothing changes. :returns: False when some number has no value left (a contradiction)."""
    queue = deque(dict.fromkeys(start))
    queued = set(queue)
    budget = 50 * len(equations) + 1000  # bounds on long cycles can creep one by one; the reader gives up then
    while queue and budget:
        budget -= 1
        index = queue.popleft()
        queued.discard(index)
        line, terms, constant = equations[index]
        scaled = [_scale(domains[key], c) for key, c in terms]
        if sum(1 for d in scaled if d[-1][1] is None) > 1 and sum(1 for d in scaled if d[0][0] is None) > 1:
            continue  # two terms unbounded each way: every term can still be anything, nothing narrows
        before: list[_Domain] = [[(0, 0)]]
        for domain in scaled[:-1]:
            before.append(_add(before[-1], domain))
        after: _Domain = [(0, 0)]
        for i in range(len(terms) - 1, -1, -1):
            key, c = terms[i]
            # c * value = constant - (the other terms)
            possible = _add([(constant, constant)], _negate(_add(before[i], after)))
            narrowed = _intersect(domains[key], _divide(possible, c))
            after = _add(after, scaled[i])
            if not narrowed:
                return False
            if narrowed != domains[key]:
                domains[key] = narrowed
                if pinned_by is not None and _single(narrowed):
                    pinned_by.setdefault(key, line)
                for other in watch[key]:
                    if other != index and other not in queued:
                        queue.append(other)
                        queued.add(other)
    return True


# --- what a hidden number can be -----------------------------------------------------------------------------------


def _domain(key: Key, hidden: dict[Key, str], k: int) -> _Domain:
    if hidden[key] == PRIMARY:
        return [(1, k - 1)]
    return [(0, 0), (k, None)]


def _single(domain: _Domain) -> bool:
    return len(domain) == 1 and domain[0][0] is not None and domain[0][0] == domain[0][1]


def _values(domain: _Domain) -> list[int]:
    """The values of a bounded domain (a primary's)."""
    return [v for lo, hi in domain for v in range(lo, hi + 1)]


def _add(a: _Domain, b: _Domain) -> _Domain:
    """The sums of a number from ``a`` and one from ``b``."""
    sums = []
    for lo_a, hi_a in a:
        for lo_b, hi_b in b:
            lo = None if lo_a is None or lo_b is None else lo_a + lo_b
            hi = None if hi_a is None or hi_b is None else hi_a + hi_b
            sums.append((lo, hi))
    return _merge(sums)


def _negate(a: _Domain) -> _Domain:
    return _merge([(None if hi is None else -hi, None if lo is None else -lo) for lo, hi in a])


def _scale(a: _Domain, c: int) -> _Domain:
    """``c`` times the numbers of ``a`` (for |c| > 1 a superset: the numbers between the multiples too)."""
    if c < 0:
        return _negate(_scale(a, -c))
    return [(None if lo is None else lo * c, None if hi is None else hi * c) for lo, hi in a]


def _divide(a: _Domain, c: int) -> _Domain:
    """The integers x with c * x in ``a``."""
    if c < 0:
        return _divide(_negate(a), -c)
    out = []
    for lo, hi in a:
        lo = None if lo is None else -(-lo // c)
        hi = None if hi is None else hi // c
        if lo is None or hi is None or lo <= hi:
            out.append((lo, hi))
    return _merge(out)


def _intersect(a: _Domain, b: _Domain) -> _Domain:
    out = []
    for a_lo, a_hi in a:
        for b_lo, b_hi in b:
            lo = b_lo if a_lo is None else a_lo if b_lo is None else max(a_lo, b_lo)
            hi = b_hi if a_hi is None else a_hi if b_hi is None else min(a_hi, b_hi)
            if lo is None or hi is None or lo <= hi:
                out.append((lo, hi))
    return _merge(out)


def _merge(intervals: list[_Interval]) -> _Domain:
    ordered = sorted(intervals, key=lambda i: float("-inf") if i[0] is None else i[0])
    out: _Domain = []
    for lo, hi in ordered:
        if out:
            last_lo, last_hi = out[-1]
            if last_hi is None or (lo is not None and lo <= last_hi + 1):
                out[-1] = (last_lo, None if last_hi is None or hi is None else max(last_hi, hi))
                continue
        out.append((lo, hi))
    return out


# --- choosing complements ------------------------------------------------------------------------------------------


def _single_members(grid: Grid, lines, hidden: dict[Key, str]) -> None:
    """Until no line has exactly one hidden member (other than a zero), hide another member of each line that has."""
    changed = True
    while changed:
        changed = False
        for line in lines:
            secret = [key for key, _ in line if key in hidden]
            if len(secret) == 1 and grid.value(secret[0]) and _protect(lines, hidden, secret[0], line):
                changed = True


def _protect(lines, hidden: dict[Key, str], key: Key, line) -> bool:
    """Hide one more number next to the exposed ``key``: in ``line``, else in any line through ``key``, else in any
    line with a hidden member. :returns: False when there is nothing left to hide."""
    places = [line] if line is not None else []
    places.append([member for other in lines if any(m == key for m, _ in other) for member in other])
    places.append([member for other in lines if any(m in hidden for m, _ in other) for member in other])
    for members in places:
        candidates = [(m, v) for m, v in members if m not in hidden]
        if candidates:
            # A non-zero cell, else a non-zero total, else a zero (a zero protects least: a reader may guess it).
            best, _ = min(candidates, key=lambda mv: (mv[1] == 0, mv[0][0] != "cell", mv[1], str(mv[0])))
            hidden[best] = COMPLEMENT
            return True
    return False
