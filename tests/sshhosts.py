"""Real OpenSSH servers for the remote-capture tests: "hosts" that are
network namespaces, each with Debian's /usr/sbin/sshd of its own, reached
from this namespace (where the client runs) over a veth pair.

Host i of a session is the namespace epcapssh<pid>-<i>: lo up, and `eth1`,
the far end of a veth pair whose near end, es<pid>-<i>, stays here. The near
end is 10.77.N.1/24, `eth1` 10.77.N.2/24, for a /24 of 10.77.0.0/16 that no
address or route of this machine touches. IPv6 is off on both ends, and the
namespace has no route but its /24: its traffic goes nowhere but the pair.

Each sshd listens on its host's address, port 22 only, with an ed25519 host
key, a config and a log of its own in a temporary directory (under /run,
whose every directory up to / is root's and not writable by others, so that
sshd's StrictModes may check the authorized keys there). It lets in only
privileged.REMOTE, by key. It runs under a small init of its own (REAPER):
a child subreaper that reaps what a killed session leaves, as a real host's
init would, so that nothing becomes a zombie of this machine's init.

`running_hosts()` makes it all and undoes it all when it ends, however it
ends; conftest.py's `ssh_hosts` fixture is that, for a session."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import send_udp
from privileged import GROUP, REMOTE, ensure_login_user, remove_user

SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")
"""sshd's privilege separation directory (Debian's service makes it; we may have to)."""
PRIVSEP_MARK = "made-run-sshd"
NETNS_PREFIX = "epcapssh"
VETH_PREFIX = "es"
TMP_PREFIX = "epcap-sshhosts-"
USER_COMMENT = "epcap tests remote user of tests/sshhosts.py"
"""The comment of the REMOTE a session made: a later one removes it if its maker could not."""
INTERFACE = "eth1"
"""Each host's end of its veth pair, in its namespace."""
SUPERNET = ipaddress.IPv4Network("10.77.0.0/16")
DROP_IPV4 = "1,6 0 0 2,"
"""Classic BPF `ret #2`: with tc's direct-action, TC_ACT_SHOT (a drop), and
no need of the gact or matchall modules, which some kernels lack."""

REAPER = r"""
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit(f"prctl: {os.strerror(ctypes.get_errno())}")
child = os.fork()
if child == 0:
    os.execv(sys.argv[1], sys.argv[1:])
alive = True
def forward(signum, frame):
    if alive:
        os.kill(child, signum)
signal.signal(signal.SIGTERM, forward)
status = 0
while True:
    try:
        pid, how = os.wait()
    except ChildProcessError:
        break
    if pid == child:
        alive, status = False, os.waitstatus_to_exitcode(how)
sys.exit(status if status >= 0 else 128 - status)
"""
"""A host's init: runs argv as its child, reaps it and every orphan of its
tree (a child subreaper), ends once all are gone; SIGTERM goes to argv."""

SEND_UDP = r"""
import socket, sys, time
dst, port, sport, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
    if sport:
        tx.bind(("", sport))
    for payload in sys.argv[5:]:
        tx.sendto(bytes.fromhex(payload), (dst, port))
        if gap:
            time.sleep(gap)
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def output(*argv: str) -> str:
    """What `argv` prints; it must succeed."""
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def processes() -> dict[int, tuple[int, str]]:
    """pid: (parent pid, state) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int, table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """The live (not zombie) descendants of `pid`."""
    table = processes() if table is None else table
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(children.get(child, []))
    return {p for p in found if table[p][1] != "Z"}


def exe(pid: int) -> str:
    """What `pid` runs ("" if gone or a zombie)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def netns_members(netns: str) -> set[int]:
    """Live processes in network namespace `netns`."""
    try:
        inode = os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return set()
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    pids.add(int(entry))
    return pids


def alive(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that still run (neither gone nor zombies)."""
    table = processes()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def kill_all(pids: Iterable[int], seconds: float = 5) -> set[int]:
    """SIGKILL `pids`; those still alive after `seconds`."""
    pids = set(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + seconds
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair without passphrase at `path`; its public line."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path.with_suffix(".pub").read_text()


def client_options(key: Path, known_hosts: Path) -> list[str]:
    """ssh arguments that use exactly `key` and `known_hosts`, nothing of the
    machine's or of the user's (no ssh_config, agent or ~/.ssh), and trust
    no host key that is not in `known_hosts`."""
    return [
        "-F", "/dev/null", "-i", str(key),
        "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
    ]  # fmt: skip


def sshd_config(address: str, directory: Path, name: str) -> str:
    """A host's sshd_config: its address and port 22 only, its host key, key
    logins of REMOTE only, a verbose log; no ClientAliveInterval, so that the
    server never probes a silent client (the client must notice a dead link)."""
    return f"""\
ListenAddress {address}:22
AddressFamily inet
HostKey {directory / f"{name}_host_ed25519"}
PidFile {directory / f"{name}.pid"}
AuthorizedKeysFile {directory / "authorized_keys"}
AllowUsers {REMOTE}
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes yes
UseDNS no
PrintMotd no
PrintLastLog no
PermitUserEnvironment no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
PermitTunnel no
LogLevel VERBOSE
"""


@dataclass
class SshHost:
    """One host: a network namespace with its own sshd, which the client in
    this namespace reaches as `target` with `ssh_options`."""

    name: str
    """host1, host2, ...: names its files in `directory`."""
    netns: str
    """The host's network namespace."""
    interface: str
    """The host's end of the veth pair (in `netns`): what a capture on the host uses."""
    address: str
    """The host's address on `interface`; its sshd listens there, port 22."""
    peer_interface: str
    """The veth pair's end in this namespace."""
    peer_address: str
    """The address of `peer_interface`: the client's side of the link."""
    user: str
    """The remote user."""
    target: str
    """`user@address`, for the client's host=."""
    ssh_options: list[str]
    """ssh arguments for this setup alone: the client's key and known_hosts."""
    wrong_key_options: list[str]
    """ssh_options with a key the host does not authorize."""
    unknown_host_options: list[str]
    """ssh_options with an empty known_hosts: the host's key is unknown."""
    directory: Path
    """The session's temporary directory: keys, configs, logs."""
    log_path: Path
    """sshd's log (stderr, LogLevel VERBOSE), of its sessions too."""
    init: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    """The host's init (REAPER), parent of its listening sshd."""
    sshd_pid: int = 0
    """The listening sshd."""
    down: bool = False
    """Whether link_down() cut the link."""

    @property
    def netns_exec(self) -> list[str]:
        """The prefix that runs a command in the host's namespace (epcap's exec= takes it)."""
        return ["ip", "netns", "exec", self.netns]

    def run(
        self, *argv: str, timeout: float = 30, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the host's namespace (as root), its output captured as text."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run([*self.netns_exec, *argv], timeout=timeout, **kwargs)

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` in the host's namespace (as root); the caller waits for it."""
        return subprocess.Popen([*self.netns_exec, *argv], **kwargs)

    def send_udp(
        self, port: int, payloads: Iterable[bytes], *, sport: int = 0, gap: float = 0.0
    ) -> None:
        """Send each of `payloads` as a UDP datagram from this namespace to the
        host's address: it comes in on the host's `interface`."""
        send_udp(self.address, port, payloads, sport=sport, gap=gap)

    def send_udp_to_peer(
        self, port: int, payloads: Iterable[bytes], *, sport: int = 0, gap: float = 0.0
    ) -> None:
        """Send each of `payloads` as a UDP datagram from the host to
        `peer_address`: it goes out of the host's `interface`."""
        hexed = [p.hex() for p in payloads]
        self.run(sys.executable, "-c", SEND_UDP, self.peer_address, str(port), str(sport),
                 str(gap), *hexed, check=True)  # fmt: skip

    def log(self, since: int = 0) -> str:
        """What sshd logged so far (after byte `since`, a log_mark())."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_mark(self) -> int:
        """Where the log ends now: log(since=) gives what comes after."""
        return self.log_path.stat().st_size

    def sshd_children(self) -> set[int]:
        """The per-connection sshd processes: the listening sshd's children."""
        table = processes()
        return {
            p for p, (parent, state) in table.items() if parent == self.sshd_pid and state != "Z"
        }

    def session_processes(self) -> set[int]:
        """Every live process of the host but its init and listening sshd:
        its sessions' (sshd's descendants), orphans its init adopted, and
        anything else in its namespace (run()'s and popen()'s)."""
        if self.init is None:
            return set()
        found = descendants(self.init.pid) | netns_members(self.netns)
        return found - {self.init.pid, self.sshd_pid}

    def processes_of(self, path: Path | str) -> set[int]:
        """The live processes of the host that run the executable `path` (the
        helper): in its sessions, orphaned by one (its init adopts those), or
        otherwise in its namespace."""
        target = os.path.realpath(path)
        return {p for p in self.session_processes() if exe(p) == target}

    def kill_session(self) -> set[int]:
        """SIGKILL every per-connection sshd of the host (each connection's
        privileged monitor and its user's process, which holds the socket):
        the kernel closes their connections; what the sessions ran is
        orphaned, as it would be on a real host. The pids killed."""
        doomed = {p for p in descendants(self.sshd_pid) if exe(p) == SSHD}
        left = kill_all(doomed, 2)
        assert not left, f"sshd processes {left} survived SIGKILL"
        return doomed

    def link_down(self) -> None:
        """Cut the link, silently: every IPv4 packet is dropped as it arrives at
        either end of the pair (tc ingress), so that to both sides it is lost
        on the way, as past a broken link further on. Nothing tells either
        side: no RST, FIN or ICMP; no carrier or route change (ip link set
        down would drop the host's route and make the root end lose its
        carrier and neighbours); no local drop that TCP sees as congestion
        (an egress drop would); ARP still passes, so neighbour entries stay
        and no "host unreachable" is made up locally. A capture on
        `interface` still sees what arrives (taps come before tc)."""
        if self.down:
            return
        for where, dev in ((["-n", self.netns], self.interface), ([], self.peer_interface)):
            tc = ["tc", *where]
            subprocess.run([*tc, "qdisc", "add", "dev", dev, "clsact"], check=True)
            subprocess.run(
                [*tc, "filter", "add", "dev", dev, "ingress", "protocol", "ip", "pref", "1",
                 "bpf", "bytecode", DROP_IPV4, "da"],
                check=True,
            )  # fmt: skip
        self.down = True

    def link_up(self) -> None:
        """Restore the link link_down() cut: TCP's retransmissions get through."""
        for where, dev in ((["-n", self.netns], self.interface), ([], self.peer_interface)):
            subprocess.run(["tc", *where, "qdisc", "del", "dev", dev, "clsact"],
                           capture_output=True)  # fmt: skip
        self.down = False

    def reset(self) -> None:
        """The host as it started: link up, no session nor anything else
        running in it (all SIGKILLed) but its sshd."""
        self.link_up()
        left = kill_all(self.session_processes())
        assert not left, f"{self.name}: processes {left} survived SIGKILL"

    def stop(self) -> None:
        """End everything of the host, sshd last, and remove its link and namespace."""
        try:
            if self.init is not None:
                kill_all(self.session_processes())
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.init.pid, signal.SIGTERM)  # to sshd
                try:
                    self.init.wait(5)
                except subprocess.TimeoutExpired:
                    kill_all(descendants(self.init.pid) | netns_members(self.netns))
                    self.init.kill()
                    self.init.wait(5)
        finally:
            remove_netns(self.netns, self.peer_interface)


def remove_netns(netns: str, peer_interface: str) -> None:
    """Kill what runs in `netns`, remove the veth pair and the namespace."""
    kill_all(netns_members(netns))
    subprocess.run(["ip", "link", "del", peer_interface], capture_output=True)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def remove_stale() -> bool:
    """Remove what a session that died without cleaning up left: namespaces,
    links and directories named after a process that no longer runs; and
    whether such a session had made /run/sshd (PRIVSEP_MARK)."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir("/run/netns"):
            if (m := re.fullmatch(rf"{NETNS_PREFIX}(\d+)-(\d+)", name)) and not pid_running(
                int(m[1])
            ):
                remove_netns(name, f"{VETH_PREFIX}{m[1]}-{m[2]}")
    made_privsep = False
    for path in Path("/run").glob(f"{TMP_PREFIX}*"):
        if (m := re.match(rf"{TMP_PREFIX}(\d+)-", path.name)) and not pid_running(int(m[1])):
            made_privsep |= (path / PRIVSEP_MARK).exists()
            shutil.rmtree(path, ignore_errors=True)
    return made_privsep


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of this namespace's addresses and routes (all
    tables), default routes aside."""
    found = []
    for link in json.loads(output("ip", "-4", "-j", "addr")):
        for a in link.get("addr_info", []):
            found.append(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network)
    for route in json.loads(output("ip", "-4", "-j", "route", "show", "table", "all")):
        if route.get("dst", "default") != "default":
            found.append(ipaddress.IPv4Network(route["dst"], strict=False))
    return found


def free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """`count` /24s of SUPERNET that no address or route here overlaps."""
    used = networks_in_use()
    free = [
        n
        for n in SUPERNET.subnets(new_prefix=24)
        if n.network_address.packed[2] != 0 and not any(n.overlaps(u) for u in used)
    ]
    assert len(free) >= count, f"fewer than {count} free /24s in {SUPERNET}: {used}"
    return free[:count]


def wait_listening(host: SshHost, seconds: float = 10) -> None:
    """Until sshd listens and wrote its pid file; its pid in host.sshd_pid."""
    assert host.init is not None
    pidfile = host.directory / f"{host.name}.pid"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if host.init.poll() is not None:
            raise RuntimeError(f"{host.name}: sshd exited ({host.init.returncode}):\n{host.log()}")
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if f"Server listening on {host.address} port 22" in host.log():
                host.sshd_pid = pid
                return
        time.sleep(0.02)
    raise RuntimeError(f"{host.name}: sshd not listening after {seconds} s:\n{host.log()}")


def start_host(host: SshHost, subnet: ipaddress.IPv4Network) -> None:
    """Make the host's namespace and link, and start its sshd."""
    ip("netns", "add", host.netns)
    ip("netns", "exec", host.netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
    ip("link", "add", host.peer_interface, "type", "veth",
       "peer", "name", host.interface, "netns", host.netns)  # fmt: skip
    near_v6 = Path(f"/proc/sys/net/ipv6/conf/{host.peer_interface}/disable_ipv6")
    if near_v6.exists():
        near_v6.write_text("1")
    ip("addr", "add", f"{host.peer_address}/{subnet.prefixlen}", "dev", host.peer_interface)
    ip("-n", host.netns, "addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", host.interface)
    ip("-n", host.netns, "link", "set", "lo", "up")
    ip("-n", host.netns, "link", "set", host.interface, "up")
    ip("link", "set", host.peer_interface, "up")
    config = host.directory / f"{host.name}_sshd_config"
    config.write_text(sshd_config(host.address, host.directory, host.name))
    init = host.directory / "init.py"
    if not init.exists():
        init.write_text(REAPER)
    with host.log_path.open("ab") as log:
        host.init = subprocess.Popen(
            [*host.netns_exec, sys.executable, str(init), SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True, cwd="/",
        )  # fmt: skip
    wait_listening(host)


@contextlib.contextmanager
def privsep_dir(top: Path, made: bool) -> Iterator[None]:
    """/run/sshd, made (root's, 0755) if missing and then removed again,
    unless an sshd (another session's, the machine's) runs by then; so is
    one that `made`, a dead session made. A mark in `top` says we made it."""
    if not PRIVSEP_DIR.exists():
        PRIVSEP_DIR.mkdir(mode=0o755)
        made = True
    if made:
        (top / PRIVSEP_MARK).touch()
    try:
        yield
    finally:
        if made and not any(exe(p) == SSHD for p in processes()):
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()


def other_sessions() -> set[int]:
    """The pids of other live sessions with hosts (namespaces) of their own."""
    with contextlib.suppress(FileNotFoundError):
        pids = {int(m[1]) for name in os.listdir("/run/netns")
                if (m := re.fullmatch(rf"{NETNS_PREFIX}(\d+)-\d+", name))}  # fmt: skip
        return {p for p in pids if p != os.getpid() and pid_running(p)}
    return set()


@contextlib.contextmanager
def remote_user() -> Iterator[str]:
    """privileged.REMOTE, in GROUP (which must exist: the `user` fixture
    makes it); made if missing, and then removed again. One that bears
    USER_COMMENT (made by this session or one that died before removing it)
    is removed unless another session still uses it: the last one does."""
    pw, _ = ensure_login_user(REMOTE, USER_COMMENT)
    try:
        subprocess.run(["usermod", "-aG", GROUP, REMOTE], check=True)
        yield REMOTE
    finally:
        if pw.pw_gecos == USER_COMMENT and not other_sessions():
            remove_user(REMOTE)


@contextlib.contextmanager
def running_hosts(count: int = 3) -> Iterator[list[SshHost]]:
    """`count` hosts, each with its sshd running; all removed at the end."""
    for tool in (SSHD, SSH, SSH_KEYGEN):
        assert os.access(tool, os.X_OK), f"{tool} is missing: make deps-test installs it"
    made_privsep = remove_stale()
    subnets = free_subnets(count)
    pid = os.getpid()
    with contextlib.ExitStack() as stack:
        top = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{pid}-", dir="/run"))
        stack.callback(shutil.rmtree, top, ignore_errors=True)
        top.chmod(0o755)  # REMOTE reads authorized_keys here (sshd opens it as the user)
        client_key, wrong_key = top / "client_ed25519", top / "wrong_ed25519"
        (top / "authorized_keys").write_text(keygen(client_key, "epcap ssh hosts client"))
        keygen(wrong_key, "epcap ssh hosts unauthorized client")
        known_hosts, unknown_hosts = top / "known_hosts", top / "empty_known_hosts"
        unknown_hosts.write_text("")
        user = stack.enter_context(remote_user())
        stack.enter_context(privsep_dir(top, made_privsep))
        hosts = []
        for i, subnet in enumerate(subnets, 1):
            name = f"host{i}"
            address, peer_address = str(subnet.network_address + 2), str(subnet.network_address + 1)
            with known_hosts.open("a") as known:
                kind, key = keygen(top / f"{name}_host_ed25519", f"epcap ssh {name}").split()[:2]
                known.write(f"{address} {kind} {key}\n")
            host = SshHost(
                name=name, netns=f"{NETNS_PREFIX}{pid}-{i}", interface=INTERFACE,
                address=address, peer_interface=f"{VETH_PREFIX}{pid}-{i}",
                peer_address=peer_address, user=user, target=f"{user}@{address}",
                ssh_options=client_options(client_key, known_hosts),
                wrong_key_options=client_options(wrong_key, known_hosts),
                unknown_host_options=client_options(client_key, unknown_hosts),
                directory=top, log_path=top / f"{name}_sshd.log",
            )  # fmt: skip
            stack.callback(host.stop)
            start_host(host, subnet)
            hosts.append(host)
        yield hosts
