"""Passwords the masker missed: in a query string or DSN, and with a raw ``/``.

libpq and SQLAlchemy take ``?password=…`` (and ``password=…`` in a DSN), and SQLAlchemy
accepts a raw ``/`` inside the password of a database URI. Both were printed in full by
``mlcycle train``'s ``ui`` line, errors and log records.
"""

from __future__ import annotations

import pytest

from mlcycle.redact import redact_text, redact_uri

PW = "s3cr3t-Pw"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://h:5432/db?user=u&password={PW}",
        f"postgresql+psycopg2://h/db?sslmode=require&PASSWORD={PW}&x=1",
        f"connection to server failed: host=h user=u password={PW} dbname=db",
        f"postgresql+psycopg2://u:ab/{PW}@h:5432/db",
    ],
)
def test_query_dsn_and_slash_passwords_are_masked(text: str) -> None:
    assert PW not in redact_text(text)
    assert PW not in redact_uri(text)
    assert "***" in redact_uri(text)


def test_urls_with_at_signs_in_their_path_keep_their_path() -> None:
    text = "GET http://localhost:5000/api/2.0/runs@x failed"
    assert redact_text(text) == text


def test_an_ipv6_host_keeps_its_brackets() -> None:
    assert redact_uri(f"http://u:{PW}@[::1]:5000/") == "http://u:***@[::1]:5000/"
