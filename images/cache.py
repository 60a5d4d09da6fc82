"""Where built and downloaded images live: a content-addressed cache directory.

``~/.cache/vmws/images`` (or ``$VMWS_IMAGE_CACHE``, or ``$XDG_CACHE_HOME/vmws/images``)
holds one directory per image key. Entries are built in a temporary sibling and
renamed into place, so concurrent builders (xdist workers, parallel CI jobs) never see
half an image and the loser of a race simply discards its copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from images.errors import ImageError

__all__ = ["cache_root", "ensure_free_space", "cached_dir"]


def cache_root() -> Path:
    """The image cache directory (not created here)."""
    explicit = os.environ.get("VMWS_IMAGE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vmws" / "images"


def ensure_free_space(directory: Path, needed: int, what: str) -> None:
    """Raise ``ImageError`` unless ``directory``'s file system has ``needed`` bytes free."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise ImageError(
            f"not enough disk space for {what}: it needs {needed / 2**20:.0f} MiB in "
            f"{directory}, {free / 2**20:.0f} MiB are free; free some space there or point "
            f"VMWS_IMAGE_CACHE at a larger disk"
        )


def cached_dir(
    key: str, build: Callable[[Path], None], *, root: Path | None = None, needed: int = 0, what: str = "an image"
) -> Path:
    """The cache directory for ``key``, calling ``build(tmpdir)`` to fill it if absent.

    ``build`` writes into an empty temporary directory that is then renamed to the
    key's directory in one step.
    """
    root = cache_root() if root is None else root
    final = root / key
    if final.is_dir():
        return final
    ensure_free_space(root, needed, what)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:
            # Another builder won the race; its copy has the same content.
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
