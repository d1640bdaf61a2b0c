"""Pieces of the test harness that the benchmarks use too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask.testing import FlaskClient


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class FreshContextClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    Without this, a test holding an app context would share ``g`` (the signed-in user) and the database session
    with the requests it makes, and hide bugs that only show across requests.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)
