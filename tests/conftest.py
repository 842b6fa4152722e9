"""Session-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib

import pytest

from tests.postgres import postgres_server
from tests.postgres import PostgresUnavailable


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a throwaway PostgreSQL server on loopback, stopped after the session.

    Skips (with how to install it) where no server can be started.
    """
    pytest.importorskip(
        "psycopg2", reason="psycopg2 is missing: `pip install psycopg2-binary` (extra `postgres`)"
    )
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as e:
            pytest.skip(f"No PostgreSQL server for the distributed tests: {e}")
        yield url
