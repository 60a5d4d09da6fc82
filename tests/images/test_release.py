"""Reading a release's checksum file: the one line for a file, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from images.errors import ImageError
from images.release import algorithm_of, expected_digest, verify_signature

A, B = "a" * 64, "b" * 64
URL = "https://example.invalid/r/SHA256SUMS"


@pytest.mark.parametrize("line", [f"{A} *disk.img", f"{A}  disk.img", f"{A.upper()}  ./disk.img", f"{A} *disk.img\r"])
def test_both_sum_styles_are_read(line: str) -> None:
    sums = f"{B} *disk.img.manifest\n{line}\n{B}  other.img\n".encode()
    assert expected_digest(sums, "disk.img", "sha256", url=URL) == A


def test_a_prefix_or_suffix_of_the_name_is_not_the_entry() -> None:
    sums = f"{B} *disk.img.manifest\n{B} *old-disk.img\n".encode()
    with pytest.raises(ImageError, match=f"{URL} has no entry for disk.img"):
        expected_digest(sums, "disk.img", "sha256", url=URL)


def test_two_different_digests_for_one_file_are_refused() -> None:
    with pytest.raises(ImageError, match="2 different digests"):
        expected_digest(f"{A} *disk.img\n{B}  disk.img\n".encode(), "disk.img", "sha256", url=URL)


@pytest.mark.parametrize("digest", ["a" * 128, "g" * 64, "a" * 63])
def test_malformed_digests_are_refused(digest: str) -> None:
    with pytest.raises(ImageError, match="malformed sha256 digest"):
        expected_digest(f"{digest} *disk.img\n".encode(), "disk.img", "sha256", url=URL)


def test_binary_garbage_is_no_entry() -> None:
    with pytest.raises(ImageError, match="has no entry"):
        expected_digest(b"\xff\xfe\x00garbage\n\n  \n", "disk.img", "sha256", url=URL)


def test_algorithm_follows_the_file_name() -> None:
    assert algorithm_of("SHA256SUMS") == "sha256"
    assert algorithm_of("SHA512SUMS") == "sha512"
    with pytest.raises(ImageError, match="neither"):
        algorithm_of("SHA256SUMS.gpg")


def test_missing_keyring_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="the keyring .*absent.gpg is missing"):
        verify_signature(b"data", b"sig", tmp_path / "absent.gpg", data_url=URL, signature_url=URL + ".gpg")
