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
# Database URIs: SQLAlchemy takes a raw "/" in the password, so it runs to the last "@".
_DB_SCHEME = (
    r"(?:[A-Za-z][A-Za-z0-9.\-]*\+[A-Za-z0-9.\-]+|postgres(?:ql)?|mysql|mariadb|mssql|oracle)"
)
_DB_IN_TEXT = re.compile(rf"(?P<head>\b{_DB_SCHEME}://[^\s/:@]*:)\S*@")
# ?password=… in a query string, password=… in a libpq DSN or an error message.
_KEY_VALUE = re.compile(r"(?i)\b(?P<head>password|passwd|pwd)=[^\s&;'\"]+")


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``; unchanged when it has none."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return redact_text(uri)
    if password is None or (re.match(rf"{_DB_SCHEME}://[^/]*/", uri) and "@" in parts.path):
        # No password in the authority, or a raw "/" in a database password: mask in text.
        return redact_text(uri)
    if "+" in parts.scheme or parts.scheme in {"postgresql", "postgres", "mysql", "mssql"}:
        from sqlalchemy.engine import make_url

        try:
            url = make_url(uri)
        except Exception:  # not an SQLAlchemy URL after all: mask it below
            url = None
        # SQLAlchemy splits at the first "@"; a raw "@" in the password would leak its tail.
        if url is not None and url.password == unquote(password):
            return redact_text(str(url.render_as_string(hide_password=True)))
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6: keep the brackets urlsplit removed
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return redact_text(urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}")))


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
    text = _DB_IN_TEXT.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    text = _IN_TEXT.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group('head')}={MASK}", text)


class RedactingFilter(logging.Filter):
    """A handler filter that masks passwords in the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
