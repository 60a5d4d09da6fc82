"""The errors of the image recipes: messages that say what to do."""

from __future__ import annotations

__all__ = ["ImageError", "DownloadError"]


class ImageError(Exception):
    """An image could not be built, fetched or prepared.

    The message names what went wrong and how to fix it (install a package, free
    disk space, re-download), because the harness CLI shows it as is.
    """


class DownloadError(ImageError):
    """A download failed: ``url`` is what was fetched, ``status`` its HTTP status if it had one."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
