"""``python -m harness``: boot, log in to, and remove real guests; check the host.

python -m harness up NAME --image tiny [--accel auto|kvm|tcg]
python -m harness wait-login NAME [--url ws://127.0.0.1:8080] [--token-file F]
python -m harness down NAME
python -m harness doctor
"""

from __future__ import annotations

import argparse
import sys
import time

from images.errors import ImageError
from vmws.errors import VMWSError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from harness.domain import Accel
    from harness.guest import DEFAULT_URI

    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="define and boot a guest", description="Define and boot a guest through libvirt.")
    up.add_argument("name", help="VM name (also its hostname)")
    up.add_argument("--image", default="tiny", help="tiny (default) or a cloud image from images/cloud.toml")
    up.add_argument(
        "--accel",
        default=Accel.AUTO.value,
        choices=[a.value for a in Accel],
        help="auto probes KVM and falls back to TCG (default auto)",
    )
    up.add_argument("--uri", default=DEFAULT_URI, help=f"libvirt URI (default {DEFAULT_URI})")
    up.add_argument("--memory", type=int, default=128, help="MiB of guest memory (default 128)")
    up.add_argument("--password", default="admin", help="login password of user admin (default admin)")
    up.add_argument("--replace", action="store_true", help="remove an existing VM of that name first")
    up.add_argument("--no-start", action="store_true", help="define only, leave it stopped")
    up.add_argument(
        "--no-screen", action="store_true", help="no VGA card and no VNC server: a headless guest without a screen"
    )
    up.add_argument(
        "--crash-after",
        type=float,
        default=None,
        help="tiny only: the guest kernel panics this many seconds after boot (tests of 'error')",
    )

    login = sub.add_parser(
        "wait-login",
        help="log in through `vmws console` until a shell prompt",
        description="Drive `vmws console NAME` with pexpect until a shell prompt.",
    )
    login.add_argument("name")
    login.add_argument("--url", default="ws://127.0.0.1:8080", help="vmws server (default ws://127.0.0.1:8080)")
    login.add_argument("--token-file", default=None, help="file with the token (default: env VMWS_TOKEN)")
    login.add_argument("--user", default="admin")
    login.add_argument("--password", default="admin")
    login.add_argument("--timeout", type=float, default=180.0, help="seconds for boot and login (default 180)")
    login.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="CMD",
        help="a command to run once logged in, output printed (repeatable)",
    )

    down = sub.add_parser("down", help="remove a guest and its files")
    down.add_argument("name")
    down.add_argument("--uri", default=DEFAULT_URI)

    doctor = sub.add_parser("doctor", help="what this host lacks for real guests, and how to fix it")
    doctor.add_argument("--uri", default=DEFAULT_URI)
    doctor.add_argument("--no-kvm-probe", action="store_true", help="skip booting a kernel under KVM (up to 10 s)")
    return parser


def _up(args: argparse.Namespace) -> int:
    from harness.domain import Accel
    from harness.guest import check_image_name, up

    check_image_name(args.image)
    started = time.monotonic()
    guest = up(
        args.name,
        image=args.image,
        accel=Accel(args.accel),
        uri=args.uri,
        memory_mib=args.memory,
        password=args.password,
        replace=args.replace,
        start=not args.no_start,
        crash_after=args.crash_after,
        screen=not args.no_screen,
    )
    state = "defined" if args.no_start else "booting"
    print(
        f"{guest.name}: {state} ({guest.image}, {guest.accel.value}) in {time.monotonic() - started:.1f} s; "
        f"files in {guest.directory}"
    )
    return 0


def _wait_login(args: argparse.Namespace) -> int:
    from harness.login import ConsoleSession

    session = ConsoleSession(args.name, url=args.url, token_file=args.token_file, timeout=args.timeout)
    try:
        result = session.login(args.user, args.password)
        print(f"{args.name}: logged in as {args.user} after {result.seconds:.1f} s", flush=True)
        for command in args.run:
            sys.stdout.write(session.run(command))
    finally:
        session.close()
    return 0


def _down(args: argparse.Namespace) -> int:
    from harness.guest import down

    removed = down(args.name, uri=args.uri)
    print(f"{args.name}: removed" if removed else f"{args.name}: no such VM (nothing to remove)")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from harness.doctor import report, run_checks

    text, healthy = report(run_checks(args.uri, probe_kvm=not args.no_kvm_probe))
    print(text)
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"up": _up, "wait-login": _wait_login, "down": _down, "doctor": _doctor}
    try:
        return commands[args.command](args)
    except (ImageError, VMWSError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 1
    except (TimeoutError, PermissionError) as exc:
        print(f"harness: {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"harness: error: {exc}; run `python -m harness doctor` (libvirt-python missing?)", file=sys.stderr)
        return 1
