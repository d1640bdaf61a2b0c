"""Built-in tasks of the jobs mechanism itself."""

from __future__ import annotations

import time

from casework.jobs import JobContext, task


@task("jobs.selfcheck")
def selfcheck(ctx: JobContext, steps: int = 5, pause: float = 0.0, fail: bool = False) -> dict:
    """Walk through ``steps`` steps reporting progress, so operators can see that workers run jobs.

    With ``fail`` it raises at the end, to show how a failed job is recorded.
    """
    steps = max(1, min(int(steps), 1000))
    for step in range(1, steps + 1):
        if pause:
            time.sleep(min(float(pause), 5.0))
        ctx.progress(int(100 * step / steps), f"step {step} of {steps}")
    if fail:
        raise RuntimeError("selfcheck asked to fail")
    return {"steps": steps}
