"""Background tasks of the locations area."""

from __future__ import annotations

from casework.jobs import JobContext, task
from casework.locations import operations


@task("locations.reload_units")
def reload_units(ctx: JobContext) -> dict:
    """Load the shipped administrative units again (safe to run twice: it only adds or corrects)."""
    return operations.load_units(progress=ctx.progress)
