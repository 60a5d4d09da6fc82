"""The Redis URL: where it comes from, what it may say, and how it is shown.

The URL may carry a password (``redis://user:PASSWORD@host``), so it comes from
``VMWS_REDIS_URL`` or a file rather than ``argv``, and is shown only redacted.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact", "validate", "read_url_file"]

SCHEMES = ("redis", "rediss")


def redact(url: str) -> str:
    """``redis://user:secret@host:6379/0`` → ``redis://user:***@host:6379/0``; a password
    given as a query option (``?password=…``, which redis-py also takes) is hidden too."""
    parts = urlsplit(url)
    if parts.query:
        options = (option.partition("=") for option in parts.query.split("&"))
        parts = parts._replace(
            query="&".join(f"{key}={'***' if 'pass' in unquote(key).lower() else value}" for key, _, value in options)
        )
    if parts.password is None and "@" not in parts.netloc:
        return urlunsplit(parts)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def validate(url: str) -> str:
    """The URL, stripped, or ``ValueError`` (which never repeats the password)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"--redis-url {redact(url)!r} is not a valid URL") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"--redis-url must start with redis:// or rediss:// (TLS), got {redact(url)!r}")
    if not parts.hostname:
        raise ValueError(f"--redis-url {redact(url)!r} names no host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError(f"--redis-url {redact(url)!r}: the path must be a database number, like /0")
    del port
    return url


def read_url_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the Redis URL file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"the Redis URL file {path} is empty")
    return text
