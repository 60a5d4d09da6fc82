"""The cluster flags: shard arithmetic, the Redis URL, and clear errors from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.scenario import demo_fleet
from vmws.cluster.redis_url import redact, validate
from vmws.cluster.shard import parse_shard, shard_fleet, shard_index


def test_shards_partition_a_fleet_and_the_hash_is_the_documented_one() -> None:
    fleet = demo_fleet()
    parts = [shard_fleet(fleet, parse_shard(f"{k}/4")) for k in range(1, 5)]
    names = sorted(vm.name for part in parts for vm in part.vms)
    assert names == sorted(vm.name for vm in fleet.vms)
    # sha256("my-vm")[:8] big-endian, mod 1000: computed independently of the module
    import hashlib

    expected = int(hashlib.sha256(b"my-vm").hexdigest()[:16], 16) % 1000
    assert shard_index("my-vm", 1000) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "3", "-1/3", "1/3/4"])
def test_bad_shards_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(text)


def test_redis_urls() -> None:
    assert redact("redis://user:pw@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact("rediss://:pw@h/1") == "rediss://:***@h/1"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    # a password as a query option is hidden as well; other options stay readable
    assert (
        redact("rediss://u@h:6380/0?ssl_ca_certs=/etc/ca.pem&password=pw&PASSWORD=x")
        == "rediss://u:***@h:6380/0?ssl_ca_certs=/etc/ca.pem&password=***&PASSWORD=***"
    )
    assert redact("redis://h/0?ssl_ca_certs=/ca.pem") == "redis://h/0?ssl_ca_certs=/ca.pem"
    # redis-py percent-decodes option names too: %70assword is a password
    assert redact("redis://h/0?%70assword=pw") == "redis://h/0?%70assword=***"
    assert validate(" rediss://acl-user:pw@redis.example:6380/2 ") == "rediss://acl-user:pw@redis.example:6380/2"
    for bad in ("http://h", "redis://", "redis://:pw@h/x"):
        with pytest.raises(ValueError) as info:
            validate(bad)
        assert "pw" not in str(info.value)


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmws", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "VMWS_JWT_SECRET": "x" * 40, **env},
    )


def test_cli_refuses_a_bad_shard_and_a_bad_url_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    result = _serve("--shard", "0/3")
    assert result.returncode == 2 and "K counts from 1" in result.stderr and "Traceback" not in result.stderr
    result = _serve(VMWS_REDIS_URL="http://:topsecret@h/0")
    assert result.returncode == 2 and "redis://" in result.stderr and "topsecret" not in result.stderr
    url_file = tmp_path / "url"
    url_file.write_text("")
    result = _serve("--redis-url-file", str(url_file))
    assert result.returncode == 2 and "is empty" in result.stderr
