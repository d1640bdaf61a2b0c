"""Background tasks of the security mechanisms."""

from __future__ import annotations

from casework.jobs import JobContext, task
from casework.security import rotation
from casework.security.keys import keyring


@task("security.reencrypt")
def reencrypt(ctx: JobContext) -> dict:
    """Re-seal every value and index entry under the current data key (resumable, safe to run twice).

    Resuming after a killed worker needs nothing more than running again: a value still under an old key is still to
    do, and each batch commits with its index entries, so none is sealed twice or lost.
    """
    ring = keyring()
    # The worker's keyring may predate the rotation by a few seconds (it reloads every ten): with the old key taken
    # for current, nothing would look stale and the job would finish having done nothing.
    ring.forget()
    return rotation.reencrypt_all(ring, progress=ctx.progress)
