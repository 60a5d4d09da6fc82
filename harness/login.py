"""Log in to a guest through ``vmws console`` with pexpect (``python -m harness wait-login``).

This drives the same path a person uses: the server's console endpoint, through the
``vmws console`` client, with no tty behind it. It waits out the boot, answers the
getty ``login:`` and ``Password:`` prompts and stops at a shell prompt; it can then
run commands and hand back what they printed.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from dataclasses import dataclass

import pexpect

__all__ = ["LoginResult", "ConsoleSession", "PROMPT", "LOGIN", "PASSWORD"]

# A shell prompt, perhaps followed by the terminal queries some shells send after it
# (busybox ash asks for the cursor position, ESC [ 6 n).
PROMPT = r"[$#] (?:\x1b\[[0-9;?]*[A-Za-z])*"
LOGIN = r"login: ?"
PASSWORD = r"[Pp]assword: ?"
DETACH = "\x1d"  # ^]


@dataclass(frozen=True, slots=True)
class LoginResult:
    name: str
    seconds: float


class ConsoleSession:
    """A ``vmws console NAME`` process under pexpect."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        token: str | None = None,
        token_file: str | None = None,
        timeout: float = 120.0,
        logfile: object | None = None,
    ) -> None:
        env = dict(os.environ)
        if token is not None:
            env["VMWS_TOKEN"] = token
        args = ["-m", "vmws", "console", name, "--url", url, "--linger", "0"]
        if token_file is not None:
            args += ["--token-file", token_file]
        self.name = name
        self.timeout = timeout
        self._markers = itertools.count(1)
        self.child = pexpect.spawn(
            sys.executable, args, env=env, encoding="utf-8", codec_errors="replace", timeout=timeout
        )
        if logfile is not None:
            self.child.logfile_read = logfile

    def login(self, user: str, password: str) -> LoginResult:
        """From wherever the console is (booting, at login:, at a prompt) to a shell prompt."""
        started = time.monotonic()
        deadline = started + self.timeout
        self.child.send("\r")
        while True:
            left = max(deadline - time.monotonic(), 1.0)
            which = self.child.expect([LOGIN, PROMPT, pexpect.TIMEOUT], timeout=min(left, 10.0))
            if which == 1:
                break
            if which == 2:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no login prompt from {self.name} within {self.timeout:g} s")
                self.child.send("\r")  # nudge getty: it may have printed its prompt before we came
                continue
            self.child.send(user + "\r")
            self.child.expect(PASSWORD, timeout=30)
            self.child.send(password + "\r")
            which = self.child.expect([PROMPT, "Login incorrect"], timeout=60)
            if which == 1:
                raise PermissionError(f"{self.name} refused the login of {user!r}: wrong password?")
            break
        return LoginResult(self.name, time.monotonic() - started)

    def run(self, command: str, timeout: float = 60.0) -> str:
        """Type ``command`` at the prompt and return what it printed.

        The output is framed by two markers the shell prints; the echo of the typed line
        cannot match them (they are quoted apart), and it may be wrapped by the line
        editor at 80 columns, so it is not matched at all.
        """
        marker = f"vmws{next(self._markers)}x"
        self.child.send(f"echo '{marker}'B; {command}; echo '{marker}'E\r")
        self.child.expect(re.escape(marker) + r"B\r*\n", timeout=timeout)
        self.child.expect(re.escape(marker) + r"E\r*\n", timeout=timeout)
        output = str(self.child.before)
        self.child.expect(PROMPT, timeout=timeout)
        return output.replace("\r\n", "\n")

    def close(self) -> None:
        if self.child.isalive():
            self.child.send(DETACH)
            try:
                self.child.expect(pexpect.EOF, timeout=10)
            except pexpect.TIMEOUT:
                self.child.terminate(force=True)
        self.child.close()
