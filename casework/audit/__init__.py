"""The tamper-evident audit trail (being built: this module's API is fixed, its storage arrives with it).

Every sign-in and failed sign-in, every create, change, delete, workflow transition, approval, export and download,
and every view of a child's identifying details is recorded with :func:`record`, in the same transaction as the
change it records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any


def record(
    action: str,
    *,
    object_type: str | None = None,
    object_id: uuid.UUID | str | None = None,
    fields: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    actor=None,
) -> None:
    """Record an audit event in the current transaction.

    :param action: what happened, e.g. ``auth.sign_in``, ``auth.sign_in_failed``, ``child.view``, ``file.download``.
    :param fields: names of the changed fields (never their values).
    :param details: small non-identifying facts (codes, counts); never plaintext of an encrypted field.
    :param actor: the user acting; defaults to the signed-in user of the request, or the system.
    """
