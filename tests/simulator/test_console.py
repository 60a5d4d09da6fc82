"""The serial console state machine, driven through a recording host."""

from __future__ import annotations

import pytest

from simulator.console import MAX_INPUT, Console, ConsoleState
from simulator.fleet import Personality
from tests.simulator.consolehost import RecordingHost, logged_in, run


def test_login_banner_and_screen(host: RecordingHost) -> None:
    console = Console("vm-a", Personality(), host, failure_delay=1.0)
    assert console.state is ConsoleState.BOOTING
    assert console.screen() == b""
    console.feed(b"typed during boot\n")
    assert host.take() == b""
    console.show_login()
    banner = b"\r\nUbuntu 22.04.4 LTS vm-a ttyS0\r\n\r\nvm-a login: "
    assert host.take() == banner
    assert console.screen() == banner
    console.feed(b"ad")
    assert console.screen() == b""  # a half-typed name: no redraw


def test_successful_login(console: Console, host: RecordingHost) -> None:
    console.feed(b"admin\r")
    assert host.take() == b"admin\r\nPassword: "
    console.feed(b"admin\r")
    out = host.take()
    assert out.startswith(b"\r\nWelcome to Ubuntu 22.04.4 LTS (GNU/Linux 5.15.0-105-generic x86_64)\r\n")
    assert out.endswith(b"\r\nadmin@vm-a:~$ ")
    assert b"admin\r\n" not in out.split(b"Welcome")[0]  # the password was not echoed
    assert console.state is ConsoleState.SHELL


def test_wrong_password_answers_after_the_delay(console: Console, host: RecordingHost) -> None:
    console.feed(b"admin\nnope\n")
    assert host.take() == b"admin\r\nPassword: \r\n"
    console.feed(b"admin\n")  # typed during the delay: waits for the next prompt
    host.clock.advance(0.9)
    assert host.take() == b""
    host.clock.advance(0.2)
    assert host.take() == b"\r\nLogin incorrect\r\nvm-a login: admin\r\nPassword: "


def test_empty_login_name_reprompts(console: Console, host: RecordingHost) -> None:
    console.feed(b"\n")
    assert host.take() == b"\r\nvm-a login: "


def test_cr_lf_is_one_enter_but_two_crs_are_two(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"\r\n")
    assert host.take() == b"\r\nadmin@vm-a:~$ "
    console.feed(b"\r\r")
    assert host.take() == b"\r\nadmin@vm-a:~$ \r\nadmin@vm-a:~$ "


def test_backspace_erases_with_bs_space_bs(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"\x7f")  # nothing to erase: nothing printed
    assert host.take() == b""
    console.feed(b"echo abX\x7fc\x08d\n")
    assert host.take() == b"echo abX\b \bc\b \bd\r\nabd\r\nadmin@vm-a:~$ "


def test_backspace_erases_a_whole_utf8_character(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed("echo é€".encode() + b"\x7f\n")
    assert host.take().split(b"\r\n")[1] == "é".encode()


def test_backspace_in_password_is_silent(console: Console, host: RecordingHost) -> None:
    console.feed(b"admin\n")
    host.take()
    console.feed(b"adminx\x7f\n")
    assert b"\b" not in host.take()
    assert console.state is ConsoleState.SHELL


def test_ctrl_c_abandons_the_line(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"echo never\x03")
    assert host.take() == b"echo never^C\r\nadmin@vm-a:~$ "
    assert run(console, host, b"echo ok") == b"echo ok\r\nok\r\nadmin@vm-a:~$ "


def test_ctrl_c_at_password_goes_back_to_login(console: Console, host: RecordingHost) -> None:
    console.feed(b"admin\n")
    host.take()
    console.feed(b"\x03")
    assert host.take() == b"^C\r\nvm-a login: "
    assert console.state is ConsoleState.LOGIN


def test_ctrl_d_logs_out_only_on_an_empty_line(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"ec\x04")
    assert host.take() == b"ec"
    console.feed(b"\x7f\x7f\x04")
    assert host.take() == b"\b \b\b \blogout\r\n\r\nUbuntu 22.04.4 LTS vm-a ttyS0\r\n\r\nvm-a login: "
    assert console.state is ConsoleState.LOGIN


def test_escape_sequences_and_tab_are_swallowed(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"ec\x1b[A\x1b[1;5Cho\t hi\x1bO\n")
    # ESC O is SS3: its final byte follows; here it ends the sequence at "O"
    assert host.take() == b"echo hi\r\nhi\r\nadmin@vm-a:~$ "


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        (b"hostname", b"vm-a\r\n"),
        (b"whoami", b"admin\r\n"),
        (b"echo  a   'b c'", b"a b c\r\n"),
        (b"uname", b"Linux\r\n"),
        (b"uname -r", b"5.15.0-105-generic\r\n"),
        (
            b"uname -a",
            b"Linux vm-a 5.15.0-105-generic #115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024 x86_64 x86_64 x86_64 GNU/Linux\r\n",
        ),
        (b"uptime", b" 00:00:00 up 3:05,  1 user,  load average: 0.08, 0.03, 0.01\r\n"),
        (b"pwd", b"/home/admin\r\n"),
        (b"ls", b"notes.txt\r\n"),
        (b"ls /etc", b"hostname  hosts  issue  motd  os-release  passwd  shadow\r\n"),
        (b"ls /nope", b"ls: cannot access '/nope': No such file or directory\r\n"),
        (b"cat /etc/hostname", b"vm-a\r\n"),
        (b"cat /etc", b"cat: /etc: Is a directory\r\n"),
        (b"cat missing", b"cat: missing: No such file or directory\r\n"),
        (b"frobnicate --now", b"frobnicate: command not found\r\n"),
        (b"seq x", b"seq: invalid floating point argument: 'x'\r\nTry 'seq --help' for more information.\r\n"),
        (b"echo 'unterminated", b"'unterminated\r\n"),
        (b"", b""),
    ],
)
def test_commands(console: Console, host: RecordingHost, command: bytes, printed: bytes) -> None:
    logged_in(console, host)
    assert run(console, host, command) == command + b"\r\n" + printed + b"admin@vm-a:~$ "


def test_os_release_names_ubuntu_jammy(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    out = run(console, host, b"cat /etc/os-release")
    assert b'PRETTY_NAME="Ubuntu 22.04.4 LTS"\r\n' in out
    assert b'VERSION_ID="22.04"\r\n' in out


def test_cd_changes_the_prompt(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"cd /etc").endswith(b"admin@vm-a:/etc$ ")
    assert run(console, host, b"cat hostname") == b"cat hostname\r\nvm-a\r\nadmin@vm-a:/etc$ "
    assert b"-bash: cd: /nope: No such file or directory\r\n" in run(console, host, b"cd /nope")
    assert run(console, host, b"cd").endswith(b"admin@vm-a:~$ ")


def test_exit_returns_to_login(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"exit") == b"exit\r\nlogout\r\n\r\nUbuntu 22.04.4 LTS vm-a ttyS0\r\n\r\nvm-a login: "


def test_seq_is_produced_as_pumped_and_input_waits(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    assert run(console, host, b"seq 3 2000") == b"seq 3 2000\r\n"
    assert console.flooding and host.floods == 1
    console.feed(b"hostname\n")  # type-ahead: runs once the flood is over
    assert host.take() == b""
    produced = bytearray()
    while console.flooding:
        assert console.pump(1000) <= 1000 + 8
        produced += host.take()
    expected = b"".join(b"%d\r\n" % i for i in range(3, 2001))
    assert bytes(produced) == expected + b"admin@vm-a:~$ hostname\r\nvm-a\r\nadmin@vm-a:~$ "


def test_ctrl_c_stops_yes_at_once_and_flushes_type_ahead(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    run(console, host, b"yes hi")
    assert console.pump(65536) >= 65536 - 4
    assert host.take().startswith(b"hi\r\nhi\r\n")
    console.feed(b"lost\x03echo kept\n")
    assert not console.flooding
    assert host.take() == b"^C\r\nadmin@vm-a:~$ echo kept\r\nkept\r\nadmin@vm-a:~$ "
    assert console.pump(65536) == 0


def test_ctrl_c_in_the_same_write_as_the_flood(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"yes\n\x03")
    assert host.take() == b"yes\r\n^C\r\nadmin@vm-a:~$ "


def test_type_ahead_during_a_command_is_bounded_like_a_tty(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    run(console, host, b"sleep 60")
    for _ in range(1000):  # 1 MiB typed while the command runs
        console.feed(b"y" * 1024)
    assert len(console._pending) == MAX_INPUT
    console.feed(b"\x03")  # ^C still acts, with the buffer full
    assert host.take() == b"^C\r\nadmin@vm-a:~$ "
    assert console._pending == b""


def test_type_ahead_beyond_the_buffer_is_dropped_and_the_rest_runs(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    run(console, host, b"sleep 5")
    console.feed(b"echo kept\n" + b"z" * (2 * MAX_INPUT) + b"\necho lost\n")
    host.clock.advance(6)
    out = host.take()
    assert out.startswith(b"admin@vm-a:~$ echo kept\r\nkept\r\nadmin@vm-a:~$ zzz")
    assert b"lost" not in out  # beyond the 4 KiB type-ahead, Enter included
    assert out.count(b"z") == MAX_INPUT - len(b"echo kept\n")


def test_a_line_stops_growing_at_the_tty_limit_and_enter_still_ends_it(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"echo " + b"w" * (3 * MAX_INPUT))
    echoed = host.take()
    assert len(echoed) == MAX_INPUT - 1  # what the line holds is echoed, the rest is not
    console.feed(b"\n")
    out = host.take()
    assert out.startswith(b"\r\n" + b"w" * (MAX_INPUT - 1 - len(b"echo ")) + b"\r\n")
    assert out.endswith(b"admin@vm-a:~$ ")


def test_reset_forgets_everything(console: Console, host: RecordingHost) -> None:
    logged_in(console, host)
    console.feed(b"admin\nwrong\n")
    run(console, host, b"cd /etc")
    console.reset()
    assert console.state is ConsoleState.BOOTING
    console.show_login()
    host.take()
    console.feed(b"admin\nadmin\n")
    assert host.take().endswith(b"admin@vm-a:~$ ")


def test_a_failure_timer_from_before_a_reboot_does_nothing(console: Console, host: RecordingHost) -> None:
    console.feed(b"admin\nwrong\n")
    console.reset()
    console.show_login()
    host.take()
    host.clock.advance(2.0)
    assert host.take() == b""
    assert console.state is ConsoleState.LOGIN
