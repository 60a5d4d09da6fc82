"""A logged-in session through the console: sudo, root shells, users, redirection,
files, floods and waits that Ctrl-C stops, personalities, and ANSI-safe echo."""

from __future__ import annotations

import re

import pytest

from simulator.console import Console, ConsoleState
from simulator.fleet import Personality, User
from simulator.floods import SYSLOG_LINES
from simulator.personalities import ALPINE, DEBIAN
from simulator.session import BUSY_WRITE_RATE
from tests.simulator.consolehost import RecordingHost, drain_flood, logged_in, make_console, run

PROMPT = b"admin@vm-a:~$ "


# sudo and root shells


def test_sudo_asks_for_the_password_without_echo_then_remembers_it(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"sudo whoami") == b"sudo whoami\r\n[sudo] password for admin: "
    assert console.state is ConsoleState.SECRET
    console.feed(b"adm\x7fmin\n")  # erasing works, and nothing is echoed
    assert host.take() == b"\r\nroot\r\n" + PROMPT
    assert run(console, host, b"sudo id") == b"sudo id\r\nuid=0(root) gid=0(root) groups=0(root)\r\n" + PROMPT
    host.clock.advance(901)  # sudo's cache (15 min) has run out
    assert run(console, host, b"sudo id").endswith(b"[sudo] password for admin: ")


def test_sudo_wrong_passwords(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    run(console, host, b"sudo cat /etc/shadow")
    assert run(console, host, b"nope") == b"\r\nSorry, try again.\r\n[sudo] password for admin: "
    run(console, host, b"nope")
    assert run(console, host, b"nope") == b"\r\nsudo: 3 incorrect password attempts\r\n" + PROMPT
    # ^C at the password prompt gives up too
    run(console, host, b"sudo ls")
    console.feed(b"\x03")
    assert host.take() == b"^C\r\n" + PROMPT
    assert run(console, host, b"whoami") == b"whoami\r\nadmin\r\n" + PROMPT


def test_sudo_i_pushes_a_root_shell_and_exit_pops_it(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    run(console, host, b"sudo -i")
    assert run(console, host, b"admin") == b"\r\nroot@vm-a:~# "
    assert run(console, host, b"pwd") == b"pwd\r\n/root\r\nroot@vm-a:~# "
    assert b"root:$6$" in run(console, host, b"cat /etc/shadow")
    assert run(console, host, b"exit") == b"exit\r\nlogout\r\n" + PROMPT
    console.feed(b"sudo -s\n")  # cached: no password this time
    assert host.take().endswith(b"root@vm-a:~# ")
    console.feed(b"\x04")  # Ctrl-D leaves the root shell, then the login
    assert host.take() == b"logout\r\n" + PROMPT
    console.feed(b"\x04")
    assert host.take().endswith(b"logout\r\n\r\nUbuntu 22.04.4 LTS vm-a ttyS0\r\n\r\nvm-a login: ")


def test_a_user_without_sudo_is_reported(host: RecordingHost) -> None:
    users = (User("admin", "admin", sudo=True), User("guest", "guest"))
    console = make_console(host, Personality(users=users))
    logged_in(console, host, b"guest", b"guest")
    assert run(console, host, b"whoami") == b"whoami\r\nguest\r\nguest@vm-a:~$ "
    run(console, host, b"sudo ls")
    out = run(console, host, b"guest")
    assert out == b"\r\nguest is not in the sudoers file.  This incident will be reported.\r\nguest@vm-a:~$ "
    assert b"Permission denied" in run(console, host, b"cat /etc/shadow")
    assert b"cannot open directory '/root': Permission denied" in run(console, host, b"ls /root")


def test_an_unknown_user_cannot_log_in(console: Console, host: RecordingHost) -> None:
    console.feed(b"mallory\nadmin\n")
    host.clock.advance(1.1)
    assert host.take().endswith(b"\r\nLogin incorrect\r\nvm-a login: ")


# Redirection and files


def test_redirection_writes_files_that_cat_and_ls_see(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"echo hello > notes2.txt") == b"echo hello > notes2.txt\r\n" + PROMPT
    run(console, host, b"echo again >> ~/notes2.txt")
    assert run(console, host, b"cat notes2.txt") == b"cat notes2.txt\r\nhello\r\nagain\r\n" + PROMPT
    assert b"notes.txt  notes2.txt" in run(console, host, b"ls")
    assert host.written >= 2 * 4096  # each write touched the disk
    assert run(console, host, b"echo x > /etc/passwd").startswith(
        b"echo x > /etc/passwd\r\n-bash: /etc/passwd: Permission denied"
    )
    assert b"Is a directory" in run(console, host, b"echo x > /tmp")
    assert b"syntax error" in run(console, host, b"echo x >")
    run(console, host, b"seq 100000 > /tmp/n")  # kept as a range: no 600 KB held
    assert b"-rw-r--r-- 1 admin admin    588895" in run(console, host, b"ls -l /tmp/n")
    console.feed(b"cat /tmp/n\n")
    out = drain_flood(console, host)
    assert out.endswith(b"99999\r\n100000\r\n" + PROMPT)


def test_dd_and_touch(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    out = run(console, host, b"dd if=/dev/zero of=/tmp/z bs=1M count=100")
    assert out.startswith(
        b"dd if=/dev/zero of=/tmp/z bs=1M count=100\r\n100+0 records in\r\n100+0 records out\r\n"
        b"104857600 bytes (104.9 MB, 100 MiB) copied, "
    )
    assert host.written == 100 << 20
    run(console, host, b"touch /tmp/empty")
    assert b"empty  z" in run(console, host, b"ls /tmp")
    assert b"Permission denied" in run(console, host, b"dd if=/dev/zero of=/etc/z bs=1K count=1")


def test_yes_into_a_file_writes_until_ctrl_c(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"yes > /tmp/y") == b"yes > /tmp/y\r\n"
    assert console.state is ConsoleState.BUSY and console.flooding and not console.pumping
    console.feed(b"typed ahead")
    host.clock.advance(2.0)
    assert console.busy_writes() == int(2.0 * BUSY_WRITE_RATE)
    console.feed(b"\x03")
    assert host.take() == b"^C\r\n" + PROMPT  # type-ahead before ^C is dropped
    assert host.written == int(2.0 * BUSY_WRITE_RATE) and console.busy_writes() == 0
    assert run(console, host, b"yes > /dev/null") == b"yes > /dev/null\r\n"
    console.feed(b"\x03")
    assert host.take() == b"^C\r\n" + PROMPT and host.written == int(2.0 * BUSY_WRITE_RATE)


def test_pipes_and_lists_are_refused_plainly(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert b"runs one command at a time (no '|')" in run(console, host, b"ls | wc -l")
    assert b"runs one command at a time (no ';')" in run(console, host, b"ls; ls")


# Commands that take time or print volume


def test_sleep_waits_and_ctrl_c_cuts_it_short(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"sleep 5") == b"sleep 5\r\n"
    console.feed(b"whoami\n")  # type-ahead: read when the prompt is back
    host.clock.advance(4.9)
    assert host.take() == b""
    host.clock.advance(0.2)
    assert host.take() == PROMPT + b"whoami\r\nadmin\r\n" + PROMPT
    run(console, host, b"sleep 1m")
    console.feed(b"\x03")
    assert host.take() == b"^C\r\n" + PROMPT
    host.clock.advance(120)
    assert host.take() == b""  # the interrupted sleep's timer does nothing


def test_cat_of_the_big_log_is_a_flood_and_head_tail_read_it(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"cat /var/log/syslog\n")
    assert console.pumping
    console.pump(64 * 1024)
    first = host.take()
    assert re.match(rb"cat /var/log/syslog\r\nDec 30 23:00:00 vm-a \S+: ", first)
    console.feed(b"\x03")
    assert host.take() == b"^C\r\n" + PROMPT
    console.feed(b"tail -n 2 /var/log/syslog\n")
    tail = drain_flood(console, host)
    assert tail.count(b"\r\n") == 3 and tail.endswith(
        b"23:59:59 vm-a systemd[1]: Starting Daily apt download activities...\r\n" + PROMPT
    )
    console.feed(b"head -3 /etc/os-release\n")
    assert host.take() == (
        b'head -3 /etc/os-release\r\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\r\nNAME="Ubuntu"\r\n'
        b'VERSION_ID="22.04"\r\n' + PROMPT
    )
    assert SYSLOG_LINES >= 100_000


def test_dmesg_prints_the_kernel_log_then_later_messages(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"dmesg\n")
    out = drain_flood(console, host)
    assert out.startswith(b"dmesg\r\n[    0.000000] Linux version test\r\n")
    stamps = [float(m) for m in re.findall(rb"^\[\s*(\d+\.\d{6})\]", out, re.M)]
    assert len(stamps) > 300 and stamps == sorted(stamps)  # monotonic, one every ~30 s of uptime
    assert out.endswith(PROMPT)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"id", b"uid=1000(admin) gid=1000(admin) groups=1000(admin),4(adm),27(sudo)\r\n"),
        (b"date", b"Thu Jan  1 00:00:00 UTC 2026\r\n"),
        (b"nproc", b"2\r\n"),
        (b"uname -r -m", b"5.15.0-105-generic x86_64\r\n"),
        (b"echo -n hi", b"hi"),
        (b"clear", b"\x1b[H\x1b[2J"),
        (b"top", b"top: needs a full-screen terminal; this simulated serial console has none\r\n"),
        (b"cd /nope", b"-bash: cd: /nope: No such file or directory\r\n"),
        (b"cd /etc/hostname", b"-bash: cd: /etc/hostname: Not a directory\r\n"),
        (b"sleep x", b"sleep: invalid time interval 'x'\r\nTry 'sleep --help' for more information.\r\n"),
    ],
)
def test_more_commands(console: Console, host: RecordingHost, command: bytes, expected: bytes) -> None:
    logged_in(console, host)
    assert run(console, host, command) == command + b"\r\n" + expected + PROMPT


def test_free_df_and_ps_look_like_their_tools(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"free -m").startswith(b"free -m\r\n               total        used        free")
    assert b"/dev/vda1       9.6G" in run(console, host, b"df -h")
    assert b"agetty" in run(console, host, b"ps")


# Personalities


def test_debian_and_alpine_look_like_themselves(host: RecordingHost) -> None:
    debian = make_console(host, DEBIAN, "deb-1")
    debian.show_login()
    assert host.take() == b"\r\nDebian GNU/Linux 12 deb-1 ttyS0\r\n\r\ndeb-1 login: "
    debian.feed(b"admin\nadmin\n")
    out = host.take()
    assert b"Linux deb-1 6.1.0-18-cloud-amd64" in out and b"ABSOLUTELY NO WARRANTY" in out
    assert out.endswith(b"admin@deb-1:~$ ")
    alpine = make_console(host, ALPINE, "alp-1")
    alpine.show_login()
    assert host.take() == (
        b"\r\nWelcome to Alpine Linux 3.19\r\nKernel 6.6.14-0-virt on an x86_64 (/dev/ttyS0)\r\n\r\nalp-1 login: "
    )
    alpine.feed(b"root\nalpine\n")
    out = host.take()
    assert b"Welcome to Alpine!" in out and out.endswith(b"alp-1:~# ")
    assert run(alpine, host, b"cat /etc/alpine-release") == b"cat /etc/alpine-release\r\n3.19.1\r\nalp-1:~# "


def test_custom_hostname_and_files(host: RecordingHost) -> None:
    personality = Personality(hostname="{name}.corp.example", files=(("/opt/app/VERSION", "4.2\n"),))
    console = make_console(host, personality, personality.hostname_for("app-1"))
    logged_in(console, host)
    assert run(console, host, b"hostname") == b"hostname\r\napp-1.corp.example\r\nadmin@app-1:~$ "
    assert run(console, host, b"cat /opt/app/VERSION") == b"cat /opt/app/VERSION\r\n4.2\r\nadmin@app-1:~$ "


# ANSI safety


def test_nothing_typed_reaches_the_screen_as_a_control_sequence(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    # ESC sequences, C1 controls (U+009B is CSI), stray continuation bytes, invalid leads, tab, bell
    console.feed(b"echo a\x1b[31mb\xc2\x9bc\x80d\xffe\tf\x07g\xc3\xa9\n")
    out = host.take()
    assert out == "echo abcdefgé\r\nabcdefgé\r\n".encode() + PROMPT
    assert b"\x1b" not in out and b"\xc2\x9b" not in out


def test_every_escape_the_guest_prints_is_a_well_formed_sequence(console: Console, host: RecordingHost) -> None:
    from simulator.bootlog import boot_log, shutdown_log, start_job_line, stop_job_line

    printed = b"".join(line for _, line in boot_log(Personality(), memory_mib=1024, vcpus=1, duration=1.0, seed=3))
    printed += b"".join(line for _, line in shutdown_log(uptime=5.0, duration=1.0, reboot=False))
    printed += start_job_line(Personality(), 12.0) + stop_job_line(75.0, 90.0)
    logged_in(console, host)
    printed += run(console, host, b"clear")
    escapes = re.findall(rb"\x1b[^\x1b]{0,12}", printed)
    assert escapes and all(re.fullmatch(rb"\x1b\[[0-9;]*[mHJ][^\x1b]*", e) for e in escapes), escapes
    assert not re.search(rb"[\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]", printed)
