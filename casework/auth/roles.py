"""The roles a casework user can hold, and what kind of area each covers."""

from __future__ import annotations

SOCIAL_WORKER = "social_worker"
SUPERVISOR = "supervisor"
PROVINCIAL_OFFICER = "provincial_officer"
COMMITTEE_MEMBER = "committee_member"
AUDITOR = "auditor"
ADMIN = "admin"
#: Records the payments made and exports the month's ledger; sees payees, never a child's record.
FINANCE_OFFICER = "finance_officer"

ROLES = (SOCIAL_WORKER, SUPERVISOR, PROVINCIAL_OFFICER, COMMITTEE_MEMBER, AUDITOR, ADMIN, FINANCE_OFFICER)

#: Roles that work in named communes; the others cover their whole province.
COMMUNE_ROLES = frozenset({SOCIAL_WORKER, SUPERVISOR})

#: Roles that must enrol a second factor (enforced from the protection issue on).
SECOND_FACTOR_ROLES = frozenset({SUPERVISOR, PROVINCIAL_OFFICER, AUDITOR, ADMIN, FINANCE_OFFICER})
