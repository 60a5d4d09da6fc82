"""The one error type of the image recipes: a message that says what to do."""

from __future__ import annotations

__all__ = ["ImageError"]


class ImageError(Exception):
    """An image could not be built, fetched or prepared.

    The message names what went wrong and how to fix it (install a package, free
    disk space, re-download), because the harness CLI shows it as is.
    """
