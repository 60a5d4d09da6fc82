"""HTTP(S) downloads for the image recipes: small files into memory, large ones to disk.

Every failure is an ``ImageError`` that names the URL and what went wrong (HTTP status,
network error, size limit), never a traceback. Sizes are capped because the other end
is not trusted: a checksum file is small, and an image is at most a few times the size
the manifest expects, so a broken or hostile server cannot fill the disk or the memory.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from pathlib import Path
from typing import IO

from images.errors import DownloadError

__all__ = ["TIMEOUT", "Progress", "check_url", "fetch_bytes", "stream_to_file"]

TIMEOUT = 60.0  # seconds without a byte before a download is abandoned
_CHUNK = 1 << 20
_HEADERS = {"User-Agent": "vmws-images"}


def check_url(url: str) -> None:
    """Raise ``DownloadError`` unless ``url`` is an absolute http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(f"{url!r} is not an http(s) URL", url=url)


def _open(url: str) -> http.client.HTTPResponse:
    check_url(url)
    request = urllib.request.Request(url, headers=_HEADERS)
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        # The standard phrase, not the server's: its reason text is not ours to print.
        try:
            phrase = HTTPStatus(exc.code).phrase
        except ValueError:
            phrase = "error"
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {phrase}", url=url, status=exc.code) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(f"cannot download {url}: {reason}; check the network", url=url) from None
    return response


def fetch_bytes(url: str, *, limit: int) -> bytes:
    """The body at ``url``, refused if it is larger than ``limit`` bytes."""
    with _open(url) as response:
        try:
            data = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"download of {url} failed: {exc}", url=url) from None
    if len(data) > limit:
        raise DownloadError(f"{url} is larger than {limit} bytes, which is not what was expected there", url=url)
    return data


class Progress:
    """A one-line progress bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, label: str, total: int | None, out: IO[str]) -> None:
        self.label, self.total, self.out = label, total, out
        self.done = 0
        self._last = -1

    def advance(self, count: int) -> None:
        self.done += count
        if self.total:
            percent = min(100, self.done * 100 // self.total)
            if percent == self._last:
                return
            self._last = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            text = f"{self.label} [{bar}] {percent:3d}% {self.done / 2**20:.0f}/{self.total / 2**20:.0f} MiB"
        else:
            text = f"{self.label} {self.done / 2**20:.0f} MiB"
        end = "\r" if self.out.isatty() else "\n"
        if end == "\n" and self.total and self._last % 10:
            return  # not a terminal: a line every 10 %
        self.out.write(text + end)
        self.out.flush()

    def finish(self) -> None:
        if self.out.isatty():
            self.out.write("\n")
            self.out.flush()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def stream_to_file(
    url: str, directory: Path, *, algorithms: tuple[str, ...], limit: int, label: str, progress: IO[str] | None = None
) -> tuple[Path, dict[str, str]]:
    """Stream ``url`` into a new temporary file in ``directory``, hashing as it goes.

    Returns the file and its hex digests by algorithm. The caller verifies them and
    renames the file into place (or deletes it); on any error here it is deleted.
    """
    digests = {name: hashlib.new(name) for name in algorithms}
    with _open(url) as response:
        length = _content_length(response)
        if length is not None and length > limit:
            raise DownloadError(f"{url} is {length} bytes, more than the {limit} expected at most", url=url)
        bar = Progress(label, length, progress or sys.stderr)
        descriptor, name = tempfile.mkstemp(dir=directory, prefix=f".{label}.", suffix=".part")
        partial = Path(name)
        try:
            with open(descriptor, "wb") as handle:
                done = 0
                while chunk := response.read(_CHUNK):
                    done += len(chunk)
                    if done > limit:
                        raise DownloadError(f"{url} sent more than the {limit} bytes expected at most", url=url)
                    handle.write(chunk)
                    for digest in digests.values():
                        digest.update(chunk)
                    bar.advance(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"download of {url} failed: {exc}; free disk space or retry", url=url) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        bar.finish()
    return partial, {name: digest.hexdigest() for name, digest in digests.items()}
