"""Background tasks of the cases area: the register import's dry run and import.

Both take the batch's and the user's ids (and plain values), read the stored file again, and report progress every
:data:`~casework.cases.importer.CHUNK` rows. Both are safe to run twice: the dry run saves nothing but the batch's
counts, and the import skips every row whose case it already created (by the row's fingerprint).
"""

from __future__ import annotations

from flask_babel import force_locale

from casework.cases import importer
from casework.i18n import LANGUAGES
from casework.jobs import JobContext, task


def _language(locale: str | None) -> str:
    # The messages of a row's problems are kept in the job's result, in the language of the worker who uploaded.
    return locale if locale in LANGUAGES else "vi"


@task(importer.CHECK_TASK)
def import_check(ctx: JobContext, batch_id: str, user_id: str, locale: str = "vi") -> dict:
    """Dry-run a register: what would become of each row; nothing is saved."""
    with force_locale(_language(locale)):
        batch, actor = importer.batch_for_job(batch_id, user_id)
        return importer.check_register(batch, actor, progress=ctx.progress)


@task(importer.RUN_TASK)
def import_run(
    ctx: JobContext, batch_id: str, user_id: str, choices: dict[str, str] | None = None, locale: str = "vi"
) -> dict:
    """Import a register, committing every chunk of rows; the choices for split old communes are checked again."""
    with force_locale(_language(locale)):
        batch, actor = importer.batch_for_job(batch_id, user_id)
        checked = importer.clean_choices(choices or {}, actor)
        return importer.import_register(batch, actor, choices=checked, progress=ctx.progress)
