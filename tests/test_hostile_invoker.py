"""The privilege boundary against a hostile invoker: a real unprivileged
user runs the helpers that `make install` put in place, in all three modes,
the way a client that is not epcap would (straight, through a shell of its
own) and through the Python client, and asks for what the installation does
not give. Each refusal is its own error, and leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

import epcap
from epcap._protocol import Session

from conftest import HELPER, ROOT, proc_status
from helpers import frame
from privileged import (
    GROUP,
    MODES,
    NOBODY,
    as_user,
    gid_of,
    helper_command,
    mode_options,
    processes_of,
    raw,
    run_as,
    wait_gone,
)

pytestmark = pytest.mark.root

SAMPLE = ROOT / "client" / "epcap" / "data" / "sample.pcap"
UNIXEXEC = "dbus://unixexec:path=/bin/sh,argv1=-p,argv2=-c,argv3=id%3e{marker}"
OPEN_CAPS = (1 << 12) | (1 << 13) | (1 << 18)  # CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_CHROOT
FANOUT_BASE = 32768
PACKET_FANOUT, SOL_PACKET, FANOUT_HASH_DEFRAG = 18, 263, 0x8000 << 16


@pytest.fixture(autouse=True)
def no_helper_left(installs: dict[str, Path]) -> Iterator[None]:
    """Whatever a test did, no installed helper outlives it by more than 3 s."""
    binaries = [*installs.values(), HELPER, HELPER.parent / "epcapd-testhook"]
    yield
    assert wait_gone(processes_of(*binaries), 3.0) == set(), "helpers left behind"


def refusal(events: Sequence[Any]) -> epcap.CaptureError:
    """The error that ended a helper's output."""
    assert events and isinstance(events[-1], epcap.CaptureError), events
    error: epcap.CaptureError = events[-1]
    return error


def refused_straight(
    user: pwd.struct_passwd, mode: str, helper: Path, *args: str, **kwargs: Any
) -> epcap.CaptureError:
    """Run the helper with `args` as a non-epcap client would: it must refuse."""
    status, events = raw(user, helper_command(mode, helper, *args), **kwargs)
    assert status == 1, (status, events)
    return refusal(events)


@contextlib.contextmanager
def policy(helper: Path, *settings: str) -> Iterator[None]:
    """The installation's epcapd.conf with `settings` in place of its own, for a while."""
    conf = helper.parent / "epcapd.conf"
    before = conf.read_text()
    keys = {setting.split()[0] for setting in settings}
    kept = [line for line in before.splitlines() if not line or line.split()[0] not in keys]
    conf.write_text("\n".join([*kept, *settings]) + "\n")
    try:
        yield
    finally:
        conf.write_text(before)


@pytest.mark.parametrize("mode", MODES)
def test_a_dbus_address_runs_nothing(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    marker = Path(tempfile.gettempdir()) / f"epcap-marker-{os.getpid()}-{mode}"
    source = UNIXEXEC.format(marker=marker)
    error = refused_straight(user, mode, installs[mode], "-P", "micro", "-i", source)
    assert isinstance(error, epcap.PolicyError) and error.op == "policy"
    assert "pseudo-devices" in error.message and "only root may open them" in error.message
    _, event = run_as(user, interface=source, **mode_options(mode, installs))
    assert event["type"] == "PolicyError", event
    time.sleep(0.2)
    assert not marker.exists()


def test_a_dbus_address_runs_nothing_for_root_either() -> None:
    """Root may open any source, but libpcap runs as nobody with three
    capabilities, and execve is denied from the start."""
    marker = Path(tempfile.gettempdir()) / f"epcap-marker-{os.getpid()}-root"
    with pytest.raises(epcap.CaptureError) as info:
        epcap.start(interface=UNIXEXEC.format(marker=marker), precision="micro", progname=HELPER)
    assert info.value.op == "pcap_activate"
    time.sleep(0.2)
    assert not marker.exists()


PSEUDO_DEVICES = [
    "dbus-system", "dbus-session", "nflog", "nflog:5", "nfqueue:0", "usbmon", "usbmon0",
    "bluetooth0", "bluetooth-monitor", "rpcap://localhost/lo",
]  # fmt: skip


@pytest.mark.parametrize("name", PSEUDO_DEVICES)
@pytest.mark.parametrize("mode", MODES)
def test_libpcap_pseudo_devices_are_root_only(
    mode: str, name: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    error = refused_straight(user, mode, installs[mode], "-i", name)
    assert isinstance(error, epcap.PolicyError), error
    assert error.message.startswith(f"'{name}' is one of libpcap's pseudo-devices")


@pytest.mark.parametrize(
    "name, shown",
    [("eth9", "eth9"), ("x" * 16, "x" * 16), ("lo\x1b[31m", "lo\\x1b[31m"),
     ("lo\u009b", "lo\\xc2\\x9b")],
)  # fmt: skip
@pytest.mark.parametrize("mode", MODES)
def test_an_interface_must_be_one_the_kernel_knows(
    mode: str, name: str, shown: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    error = refused_straight(user, mode, installs[mode], "-i", name)
    assert isinstance(error, epcap.NoSuchDeviceError), error
    assert (error.op, error.code) == ("interface", "PCAP_ERROR_NO_SUCH_DEVICE")
    assert error.message == f"'{shown}' is not a network interface"  # control characters escaped


@pytest.mark.parametrize(
    "args",
    [("-u", "daemon"), ("-g", "shadow"), ("-u", "root"), ("-d", "/"), ("-d", "/etc/shadow/x"),
     ("-d", "/root/nonexistent"), ("-d", "/tmp")],
)  # fmt: skip
@pytest.mark.parametrize("mode", MODES)
def test_the_drop_target_and_chroot_are_the_installations(
    mode: str, args: tuple[str, str], user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    error = refused_straight(user, mode, installs[mode], "-i", "lo", *args)
    assert isinstance(error, epcap.PolicyError), error
    # nothing of the path was resolved: the same words whether it exists or not
    flag, value = args
    assert error.message.startswith(f"{flag} '{value}': this installation decides it (")


@pytest.mark.parametrize("mode", MODES)
def test_naming_the_installations_own_target_is_fine(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    empty = str(installs[mode].parent / "empty")
    driver, ready = run_as(user, udp=3, user="nobody", chroot=empty, **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    assert ready["settings"]["chroot"] == empty and ready["settings"]["uid"] == NOBODY
    assert driver.next()["packets"] == ["epcap 0", "epcap 1", "epcap 2"]
    driver.finish()


FRAME = "ffffffffffff" + "020000000001" + "88b5" + "65706361702074657374" * 5  # local experimental


@pytest.mark.parametrize("mode", MODES)
def test_inject_only_as_the_installation_allows(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    helper = installs[mode]
    error = refused_straight(user, mode, helper, "-i", "lo", "-j")
    assert isinstance(error, epcap.PolicyError), error
    assert error.message == "-j: this installation lets no one but root send packets"
    with policy(helper, "inject nogroup"):
        error = refused_straight(user, mode, helper, "-i", "lo", "-j")
        assert "only the members of its inject groups" in error.message
    with policy(helper, f"inject nogroup {GROUP}"):
        driver, ready = run_as(
            user, interface="lo", inject=True, send=FRAME, **mode_options(mode, installs)
        )
        assert ready["event"] == "ready", ready
        assert driver.next() == {"event": "sent", "length": len(FRAME) // 2}
        driver.next()  # packets
        driver.finish()


@pytest.mark.parametrize("inject, outcome", [(False, "send denied: Operation not permitted"),
                                             (True, "send was allowed")])  # fmt: skip
def test_without_inject_the_sandbox_forbids_sending(
    inject: bool, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPCAPD_TEST_SYSCALL", "send")
    testhook = HELPER.parent / "epcapd-testhook"
    with (
        pytest.raises(epcap.CaptureError, match=f"test hook: {outcome}"),
        epcap.start(interface="lo", inject=inject, progname=testhook) as cap,
    ):
        list(cap)


@pytest.mark.parametrize("mode", MODES)
def test_the_kernel_buffer_has_the_installations_ceiling(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    helper = installs[mode]
    error = refused_straight(user, mode, helper, "-i", "lo", "-B", str(256 * 2**20 + 1))
    assert isinstance(error, epcap.PolicyError)
    assert error.message == "-B 268435457: this installation allows at most 268435456 bytes"
    with policy(helper, "max_buffer 1048576"):
        error = refused_straight(user, mode, helper, "-i", "lo", "-B", "1048577")
        assert "at most 1048576 bytes" in error.message
        driver, ready = run_as(user, udp=1, buffer=1 << 20, **mode_options(mode, installs))
        assert ready["event"] == "ready", ready
        driver.next()
        driver.finish()


@contextlib.contextmanager
def root_fanout_member(group: int) -> Iterator[None]:
    """A root program's packet socket on lo in PACKET_FANOUT group `group`."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)) as sock:
        sock.bind(("lo", 0))
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", group | FANOUT_HASH_DEFRAG))
        yield


@pytest.mark.parametrize("mode", MODES)
def test_a_fanout_group_of_a_root_program_is_not_joined(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    options = mode_options(mode, installs)
    with root_fanout_member(FANOUT_BASE + 7):  # in the range of users' groups
        _, event = run_as(user, interface="lo", cluster_id=7, **options)
        assert event["type"] == "PolicyError", event
        assert (
            "lo: PACKET_FANOUT group 32775 (cluster_id 7) has a member of another user or program "
            "(uid 0): not joined" in event["message"]
        )
    # root's epcap capture in that group: its socket is nobody's, not this user's
    with epcap.start(interface="lo", cluster_id=FANOUT_BASE + 7, progname=HELPER):
        _, event = run_as(user, interface="lo", cluster_id=7, **options)
        assert event["type"] == "PolicyError", event
        assert "another user or program (uid 65534)" in event["message"]
    with root_fanout_member(7):  # root's own range: out of a user's reach
        first, ready = run_as(user, interface="lo", cluster_id=7, **options)
        assert ready["event"] == "ready", ready
        assert ready["settings"]["fanout"] == FANOUT_BASE + 7
        # joins the first's group (which then shares lo's flows: no packets asked for)
        second, again = run_as(user, interface="lo", cluster_id=7, **options)
        assert again["event"] == "ready", again
        assert again["settings"]["fanout"] == FANOUT_BASE + 7
        for driver in (first, second):
            driver.next()
            driver.finish()
    error = refused_straight(user, mode, installs[mode], "-i", "lo", "-C", "40000")
    assert error.message == "-C 40000: at most 32767 for callers who are not root"


@pytest.fixture
def odd_stdio(tmp_path: Path) -> Iterator[dict[str, tuple[int, int, int]]]:
    """What a hostile client might hand the helper as stdin and stdout, by
    name: (stdin, stdout, where to read back what the helper wrote)."""
    tmp_path.chmod(0o755)
    os.mkfifo(tmp_path / "fifo", 0o666)
    out_r, out_w = os.pipe()
    loop_r, loop_w = os.pipe()
    reopen_r, reopen_w = os.pipe()
    spare_r, spare_w = os.pipe()
    datagram = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    file_out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT, 0o666)
    os.fchmod(file_out, 0o666)
    cases = {
        "a named FIFO": (os.open(tmp_path / "fifo", os.O_RDWR), out_w, out_r),
        "a pipe open for reading and writing": (
            os.open(f"/proc/self/fd/{reopen_r}", os.O_RDWR),
            out_w,
            out_r,
        ),
        "a character device": (os.open("/dev/null", os.O_RDONLY), out_w, out_r),
        "the same pipe": (loop_r, loop_w, loop_r),
        "a regular file": (spare_r, file_out, file_out),
        "a datagram socket": (out_r, datagram[0].fileno(), datagram[1].fileno()),
    }
    yield cases
    opened = {fd for case in cases.values() for fd in case} - {d.fileno() for d in datagram}
    for fd in opened | {out_r, out_w, loop_r, loop_w, reopen_r, reopen_w, spare_r, spare_w}:
        os.close(fd)
    for sock in datagram:
        sock.close()


def read_back(fd: int) -> bytes:
    """What the helper wrote into `fd`: a file from its start, or a pipe."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return os.pread(fd, 65536, 0)
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        return os.read(fd, 65536)
    return b""


STDIO = {
    "a named FIFO": "stdin is a named FIFO: it must be an anonymous pipe or a socket",
    "a pipe open for reading and writing": "stdin is a pipe open for reading and writing",
    "a character device": "stdin is a character device: it must be an anonymous pipe or a socket",
    "the same pipe": "stdin and descriptor 1 are the same pipe",
    "a regular file": "stdout is a regular file: it must be an anonymous pipe or a socket",
    # (a datagram could carry the frames to a service that reads its sender's uid)
    "a datagram socket": "stdout is a socket but not a stream socket",
}


@pytest.mark.parametrize("case", STDIO)
@pytest.mark.parametrize("mode", MODES)
def test_stdin_and_stdout_must_be_pipes_or_sockets(
    mode: str,
    case: str,
    user: pwd.struct_passwd,
    installs: dict[str, Path],
    odd_stdio: dict[str, tuple[int, int, int]],
) -> None:
    stdin, stdout, back = odd_stdio[case]
    started = time.monotonic()
    status, _ = raw(user, helper_command(mode, installs[mode], "-i", "lo"), stdin=stdin,
                    stdout=stdout, timeout=10)  # fmt: skip
    assert status == 1 and time.monotonic() - started < 5
    error = refusal(Session().receive(read_back(back)))
    assert isinstance(error, epcap.PolicyError) and error.message == STDIO[case]


CLIENT = """
import os, socket, subprocess, sys
inside, outside = socket.socketpair()
# stdin is a socket whose other end the helper itself holds (as its stderr):
# stdin never ends. Only the client's exit can stop it.
helper = subprocess.Popen(sys.argv[1:], stdin=inside, stdout=subprocess.PIPE, stderr=outside)
assert len(helper.stdout.read(4)) == 4  # the ready frame is on its way
print("ready", flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_helper_never_outlives_its_client(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    before = processes_of(installs[mode])
    command = helper_command(mode, installs[mode], "-i", "lo", "udp port 9")
    client = subprocess.run(
        [*as_user(user), sys.executable, "-c", CLIENT, *command],
        capture_output=True, text=True, timeout=20, cwd="/", env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert client.stdout == "ready\n", client.stderr
    orphans = processes_of(installs[mode]) - before
    assert wait_gone(orphans, 2.0) == set(), "the helper outlived its client"


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="epcap-public-", dir="/var/tmp"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top)


@pytest.fixture
def secret_files(public_dir: Path) -> tuple[Path, Path]:
    """(a capture in a directory only root may enter, a symlink to it the user can read)."""
    secret_dir = public_dir / "secret"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "inner-name.pcap"
    secret.write_bytes(SAMPLE.read_bytes())
    link = public_dir / "link.pcap"
    link.symlink_to(secret)
    return secret, link


@pytest.mark.parametrize("mode", MODES)
def test_paths_resolve_with_the_invokers_rights_only(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path], secret_files: tuple[Path, Path]
) -> None:
    secret, link = secret_files
    helper = installs[mode]
    missing = secret.parent / "no-such.pcap"
    for path in (secret, missing):  # no telling whether a file exists where one may not look
        error = refused_straight(user, mode, helper, "-r", str(path))
        assert isinstance(error, epcap.PermissionDeniedError) and error.errno == "EACCES"
        assert error.message == f"{path}: Permission denied"
    error = refused_straight(user, mode, helper, "-r", str(link))
    assert error.message == f"{link}: Permission denied"  # the target's name never shows


@pytest.mark.parametrize("mode", MODES)
def test_credentials_while_libpcap_runs_and_after(
    mode: str, user: pwd.struct_passwd, testhook_installs: dict[str, Path]
) -> None:
    driver, ready = run_as(user, udp=2, **mode_options(mode, testhook_installs))
    assert ready["event"] == "ready", ready
    at = ready["settings"]["test_activate"]
    # real ids the user's (who may signal it), effective and saved nobody's
    assert at["uid"] == [user.pw_uid, NOBODY, NOBODY]
    assert at["gid"] == [user.pw_gid, NOBODY, NOBODY]
    assert at["groups"] == []
    assert at["cap_effective"] == at["cap_permitted"] == OPEN_CAPS  # those three, no more
    assert at["cap_inheritable"] == 0 and at["no_new_privs"] == 1
    assert at["environment"] == 0  # the driver's PATH, HOME, LANG... cleared
    status = proc_status(ready["pid"])
    assert status["CapEff"] == status["CapPrm"] == status["CapInh"] == "0000000000000000"
    assert status["CapAmb"] == "0000000000000000" and status["NoNewPrivs"] == "1"
    assert driver.next()["packets"] == ["epcap 0", "epcap 1"]
    driver.finish()


@pytest.mark.parametrize("mode", ["setuid", "caps"])  # sudo closes them itself
def test_descriptors_above_2_are_closed_before_libpcap_runs(
    mode: str, user: pwd.struct_passwd, testhook_installs: dict[str, Path], tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)
    with open(tmp_path / "inherited", "w") as inherited:
        fd = os.dup(inherited.fileno())  # inheritable, above 2
        try:
            status, events = raw(
                user, helper_command(mode, testhook_installs[mode], "-i", "lo"),
                env={"PATH": "/usr/bin:/bin", "EPCAPD_TEST_FD": str(fd),
                     "DBUS_SESSION_BUS_ADDRESS": "unixexec:path=/bin/true"},
                pass_fds=[fd],
            )  # fmt: skip
        finally:
            os.close(fd)
    assert status == 0, events
    ready = events[0]
    assert ready.settings["test_activate"]["test_fd_open"] == 0
    assert ready.settings["test_activate"]["environment"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_plain_capture_still_works_and_keeps_nothing(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    driver, ready = run_as(user, udp=20, **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    pid = ready["pid"]
    status = proc_status(pid)
    assert status["Uid"].split() == [str(user.pw_uid), *[str(NOBODY)] * 3]
    assert status["Gid"].split() == [str(user.pw_gid), *[str(NOBODY)] * 3]
    assert status["Groups"] == ""
    assert status["CapEff"] == status["CapPrm"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    chroot = str(installs[mode].parent / "empty")
    assert os.readlink(f"/proc/{pid}/root") == chroot
    assert ready["settings"]["chroot"] == chroot and ready["settings"]["fanout"] is None
    assert ready["settings"]["sandbox"] == "seccomp"
    packets = driver.next()
    assert packets["packets"] == [f"epcap {i}" for i in range(20)]
    driver.finish()
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("mode", MODES)
def test_the_invoker_may_signal_its_own_helpers(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    """Its real uid is the invoker's: a helper stopped at the wrong moment,
    or one that will not end, is never out of its invoker's reach."""
    driver, ready = run_as(user, interface="lo", **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    stop_go = ["/bin/sh", "-c", 'kill -STOP "$1" && kill -CONT "$1" && kill -0 "$1"', "sh"]
    signal = subprocess.run([*as_user(user), *stop_go, str(ready["pid"])], capture_output=True)
    assert signal.returncode == 0, signal.stderr
    driver.next()  # packets
    driver.finish()


@pytest.fixture
def other_group_file(user: pwd.struct_passwd, public_dir: Path) -> Iterator[Path]:
    """A capture readable by a group the user is a member of, 0640."""
    group = "epcaptestg2"
    subprocess.run(["groupadd", "--system", group], check=True)
    try:
        subprocess.run(["usermod", "-aG", group, user.pw_name], check=True)
        path = public_dir / "group.pcap"
        path.write_bytes(SAMPLE.read_bytes())
        os.chown(path, 0, gid_of(group))
        path.chmod(0o640)
        yield path
    finally:
        subprocess.run(["groupdel", group], check=True)


@pytest.mark.parametrize("mode", MODES)
def test_a_file_opens_with_the_groups_the_caller_holds(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path], other_group_file: Path
) -> None:
    """Not the groups the group database lists: a caller that dropped a
    group (here: runs with only the installs' group) does not get it back
    through the helper, sudo's included."""
    options = mode_options(mode, installs)
    driver, event = run_as(user, groups=str(gid_of(GROUP)), file=str(other_group_file), **options)
    assert event["type"] == "PermissionDeniedError", event
    assert f"{other_group_file}: Permission denied" in event["message"]
    driver, ready = run_as(user, file=str(other_group_file), **options)  # with all its groups
    assert ready["event"] == "ready", ready
    assert len(driver.next()["packets"]) == 15
    driver.finish()


@pytest.mark.parametrize("mode", MODES)
def test_a_capture_file_must_be_a_regular_file(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path], public_dir: Path
) -> None:
    """A FIFO would hold the helper in open() or read(), deaf to its client."""
    fifo = public_dir / "fifo"
    os.mkfifo(fifo, 0o666)
    started = time.monotonic()
    error = refused_straight(user, mode, installs[mode], "-r", str(fifo))
    assert isinstance(error, epcap.CaptureFileError), error
    assert error.message == f"{fifo}: not a regular file" and time.monotonic() - started < 5


@pytest.mark.parametrize("mode", MODES)
def test_a_held_helper_holds_nothing_and_its_commands_only_choose_packets(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    """-H, -k, -x and the direction and resume commands from a client that
    is not epcap: the hold comes after the drop, so a helper told to wait
    waits with nothing (no privilege, seccomp, the chroot); its commands
    change which packets pass and nothing else; a bad one is refused."""
    command = helper_command(mode, installs[mode], "-i", "lo", "-H", "-k", "5000", "-x", "udp",
                             "--", "udp port 9")  # fmt: skip
    proc = subprocess.Popen(
        [*as_user(user), "/bin/sh", "-c", '"$@"; exit $?', "sh", *command],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"}, cwd="/",
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout

    def read() -> Any:
        (length,) = struct.unpack(">I", stdout.read(4))
        return msgpack.unpackb(stdout.read(length))

    try:
        tag, ready = read()
        assert tag == "ready" and ready["paused"] is True and ready["net"] == "127.0.0.0"
        status = proc_status(ready["pid"])
        assert status["Uid"].split()[1:] == [str(NOBODY)] * 3
        assert status["CapEff"] == status["CapPrm"] == "0000000000000000"
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
        assert os.readlink(f"/proc/{ready['pid']}/root") == str(installs[mode].parent / "empty")
        for command_frame in (["direction", "in"], ["direction", "up"], ["filter", "udp port 10"],
                              ["resume"], ["stats"]):  # fmt: skip
            proc.stdin.write(frame(command_frame))
        proc.stdin.flush()
        assert read() == ["reply", "direction", None]
        tag, command_name, report = read()
        assert (tag, command_name, report["op"]) == ("refused", "direction", "option")
        assert read() == ["reply", "filter", None]
        tag, command_name, stats = read()
        assert (tag, command_name) == ("reply", "stats") and "received" in stats
        proc.stdin.close()
        assert read()[0] == "eof"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
