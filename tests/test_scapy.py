"""epcap.scapy: scapy's sniff, AsyncSniffer, srp, sendp and sr1 as a real
unprivileged user, through a helper `epcap-admin install`ed in caps mode,
over a veth pair into a network namespace of the test's own; the same
scripts failing without epcap.scapy.use(); and, as root in this process,
the sockets' select, close and errors.

The network: the namespace epcapscapy<pid>, `lo` up, with the far end of a
veth pair (esc<pid>n: 10.78.N.2/24, .3 and .4) whose near end, esc<pid>h,
stays here (10.78.N.1/24), for a /24 of 10.78.0.0/16 that nothing here
touches; IPv6 off on both ends. Nothing is sent anywhere else."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pwd
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import epcap

scapy_all = pytest.importorskip("scapy.all")  # test extra: a skip fails under CI=true
import epcap.scapy  # noqa: E402 - after scapy is known to be there
from epcap.scapy import L2ListenSocket, L2Socket  # noqa: E402

from conftest import HELPER, ROOT  # noqa: E402
from helpers import send_udp  # noqa: E402
from privileged import GROUP, as_user, processes_of, wait_gone  # noqa: E402
from sshhosts import ip, networks_in_use, pid_running, remove_netns  # noqa: E402

NETNS_PREFIX = "epcapscapy"
VETH_PREFIX = "esc"
SUPERNET = ipaddress.IPv4Network("10.78.0.0/16")
PORT = 47123
"""The UDP port of the test's datagrams (a filter's, and the far end's receiver's)."""

# -- the network -------------------------------------------------------------


@dataclass(frozen=True)
class Net:
    netns: str
    here: str
    """The near end of the veth pair, in this namespace: what the scripts use."""
    there: str
    """The far end, in `netns`."""
    here_address: str
    there_addresses: tuple[str, ...]
    there_mac: str

    def exec(self, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Run `argv` in the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], text=True, **kwargs)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUPERNET that no address or route here overlaps, chosen by pid."""
    used = networks_in_use()
    subnets = list(SUPERNET.subnets(new_prefix=24))[1:]
    start = os.getpid() % len(subnets)
    for net in subnets[start:] + subnets[:start]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise AssertionError(f"no free /24 in {SUPERNET}")


def remove_stale() -> None:
    """What a session killed before its cleanup left: namespaces of dead pids."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir("/run/netns"):
            if (m := re.fullmatch(rf"{NETNS_PREFIX}(\d+)", name)) and not pid_running(int(m[1])):
                remove_netns(name, f"{VETH_PREFIX}{m[1]}h")


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    remove_stale()
    pid = os.getpid()
    subnet = free_subnet()
    hosts = [str(a) for a in subnet.hosts()]
    netns, here, there = f"{NETNS_PREFIX}{pid}", f"{VETH_PREFIX}{pid}h", f"{VETH_PREFIX}{pid}n"
    ip("netns", "add", netns)
    try:
        ip("netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
        ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", netns)
        Path(f"/proc/sys/net/ipv6/conf/{here}/disable_ipv6").write_text("1")
        ip("addr", "add", f"{hosts[0]}/24", "dev", here)
        for address in hosts[1:4]:
            ip("-n", netns, "addr", "add", f"{address}/24", "dev", there)
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "link", "set", there, "up")
        ip("link", "set", here, "up")
        link = json.loads(subprocess.run(["ip", "-n", netns, "-j", "link", "show", there],
                                         capture_output=True, check=True).stdout)  # fmt: skip
        yield Net(netns, here, there, hosts[0], tuple(hosts[1:4]), link[0]["address"])
    finally:
        remove_netns(netns, here)
    assert not Path(f"/run/netns/{netns}").exists()
    assert not Path(f"/sys/class/net/{here}").exists()


# -- the installation --------------------------------------------------------


@pytest.fixture(scope="module")
def helpers(user: pwd.struct_passwd) -> Iterator[dict[str, Path]]:
    """priv/epcapd, `epcap-admin install`ed in caps mode for GROUP into two
    temporary prefixes: "inject" lets GROUP send, "plain" lets no one;
    uninstalled at the end, leaving nothing."""
    top = Path(tempfile.mkdtemp(prefix="epcap-scapy-", dir="/var/tmp"))
    top.chmod(0o755)
    admin = [sys.executable, "-m", "epcap.admin"]
    made = {}
    try:
        for name, extra in (("inject", ["--inject-group", GROUP]), ("plain", [])):
            subprocess.run(
                [*admin, "install", "--prefix", str(top / name), "--mode", "caps",
                 "--group", GROUP, *extra, "--helper", str(HELPER), "--test-install"],
                check=True, capture_output=True, cwd=ROOT,
            )  # fmt: skip
            made[name] = top / name / "lib" / "epcap" / "epcapd"
        yield made
    finally:
        for name in made:
            subprocess.run([*admin, "uninstall", "--prefix", str(top / name)],
                           check=True, capture_output=True)  # fmt: skip
        left = [str(p) for p in top.rglob("*") if not p.is_dir()]
        subprocess.run(["rm", "-rf", str(top)], check=True)
        assert left == [], f"epcap-admin uninstall left {left}"


# -- the scripts, as the user ------------------------------------------------

SCRIPT = r"""
import json, socket, sys, threading, time
from decimal import Decimal

p = json.loads(sys.argv[1])
IFACE, FILTER, THERE = p["here"], f"udp port {p['port']}", p["there"]

def datagrams(tag, count):
    payloads = [f"{tag} {i}" for i in range(count)]
    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for payload in payloads:
                tx.sendto(payload.encode(), (THERE[0], p["port"]))
    return payloads, send

def loads(packets):
    return [bytes(pkt[Raw].load).decode() for pkt in packets]

def sniff_step():
    sent, send = datagrams("sniff", 20)
    got = sniff(count=20, iface=IFACE, filter=FILTER, started_callback=send, timeout=10)
    return dict(sent=sent, got=loads(got), sniffed_on=sorted({str(x.sniffed_on) for x in got}),
                exact=all(isinstance(x.time, Decimal) for x in got),
                wirelen=sorted({x.wirelen == len(x) for x in got}),
                ages=[float(time.time() - x.time) for x in got])

def async_step():
    sent, send = datagrams("async", 50)
    started = threading.Event()
    sniffer = AsyncSniffer(iface=IFACE, filter=FILTER, started_callback=started.set)
    sniffer.start()
    while not started.wait(0.01) and sniffer.thread.is_alive():
        pass  # started, or failed: then stop() raises its error
    if started.is_set():
        send()
    time.sleep(0.3)
    t0 = time.monotonic()
    got = sniffer.stop()
    return dict(sent=sent, got=loads(got), stop_seconds=time.monotonic() - t0)

def srp_step():
    t0 = time.monotonic()
    ans, unans = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=THERE), iface=IFACE, timeout=5)
    return dict(answers=sorted([r[ARP].psrc, r[ARP].hwsrc, r[ARP].op] for _, r in ans),
                unanswered=len(unans), seconds=time.monotonic() - t0)

def sendp_step():
    head = Ether(dst=p["there_mac"]) / IP(dst=THERE[0]) / UDP(sport=40000, dport=p["port"])
    sendp([head / Raw(f"sendp {i}".encode()) for i in range(10)], iface=IFACE)
    return dict(sent=[f"sendp {i}" for i in range(10)])

def sr1_step():
    answer = sr1(IP(dst=THERE[1]) / ICMP(id=7, seq=1), timeout=5)
    return dict(answer=answer and [answer[IP].src, answer[ICMP].type, answer[ICMP].id])

def loopback_step():
    sr1(IP(dst="127.0.0.1") / ICMP(), timeout=1)
    return dict(answer="no error")

from scapy.all import AsyncSniffer, ARP, Ether, ICMP, IP, Raw, UDP, conf, sendp, sniff, sr1, srp
conf.verb = 0
if p["use"]:
    import epcap.scapy
    epcap.scapy.use(progname=p["progname"])
for step in p["steps"]:
    try:
        result = globals()[step + "_step"]()
    except BaseException as exc:
        result = dict(error=type(exc).__name__, message=str(exc),
                      mro=[c.__name__ for c in type(exc).__mro__])
    print(json.dumps(dict(step=step, **result)), flush=True)
"""


def run_script(
    user: pwd.struct_passwd, net: Net, *steps: str, progname: Path | None
) -> dict[str, dict[str, Any]]:
    """SCRIPT's `steps`, one after the other in one process of the user:
    with epcap.scapy.use(progname=...), or, with None, scapy's own sockets;
    what each reported (or the exception it raised), by step."""
    params = {
        "steps": steps, "use": progname is not None, "progname": str(progname), "port": PORT,
        "here": net.here, "there": list(net.there_addresses), "there_mac": net.there_mac,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="epcap-scapy-home-") as home:
        os.chown(home, user.pw_uid, user.pw_gid)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "PYTHONDONTWRITEBYTECODE": "1",
               "LANG": "C.UTF-8"}  # fmt: skip
        done = subprocess.run(
            [*as_user(user), sys.executable, "-c", SCRIPT, json.dumps(params)],
            capture_output=True, text=True, env=env, cwd="/", timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if progname is not None:  # the script's exit ended its helpers
        assert wait_gone(processes_of(progname), 5) == set()
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["step"] for r in results] == list(steps), done.stdout + done.stderr
    return {r.pop("step"): r for r in results}


@contextlib.contextmanager
def receiver(net: Net, count: int) -> Iterator[list[str]]:
    """A UDP socket on PORT at the far end: the payloads of the first
    `count` datagrams it gets (within 10 s), once the block ends."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(({net.there_addresses[0]!r}, {PORT})); s.settimeout(10)\n"
        "print('ready', flush=True)\n"
        f"for _ in range({count}):\n"
        "    try: print(s.recv(2048).decode(), flush=True)\n"
        "    except TimeoutError: break\n"
    )
    proc = net.exec(sys.executable, "-c", code, stdout=subprocess.PIPE)
    got: list[str] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield got
        out, _ = proc.communicate(timeout=15)
        got.extend(out.splitlines())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- as the user, through epcap ----------------------------------------------


@pytest.mark.root
def test_sniff_gets_exactly_the_datagrams_sent(
    user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]
) -> None:
    result = run_script(user, net, "sniff", progname=helpers["inject"])["sniff"]
    assert "error" not in result, result
    assert result["got"] == result["sent"] == [f"sniff {i}" for i in range(20)]
    assert result["sniffed_on"] == [net.here]
    assert result["exact"] and result["wirelen"] == [True]
    assert all(0 <= age < 30 for age in result["ages"])  # real times, this run's


@pytest.mark.root
def test_async_sniffer_gets_the_whole_burst_and_stops(
    user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]
) -> None:
    result = run_script(user, net, "async", progname=helpers["inject"])["async"]
    assert "error" not in result, result
    assert result["got"] == result["sent"] == [f"async {i}" for i in range(50)]
    assert result["stop_seconds"] < 2.5  # AsyncSniffer.stop(): the sniff ends, the helper is reaped


@pytest.mark.root
def test_srp_of_arp_requests_gets_each_reply(
    user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]
) -> None:
    result = run_script(user, net, "srp", progname=helpers["inject"])["srp"]
    assert "error" not in result, result
    is_at = 2
    assert result["answers"] == [[a, net.there_mac, is_at] for a in net.there_addresses]
    assert result["unanswered"] == 0
    assert result["seconds"] < 4  # every request answered: srp ends without its timeout


@pytest.mark.root
def test_sendp_frames_arrive_at_the_far_end(
    user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]
) -> None:
    with receiver(net, 10) as got:
        result = run_script(user, net, "sendp", progname=helpers["inject"])["sendp"]
    assert "error" not in result, result
    assert got == result["sent"] == [f"sendp {i}" for i in range(10)]


@pytest.mark.root
def test_sr1_routes_through_an_epcap_l3_socket(
    user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]
) -> None:
    """send()/sr(): the route's interface, the next hop resolved by ARP
    (through conf.L2socket), the answer above the link layer."""
    result = run_script(user, net, "sr1", progname=helpers["inject"])["sr1"]
    assert "error" not in result, result
    echo_reply = 0
    assert result["answer"] == [net.there_addresses[1], echo_reply, 7]


@pytest.mark.root
def test_l3_to_this_host_is_not_implemented(
    user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]
) -> None:
    result = run_script(user, net, "loopback", progname=helpers["inject"])["loopback"]
    assert result["error"] == "NotImplementedError", result
    assert "martian source" in result["message"] and "raw IP socket" in result["message"]


SENDING = ("sendp", "srp", "sr1")
EVERY_STEP = ("sniff", "async", *SENDING)


@pytest.fixture(scope="module")
def without_inject(user: pwd.struct_passwd, net: Net, helpers: dict[str, Path]) -> dict[str, Any]:
    """SCRIPT's steps through the helper installed without inject."""
    return run_script(user, net, "sniff", *SENDING, progname=helpers["plain"])


@pytest.mark.root
@pytest.mark.parametrize("step", SENDING)
def test_sending_needs_an_installation_that_allows_inject(
    step: str, without_inject: dict[str, Any]
) -> None:
    result = without_inject[step]
    assert result["error"] == "InjectNotAllowedError", result
    assert {"PolicyError", "PermissionError", "EpcapError"} <= set(result["mro"])
    assert "lets no one but root send packets" in result["message"]
    assert "epcap-admin install again with --inject-group GROUP" in result["message"]


@pytest.mark.root
def test_sniff_needs_no_inject(without_inject: dict[str, Any]) -> None:
    assert without_inject["sniff"].get("got") == [f"sniff {i}" for i in range(20)]


@pytest.fixture(scope="module")
def natively(user: pwd.struct_passwd, net: Net) -> dict[str, Any]:
    """SCRIPT's steps on scapy's own sockets (no use())."""
    return run_script(user, net, *EVERY_STEP, progname=None)


@pytest.mark.root
@pytest.mark.parametrize("step", EVERY_STEP)
def test_without_use_scapy_itself_is_refused(step: str, natively: dict[str, Any]) -> None:
    """The proof that epcap does it: the same scripts on scapy's own sockets."""
    result = natively[step]
    assert result.get("error") == "PermissionError", result
    assert "Operation not permitted" in result["message"]


# -- in this process ---------------------------------------------------------


@pytest.fixture
def using() -> Iterator[epcap.scapy.Use]:
    """epcap.scapy.use() with the source tree's helper, undone afterwards."""
    conf = scapy_all.conf
    before = (conf.L2listen, conf.L2socket, conf.L3socket, conf.L3socket6)
    with epcap.scapy.use(progname=HELPER) as used:
        assert (conf.L2listen, conf.L2socket) == (L2ListenSocket, L2Socket)
        yield used
    assert (conf.L2listen, conf.L2socket, conf.L3socket, conf.L3socket6) == before


def test_import_epcap_leaves_scapy_alone() -> None:
    code = "import sys, epcap; print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_without_scapy_the_import_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['scapy'] = None\n"
        "try:\n    import epcap.scapy\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'epcap[scapy]'" in out.stdout


def test_offline_sniff_is_scapy_s_own(
    using: epcap.scapy.Use, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_capture(settings: dict[str, Any]) -> None:
        raise AssertionError(f"a capture was started: {settings}")

    monkeypatch.setattr(epcap.scapy, "_start", no_capture)
    sa = scapy_all
    # explicit addresses: an Ether() left to fill its dst asks ARP, on the
    # default route's interface, for the next hop
    head = sa.Ether(src="02:00:00:00:0d:01", dst="02:00:00:00:0d:02") / sa.IP(
        src="192.0.2.2", dst="192.0.2.1"
    )
    packets = [head / sa.UDP(dport=53 + i) / sa.Raw(b"x%d" % i) for i in range(5)]
    for i, pkt in enumerate(packets):
        pkt.time = Decimal("1700000000.000000001") + i
    path = str(tmp_path / "t.pcap")
    sa.wrpcap(path, packets, nano=True)
    got = sa.sniff(offline=path)
    assert [bytes(p) for p in got] == [bytes(p) for p in packets]
    assert [p.time for p in got] == [p.time for p in packets]
    assert len(sa.sniff(offline=path, count=2)) == 2


def test_use_takes_epcap_options_only() -> None:
    with pytest.raises(TypeError, match="'interface': the sockets set it"):
        epcap.scapy.use(interface="lo")
    with pytest.raises(TypeError, match="'bogus': not an epcap option"):
        epcap.scapy.use(bogus=1)  # type: ignore[call-arg]
    assert scapy_all.conf.L2listen is not L2ListenSocket


@pytest.fixture
def udp_on_lo(udp_port: int) -> Iterator[tuple[int, L2ListenSocket]]:
    """A listening socket on lo for the datagrams to `udp_port`."""
    sock = L2ListenSocket(iface="lo", filter=f"udp dst port {udp_port}", progname=HELPER)
    try:
        yield udp_port, sock
    finally:
        sock.close()


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_select_reports_buffered_packets_without_a_read(
    udp_on_lo: tuple[int, L2ListenSocket],
) -> None:
    port, sock = udp_on_lo
    send_udp("127.0.0.1", port, [b"buffered %d" % i for i in range(5)])
    time.sleep(0.2)  # all five sent by the helper: the first select reads them at once
    assert L2ListenSocket.select([sock], 5) == [sock]
    got: list[Any] = [sock.recv()]
    assert select.select([sock.fileno()], [], [], 0)[0] == []  # nothing more to read ...
    assert sock.capture.pending == 4  # ... the four others are in the batch received
    for _ in range(4):
        assert L2ListenSocket.select([sock], 0) == [sock]  # ready without a read
        got.append(sock.recv())
    assert [bytes(p[scapy_all.Raw].load) for p in got] == [b"buffered %d" % i for i in range(5)]
    assert all(p.sniffed_on == "lo" and p.wirelen == len(p) for p in got)
    t0 = time.monotonic()
    assert L2ListenSocket.select([sock], 0.3) == []  # quiet: the whole remain, then nothing
    assert 0.29 <= time.monotonic() - t0 < 1.5


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_select_with_other_objects_and_a_close_from_another_thread(
    udp_on_lo: tuple[int, L2ListenSocket],
) -> None:
    _, sock = udp_on_lo
    pipe = scapy_all.ObjectPipe[None]("control")
    try:
        pipe.send(None)
        assert L2ListenSocket.select([sock, pipe], None) == [pipe]  # sniff's control pipe
        pipe.recv()
        closer = threading.Timer(0.2, sock.close)
        closer.start()
        t0 = time.monotonic()
        assert L2ListenSocket.select([sock, pipe], None) == [sock]  # woken by close
        assert time.monotonic() - t0 < 2.5
        closer.join()
        with pytest.raises(EOFError):
            sock.recv()
        assert sock.fileno() == -1 and sock.capture.closed
    finally:
        pipe.close()


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_a_blocking_recv_ends_when_another_thread_closes(
    udp_on_lo: tuple[int, L2ListenSocket],
) -> None:
    _, sock = udp_on_lo
    helper = Path(f"/proc/{sock.capture.pid}")
    closer = threading.Timer(0.2, sock.close)
    closer.start()
    t0 = time.monotonic()
    with pytest.raises(EOFError):
        sock.recv()  # as scapy's own, it waits for a packet: none comes
    assert 0.19 <= time.monotonic() - t0 < 2.5
    closer.join()
    assert not helper.exists()  # close() returned once it had reaped the helper


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers", "using")
def test_sniff_options_behave(net: Net, udp_port: int) -> None:
    sa = scapy_all
    flt = f"udp port {PORT} or udp port {udp_port}"

    def send_both() -> None:
        send_udp(net.there_addresses[0], PORT, [b"veth %d" % i for i in range(3)])
        send_udp("127.0.0.1", udp_port, [b"lo %d" % i for i in range(3)])

    seen: list[str] = []
    got = sa.sniff(iface=["lo", net.here], filter=flt, count=6, timeout=10,
                   started_callback=send_both, prn=lambda p: seen.append(p.sniffed_on))  # fmt: skip
    by_iface = {(p.sniffed_on, bytes(p[sa.Raw].load)) for p in got}
    assert by_iface == {("lo", b"lo %d" % i) for i in range(3)} | {
        (net.here, b"veth %d" % i) for i in range(3)
    }
    assert sorted(seen) == sorted(p.sniffed_on for p in got)

    with L2ListenSocket(iface=net.here, filter=f"udp port {PORT}", progname=HELPER) as sock:
        send_udp(net.there_addresses[0], PORT, [b"stop %d" % i for i in range(5)])
        got = sa.sniff(opened_socket=sock, timeout=10,
                       stop_filter=lambda p: p[sa.Raw].load == b"stop 2")  # fmt: skip
        assert [p[sa.Raw].load for p in got] == [b"stop 0", b"stop 1", b"stop 2"]
        got = sa.sniff(opened_socket=sock, count=2, timeout=10)  # the rest of its batch
        assert [p[sa.Raw].load for p in got] == [b"stop 3", b"stop 4"]
        assert not sock.closed  # sniff leaves an opened socket open
    t0 = time.monotonic()
    assert len(sa.sniff(iface="lo", filter="udp port 9", timeout=0.3)) == 0
    assert time.monotonic() - t0 < 2


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers", "using")
def test_async_sniffer_stops_at_once_when_quiet() -> None:
    sniffer = scapy_all.AsyncSniffer(iface="lo", filter="udp port 9")
    sniffer.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert len(sniffer.stop()) == 0
    assert time.monotonic() - t0 < 2.5
    assert not sniffer.thread.is_alive()


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers", "using")
def test_errors() -> None:
    sa = scapy_all
    with pytest.raises(epcap.NoSuchDeviceError):
        sa.conf.L2listen(iface="nosuch0")
    with pytest.raises(ValueError, match="Interface 'nosuch0' not found"):
        sa.sniff(iface="nosuch0", timeout=1)  # scapy's own check, before any socket
    with pytest.raises(epcap.FilterError):
        sa.sniff(iface="lo", filter="not a filter", timeout=1)
    with pytest.raises(TypeError, match="unknown argument 'bogus'"):
        sa.conf.L2listen(iface="lo", bogus=1)
    got = sa.sniff(iface="lo", filter="udp port 9", timeout=0.1, snaplen=100, buffer=1 << 20)
    assert len(got) == 0  # epcap's own options pass through sniff() to the socket
    with sa.conf.L2listen(iface="lo", snaplen=100) as sock:
        assert sock.capture.snaplen == 100
    with L2ListenSocket(iface="lo", filter="udp port 9", progname=HELPER) as sock:
        with pytest.raises(sa.Scapy_Exception, match="Can't send anything"):
            sock.send(sa.Ether())
        assert sock.stats()["packets"] == 0
        assert sock.nonblock_recv() is None
