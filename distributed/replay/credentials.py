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
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
PASSWORD_ENV = "PIXELPLAN_REDIS_PASSWORD"
PASSWORD_FILE_ENV = "PIXELPLAN_REDIS_PASSWORD_FILE"


def redact_url(url: str | None) -> str | None:
    """``url`` with its password (if any) replaced by ``***``; safe to write and print."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None or parts.password == MASK:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def url_password(url: str) -> str | None:
    """The password to connect with: the URL's own, else the environment variable, else the file."""
    password = urlsplit(url).password
    if password is not None and password != MASK:
        return password
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
