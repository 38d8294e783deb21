"""Redis credentials: read from the environment or a file, masked wherever a URL is written or printed.

A password may still come inside ``--redis-url`` (``redis://:PASSWORD@host``), but run folders,
checkpoints, rendered RayJobs and error messages only ever hold the masked form
(``redis://:***@host``). A masked or absent password is read, when the client connects, from
``PIXELPLAN_REDIS_PASSWORD`` or from the file named by ``PIXELPLAN_REDIS_PASSWORD_FILE`` (a
Kubernetes secret mounted as a file or as an environment variable).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
PASSWORD_ENV = "PIXELPLAN_REDIS_PASSWORD"
PASSWORD_FILE_ENV = "PIXELPLAN_REDIS_PASSWORD_FILE"


def redact_url(url: str | None) -> str | None:
    """``url`` with its password (if any) replaced by ``***``; safe to write and print."""
    if not url or urlsplit(url).password in (None, MASK):
        return url
    return _with_password(url, MASK)


def without_password(url: str) -> str:
    """``url`` with no password at all (redis-py lets a URL's password win over the one passed beside it)."""
    return url if urlsplit(url).password is None else _with_password(url, None)


def _with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    user = parts.username or ""
    userinfo = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
    return urlunsplit(parts._replace(netloc=userinfo + host + (f":{parts.port}" if parts.port is not None else "")))


def url_password(url: str) -> str | None:
    """The password to connect with: the URL's own, else the environment variable, else the file."""
    password = urlsplit(url).password
    if password is not None and password != MASK:
        return unquote(password)
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    path = os.environ.get(PASSWORD_FILE_ENV)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{PASSWORD_FILE_ENV}={path} cannot be read: {exc.strerror}") from None
    if password == MASK:
        raise ValueError(f"{redact_url(url)} needs its password: the run folder never stores it; set "
                         f"{PASSWORD_ENV} or {PASSWORD_FILE_ENV}, or pass it in --redis-url again")
    return None
