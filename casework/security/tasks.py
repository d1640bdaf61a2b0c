"""Background tasks of the security mechanisms."""

from __future__ import annotations

from casework.jobs import JobContext, task
from casework.security import rotation
from casework.security.keys import keyring


@task("security.reencrypt")
def reencrypt(ctx: JobContext) -> dict:
    """Re-seal every value and index entry under the current data key (resumable, safe to run twice)."""
    return rotation.reencrypt_all(keyring(), progress=ctx.progress)
