"""epcap-admin: install the epcapd helper for live capture, as root.

    sudo epcap-admin install --mode caps|setuid|sudo [--group epcap] ...
    sudo epcap-admin uninstall
    epcap-admin status

``install`` copies the helper that came with this epcap (or ``--helper``)
to ``PREFIX/lib/epcap/epcapd``, owned by ``root:GROUP`` with mode 0750
(4750 setuid), so that only root and the group may run it, with the file
capabilities of caps mode or, for sudo mode, a sudoers drop-in that
``visudo -c`` approved; beside it the installation's policy
(``epcapd.conf``, ``epcapd/PROTOCOL.md`` "Invoker policy"), its empty
chroot, and a record of what it made, from which ``uninstall`` removes
exactly that. ``make install`` and ``make uninstall`` run this file too.

It uses the standard library only, so that it runs as a plain script
(``python3 client/epcap/admin.py``) from a source tree without the package's
dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODES = ("caps", "setuid", "sudo")
GROUP = "epcap"
PREFIX = "/usr/local"
MAX_BUFFER = 256 * 1024 * 1024
RECORD = "epcap-admin.json"
# caps mode: CAP_NET_RAW and CAP_NET_ADMIN to capture, CAP_SYS_CHROOT,
# CAP_SETUID and CAP_SETGID to chroot and become nobody (epcapd/privdrop.c).
FILE_CAPS = {"cap_setgid": 6, "cap_setuid": 7, "cap_net_admin": 12, "cap_net_raw": 13,
             "cap_sys_chroot": 18}  # fmt: skip
_VFS_CAP_REVISION_2 = 0x02000000
_VFS_CAP_FLAGS_EFFECTIVE = 0x000001


class AdminError(Exception):
    """What went wrong, in one line that names the fix."""


def packaged_helper() -> Path:
    """The helper the wheel carries (setup.py builds it into the package)."""
    return Path(__file__).resolve().parent / "libexec" / "epcapd"


def lib_dir(prefix: str, root: str = "") -> Path:
    """Where an installation lives: ROOT + PREFIX/lib/epcap."""
    return Path(root + prefix) / "lib" / "epcap"


def file_capabilities(names: Sequence[str]) -> bytes:
    """The security.capability value (struct vfs_cap_data, revision 2) that
    makes `names` permitted and effective."""
    mask = sum(1 << FILE_CAPS[name] for name in names)
    magic = _VFS_CAP_REVISION_2 | _VFS_CAP_FLAGS_EFFECTIVE
    return struct.pack("<IIIII", magic, mask & 0xFFFFFFFF, 0, mask >> 32, 0)


def sudoers_name(prefix: str) -> str:
    """The drop-in's name: sudo skips files whose name has a dot or ends in ~."""
    if prefix == PREFIX:
        return "epcap"
    return "epcap-" + re.sub(r"[^A-Za-z0-9_-]+", "-", prefix).strip("-")


def _say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def _root_only(command: str, example: str) -> None:
    if os.geteuid() != 0:
        raise AdminError(f"epcap-admin {command} must run as root: sudo epcap-admin {example}")


def _record(lib: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads((lib / RECORD).read_text())
    except FileNotFoundError:
        return {"created": [], "group_created": False}
    return record


def _check_build(helper: Path, test_install: bool) -> None:
    if not helper.is_file():
        raise AdminError(
            f"no helper at {helper}: reinstall epcap with pip (its wheel carries the helper), "
            "or pass --helper"
        )
    if test_install:
        return
    data = helper.read_bytes()
    if b"EPCAPD_TEST_SYSCALL" in data:
        raise AdminError(f"refusing to install {helper}: it is the test-hook build")
    if b"AddressSanitizer" in data:
        raise AdminError(
            f"refusing to install {helper}: it is built with AddressSanitizer (SANITIZE=1), "
            "and ASAN_OPTIONS would let any user steer it; only the tests install one"
        )


def others_can_replace(path: str | os.PathLike[str]) -> str | None:
    """Why someone other than root could replace the file at `path`, or None:
    it and every directory above it must be root's and writable by no one
    else (sticky directories, /tmp, let no one replace root's entries)."""
    real = Path(os.path.realpath(path))
    for part in [real, *real.parents]:
        try:
            st = part.stat()
        except OSError as exc:
            return f"{part}: {exc.strerror}"
        if st.st_uid != 0:
            return f"{part} is owned by uid {st.st_uid}, not root"
        sticky = part != real and st.st_mode & stat.S_ISVTX
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
            return f"{part} is writable by others than root"
    return None


def _group(name: str, staged: bool, created: list[str]) -> int:
    """The gid of `name`, created as a system group when missing (not for a
    staged --root tree: its package makes the group)."""
    with contextlib.suppress(KeyError):
        return grp.getgrnam(name).gr_gid
    if staged:
        return 0
    _say(f"groupadd --system {name}")
    subprocess.run(["groupadd", "--system", name], check=True)
    created.append(name)
    return grp.getgrnam(name).gr_gid


def _mkdirs(path: Path, created: list[str]) -> None:
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        os.chown(directory, 0, 0)
        directory.chmod(0o755)
        created.append(str(directory))


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.chown(tmp, 0, 0)
    tmp.chmod(mode)
    os.replace(tmp, path)


def install(args: argparse.Namespace) -> None:
    """Install the helper in one mode, for one group."""
    _root_only("install", f"install --mode {args.mode}")
    source = Path(args.helper) if args.helper else packaged_helper()
    _check_build(source, args.test_install)
    unsafe = others_can_replace(source)
    if unsafe is not None:  # a user's venv or clone: what root installs is theirs to choose
        _say(f"warning: {unsafe}: whoever can replace {source} decides what this installs "
             "with privilege; install from an epcap that root owns")  # fmt: skip
    lib = lib_dir(args.prefix, args.root)
    record = _record(lib)
    created: list[str] = record["created"]
    groups_made: list[str] = []
    gid = _group(args.group, bool(args.root), groups_made)
    _mkdirs(lib / "empty", created)
    helper = lib / "epcapd"
    tmp = lib / "epcapd.new"
    shutil.copyfile(source, tmp)
    os.chown(tmp, 0, gid)
    tmp.chmod(0o4750 if args.mode == "setuid" else 0o750)
    if args.mode == "caps":
        os.setxattr(tmp, "security.capability", file_capabilities(list(FILE_CAPS)))
    os.replace(tmp, helper)
    policy = ["# The policy of the epcapd beside this file for callers who are not root,",
              "# written by epcap-admin (epcapd/PROTOCOL.md, \"Invoker policy\").",
              "user nobody"]  # fmt: skip
    if args.inject_group:
        policy.append("inject " + " ".join(args.inject_group))
    policy.append(f"max_buffer {args.max_buffer}")
    _write(lib / "epcapd.conf", "\n".join(policy) + "\n", 0o644)
    installed_path = str(lib_dir(args.prefix) / "epcapd")  # the path as it will run
    sudoers = Path(args.root + "/etc/sudoers.d") / sudoers_name(args.prefix)
    old_sudoers = record.get("sudoers")
    if old_sudoers and (args.mode != "sudo" or old_sudoers != str(sudoers)):
        Path(old_sudoers).unlink(missing_ok=True)
        record["sudoers"] = None
    if args.mode == "sudo":
        who = ",".join(args.sudo_users) if args.sudo_users else f"%{args.group}"
        _sudoers(sudoers, f"{who} ALL=(root) NOPASSWD: {installed_path}\n")
        record["sudoers"] = str(sudoers)
    record.update(mode=args.mode, group=args.group, prefix=args.prefix,
                  group_created=record.get("group_created") or bool(groups_made))  # fmt: skip
    _write(lib / RECORD, json.dumps(record, indent=1) + "\n", 0o644)
    _say(f"Installed {installed_path} ({args.mode}), for the members of group {args.group}.")
    if gid == 0 and args.group != "root":
        _say(f"The group {args.group} is not on this machine: the package must create it and "
             f"`chgrp {args.group} {installed_path}`.")  # fmt: skip
    user = os.environ.get("SUDO_USER", "USER")
    _say(f"Let a user capture:  usermod -aG {args.group} {user}   (then log in again)")
    if args.mode == "sudo":
        _say(f"Wrote {sudoers}: {sudoers.read_text().strip()}")
    if not args.inject_group:
        _say("Sending packets (inject=True) is for root only: --inject-group GROUP allows a group.")


def _sudoers(path: Path, rule: str) -> None:
    """Write a sudoers drop-in, only once visudo approves of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + "~")  # sudo skips it meanwhile
    tmp.write_text("# written by epcap-admin (see sudoers.example)\n" + rule)
    tmp.chmod(0o440)
    check = subprocess.run(["visudo", "-cqf", str(tmp)], capture_output=True, text=True)
    if check.returncode != 0:
        tmp.unlink()
        raise AdminError(f"visudo refused the rule {rule.strip()!r}: {check.stdout}{check.stderr}")
    os.replace(tmp, path)


def uninstall(args: argparse.Namespace) -> None:
    """Remove exactly what install made."""
    _root_only("uninstall", "uninstall")
    lib = lib_dir(args.prefix, args.root)
    if not (lib / RECORD).exists():
        raise AdminError(f"nothing that epcap-admin installed is at {lib}")
    record = _record(lib)
    for name in ("epcapd", "epcapd.new", "epcapd.conf", "epcapd.conf.new", RECORD):
        path = lib / name
        if path.exists():
            path.unlink()
            _say(f"removed {path}")
    if record.get("sudoers"):
        Path(record["sudoers"]).unlink(missing_ok=True)
        _say(f"removed {record['sudoers']}")
    for directory in reversed(record["created"]):
        with contextlib.suppress(OSError):
            Path(directory).rmdir()
            _say(f"removed {directory}")
    if record.get("group_created"):
        subprocess.run(["groupdel", record["group"]], check=False)
        _say(f"removed group {record['group']}")


def _mode_of(helper: Path, record: dict[str, Any]) -> str:
    st = helper.stat()
    if st.st_uid == 0 and st.st_mode & stat.S_ISUID:
        return "setuid"
    with contextlib.suppress(OSError):
        if os.getxattr(helper, "security.capability"):
            return "caps"
    if record.get("sudoers") and Path(record["sudoers"]).exists():
        return "sudo"
    return "none (no privilege of its own)"


def _members(gid: int) -> list[str]:
    names = set(grp.getgrgid(gid).gr_mem)
    names.update(pw.pw_name for pw in pwd.getpwall() if pw.pw_gid == gid)
    return sorted(names)


def protocol_version(helper: Path) -> int | None:
    """The protocol version the helper's ready frame states, read on the
    package's sample capture; None if it states none."""
    import msgpack

    sample = Path(__file__).resolve().parent / "data" / "sample.pcap"
    proc = subprocess.run([str(helper), "-r", str(sample)], capture_output=True, timeout=30,
                          stdin=subprocess.PIPE)  # fmt: skip
    out = proc.stdout
    if len(out) < 4:
        return None
    (length,) = struct.unpack(">I", out[:4])
    message = msgpack.unpackb(out[4 : 4 + length])
    if not (isinstance(message, list) and message[:1] == ["ready"] and len(message) == 2):
        return None
    version = message[1].get("version") if isinstance(message[1], dict) else None
    return version if isinstance(version, int) else None


def status(args: argparse.Namespace) -> int:
    """Say what is installed: where, in which mode, for whom, and whether it
    speaks this client's protocol. 0: installed and current; 1: not there;
    2: of another protocol version."""
    lib = lib_dir(args.prefix, args.root)
    helper = lib / "epcapd"
    if not helper.exists():
        _say(f"epcapd: not installed in {lib} (as root: epcap-admin install --mode caps)")
        return 1
    record = _record(lib)
    st = helper.stat()
    group = grp.getgrgid(st.st_gid).gr_name
    members = ", ".join(_members(st.st_gid)) or "no members"
    _say(f"epcapd: {helper}", f"mode: {_mode_of(helper, record)}",
         f"group: {group} (mode {stat.S_IMODE(st.st_mode):04o}): {members}")  # fmt: skip
    conf = lib / "epcapd.conf"
    if conf.exists():
        settings = [x for x in conf.read_text().splitlines() if x.strip() and x[0] != "#"]
        _say("policy: " + "; ".join(settings))
    try:
        from epcap._protocol import VERSION
    except ImportError:
        _say("protocol: not checked (run the epcap-admin of an installed epcap)")
        return 0
    try:
        version = protocol_version(helper)
    except PermissionError:
        _say("protocol: not checked (you may not run the helper)")
        return 0
    _say(f"protocol: {version} (this client speaks {VERSION})")
    if version != VERSION:
        _say("the installed helper is of another epcap: as root, epcap-admin install again")
        return 2
    return 0


def _buffer(text: str) -> int:
    """--max-buffer: what epcapd.conf's max_buffer takes (policy.c)."""
    value = int(text)
    if not 1 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be from 1 to {2**31 - 1} bytes, not {value}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="epcap-admin", description="Install epcap's capture helper (as root)."
    )
    commands = top.add_subparsers(dest="command", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--prefix", default=PREFIX, help="install in PREFIX/lib/epcap (%(default)s)")
    where.add_argument("--root", default="", help="a staging root for packagers (DESTDIR)")
    add = commands.add_parser("install", parents=[where], help="install the helper")
    add.add_argument("--mode", choices=MODES, default="caps", help="how it gets privilege (caps)")
    add.add_argument("--group", default=GROUP, help="who may run it (%(default)s; made if missing)")
    add.add_argument("--inject-group", action="append", default=[], metavar="GROUP",
                     help="its members may send packets (repeatable; none: root only)")  # fmt: skip
    add.add_argument("--max-buffer", type=_buffer, default=MAX_BUFFER, metavar="BYTES",
                     help="the largest kernel buffer for a caller who is not root")  # fmt: skip
    add.add_argument("--sudo-users", type=lambda s: s.split(","), default=[], metavar="A,B",
                     help="sudo mode: these users in the rule, not %%GROUP")  # fmt: skip
    add.add_argument("--helper", help="the helper to install (the one this epcap carries)")
    add.add_argument("--test-install", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("uninstall", parents=[where], help="remove what install made")
    commands.add_parser("status", parents=[where], help="say what is installed")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "install":
            install(args)
        elif args.command == "uninstall":
            uninstall(args)
        else:
            return status(args)
    except (AdminError, OSError, subprocess.CalledProcessError) as exc:
        print(f"epcap-admin: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
