"""The one place that hides passwords in URIs and text before they are shown or logged.

API: :func:`redact_uri`, :func:`redact_text`, :class:`RedactingFilter`.

Database URIs are rendered by SQLAlchemy (``render_as_string(hide_password=True)``), the
renderer MLflow's own stores use; other URIs (``http://user:pw@host``) get the same ``***``
through the standard library's URL parser. :func:`redact_text` covers URIs embedded in a
message (errors from libraries, warnings), and :class:`RedactingFilter` applies it to every
log record the CLI emits.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@ — the password is everything up to the last "@" of the authority.
_IN_TEXT = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)[^\s/]*@")


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``; unchanged when it has none."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return redact_text(uri)
    if password is None:
        return uri
    if "+" in parts.scheme or parts.scheme in {"postgresql", "postgres", "mysql", "mssql"}:
        from sqlalchemy.engine import make_url

        try:
            url = make_url(uri)
        except Exception:  # not an SQLAlchemy URL after all: mask it below
            url = None
        # SQLAlchemy splits at the first "@"; a raw "@" in the password would leak its tail.
        if url is not None and url.password == unquote(password):
            return str(url.render_as_string(hide_password=True))
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
    return _IN_TEXT.sub(lambda m: f"{m.group('head')}{MASK}@", text)


class RedactingFilter(logging.Filter):
    """A handler filter that masks passwords in the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
