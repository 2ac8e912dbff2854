"""epcap-sniff, as a user runs it: the console script, python -m, files,
live captures on lo, -w files that tcpdump reads, signals and errors."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from epcap.sniff import SAMPLE, _parser, main

import pcapfiles as pf
from conftest import HELPER, helper_pids, proc_status, start_file
from helpers import send_udp

VENV_BIN = Path(sys.executable).parent
SNIFF = str(VENV_BIN / "epcap-sniff")
ENV = {**os.environ, "EPCAPD": str(HELPER), "TZ": "UTC"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env or ENV)


def reports(stdout: str) -> list[dict[str, object]]:
    """The report format parsed back: blank-line separated `key: json` lines."""
    out = []
    for block in stdout.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            fields[key] = json.loads(value)
        out.append(fields)
    return out


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "s.pcap"
    pf.write_pcap(path, pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    return path


def test_the_bundled_sample_is_the_generated_one() -> None:
    expected = pf.pcap_bytes(pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    assert SAMPLE.read_bytes() == expected


def test_a_report_per_packet(sample: Path) -> None:
    result = run(SNIFF, "-r", str(sample))
    assert result.returncode == 0, result.stderr
    got = reports(result.stdout)
    records = pf.sample_records()
    assert len(got) == len(records)
    for report, (time_ns, length, data) in zip(got, records, strict=True):
        sec, nsec = divmod(time_ns, 10**9)
        assert (
            report["time"] == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)) + f".{nsec:09d}"
        )
        assert (report["caplen"], report["len"]) == (len(data), length)
    tcp = [r for r in got if r.get("protocol") == "tcp"]
    assert tcp[0]["protocol_header"]["flags"] == ["syn"]  # type: ignore[index]
    assert {r["protocol"] for r in got} == {"arp", "icmp", "udp", "tcp"}
    assert result.stderr.splitlines() == [
        f"epcap-sniff: reading from file {sample}, link-type EN10MB, snapshot length 262144 bytes",
        f"{len(records)} packets captured",
    ]


def test_line_format_with_filter_and_count() -> None:
    args = ("-r", str(SAMPLE), "--line", "-n", "-c", "2", "tcp")  # -n: no name server asked
    result = run(sys.executable, "-m", "epcap.sniff", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "00:00:01.500864 IP 192.168.1.10.49152 > 192.168.1.80.80: "
        "Flags [S], seq 268435456, win 65535, length 0",
        "00:00:01.750987 IP 192.168.1.80.80 > 192.168.1.10.49152: "
        "Flags [S.], seq 1342177280, ack 268435457, win 65535, length 0",
    ]


def test_json_lines_carry_exact_times_and_bytes(sample: Path) -> None:
    result = run(SNIFF, "-r", str(sample), "--json", "--payload", "0", "--precision", "nano")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    records = pf.sample_records()
    assert [x["time_ns"] for x in lines] == [t for t, _, _ in records]
    for fields, (_, length, data) in zip(lines, records, strict=True):
        assert fields["len"] == length
        assert data.endswith(bytes.fromhex(fields["payload_hex"]))
        assert fields["payload_bytes"] == len(bytes.fromhex(fields["payload_hex"]))
    # --time-stamp-precision micro: microsecond digits; time_ns stays exact.
    micro = run(SNIFF, "-r", str(sample), "--json", "--time-stamp-precision", "micro")
    fields = [json.loads(x) for x in micro.stdout.splitlines()]
    assert [x["time_ns"] for x in fields] == [t for t, _, _ in records]
    assert [x["time"][-8:] for x in fields] == [f".{t // 1000 % 10**6:06d}Z" for t, _, _ in records]


def test_hex_dumps(sample: Path) -> None:
    # -XX from the link layer, -X from the network layer, as tcpdump's.
    result = run(SNIFF, "-r", str(sample), "--line", "-n", "-XX", "-c", "1")
    assert result.stdout.splitlines()[1:] == [
        "\t0x0000:  ffff ffff ffff 0200 0000 000a 0806 0001  ................",
        "\t0x0010:  0800 0604 0001 0200 0000 000a c0a8 010a  ................",
        "\t0x0020:  0000 0000 0000 c0a8 0101                 ..........",
    ]
    result = run(SNIFF, "-r", str(sample), "--line", "-n", "-x", "-c", "1")
    assert result.stdout.splitlines()[1:] == [
        "\t0x0000:  0001 0800 0604 0001 0200 0000 000a c0a8",
        "\t0x0010:  010a 0000 0000 0000 c0a8 0101",
    ]
    # In a report the dump follows its packet's fields, before the blank line.
    result = run(SNIFF, "-r", str(sample), "--format", "report", "-X", "-c", "2")
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == 3 and blocks[2] == ""
    for block in blocks[:2]:
        lines = block.splitlines()
        assert lines[0].startswith("time: ") and lines[-1].startswith("\t0x0010:  ")


@pytest.mark.captures
@pytest.mark.parametrize("fmt", ["report", "json", "line"])
def test_every_shared_capture_runs_to_the_end(
    captures: list[Path],
    fmt: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EPCAPD", str(HELPER))
    for path in captures:
        _, records = pf.libpcap_read(path)
        assert main(["-r", str(path), "--format", fmt, "--quiet", "-n"]) == 0, path.name
        out, err = capsys.readouterr()
        assert err == "", path.name
        if fmt == "report":
            assert len(reports(out)) == len(records), path.name
        else:  # a line starts each packet; tcpdump's dumps go on indented lines
            lines = [line for line in out.splitlines() if not line[:1].isspace()]
            assert len(lines) == len(records), path.name
            if fmt == "json":
                assert [json.loads(x)["caplen"] for x in lines] == [len(d) for _, _, d in records]


def test_write_from_a_file_is_byte_exact(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.pcap"
    result = run(SNIFF, "-r", str(sample), "-w", str(out), "tcp or udp")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    dlt, copied = pf.libpcap_read(out)
    _, original = pf.libpcap_read(sample)
    assert dlt == 1
    assert copied == [r for r in original if pf_is_tcp_or_udp(r[2])]
    # -w - streams the pcap to stdout, as tcpdump's, into tcpdump itself.
    pipe = subprocess.run(
        f"{SNIFF} --quiet -r {sample} -w - | tcpdump -nn -r - 2>&1", shell=True,
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert pipe.stdout.count(" IP") == len(original) - 2  # the two ARP packets print no " IP"


def pf_is_tcp_or_udp(frame: bytes) -> bool:
    if frame[12:14] == b"\x08\x00":
        return frame[23] in (6, 17)
    return frame[12:14] == b"\x86\xdd" and frame[20] in (6, 17)


def test_without_dpkt_decoding_names_the_extra_and_w_still_works(
    sample: Path, tmp_path: Path
) -> None:
    code = "import sys; sys.modules['dpkt'] = None; from epcap.sniff import main; sys.exit(main())"
    result = run(sys.executable, "-c", code, "-r", str(sample))
    assert result.returncode == 1
    assert "pip install 'epcap[decode]'" in result.stderr
    assert "Traceback" not in result.stderr
    out = tmp_path / "w.pcap"
    result = run(sys.executable, "-c", code, "-r", str(sample), "-w", str(out))
    assert result.returncode == 0, result.stderr
    assert len(pf.libpcap_read(out)[1]) == len(pf.sample_records())


@pytest.mark.parametrize(
    "args, message",
    [
        (["-r", "/nonexistent.pcap"], "No such file or directory"),
        (["-r", str(SAMPLE), "tcp", "port"], "syntax error"),
        (["-r", str(SAMPLE), "-s", "300000"], "snaplen"),
        (["-r", str(SAMPLE), "-Z", "no-such-user-epcap"], "no-such-user-epcap"),
        (["-r", str(SAMPLE), "-w", "/nonexistent/dir/x.pcap"], "No such file or directory"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    before = helper_pids()
    result = run(SNIFF, *args)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("epcap-sniff: ") and message in last, result.stderr
    assert "Traceback" not in result.stderr
    assert helper_pids() - before == set()


def test_help_documents_every_option() -> None:
    result = run(SNIFF, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for action in _parser()._actions:
        for flag in action.option_strings:
            assert flag in text, flag
        if action.option_strings and action.dest not in ("help",):
            assert action.help or action.const, action.option_strings
    assert "exit status is 0" in text


# Live ----------------------------------------------------------------------


class Sniff:
    """epcap-sniff running live, with the test waiting on its stderr."""

    def __init__(self, *args: str, stderr: int | None = None) -> None:
        self.proc = subprocess.Popen(
            [SNIFF, *args], stdout=subprocess.PIPE, stderr=stderr or subprocess.PIPE,
            text=True, env=ENV,
        )  # fmt: skip

    def wait_listening(self, count: int = 1) -> None:
        assert self.proc.stderr is not None
        for _ in range(count):
            line = self.proc.stderr.readline()
            assert "epcap-sniff: listening on lo" in line, line

    def lines(self, n: int) -> list[str]:
        assert self.proc.stdout is not None
        return [self.proc.stdout.readline() for _ in range(n)]

    def finish(self) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=20)
        return out, err


def send(port: int, n: int, tag: str = "sniff") -> list[bytes]:
    """Send `n` numbered datagrams to `port` on 127.0.0.1; return their payloads."""
    payloads = [f"{tag} {i:03d}".encode() for i in range(n)]
    send_udp("127.0.0.1", port, payloads, gap=0.002)
    return payloads


def tcpdump_read(path: Path) -> list[tuple[int, bytes]]:
    """(time in ns, frame bytes) of each packet, as tcpdump reads the file."""
    out = subprocess.run(
        ["tcpdump", "-nn", "-tt", "--time-stamp-precision=nano", "-xx", "-r", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    packets: list[tuple[int, bytes]] = []
    for line in out.splitlines():
        if line.startswith("\t0x"):
            hexes = line.split(":", 1)[1].split()
            packets[-1] = (packets[-1][0], packets[-1][1] + bytes.fromhex("".join(hexes)))
        else:
            sec, nsec = re.match(r"(\d+)\.(\d{9}) ", line).groups()  # type: ignore[union-attr]
            packets.append((int(sec) * 10**9 + int(nsec), b""))
    return packets


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_write_50_datagrams_that_tcpdump_reads(udp_port: int, tmp_path: Path) -> None:
    out = tmp_path / "out.pcap"
    sniff = Sniff(
        "-i", "lo", "-w", str(out), "-c", "50", "--print", "--json", "--payload", "0",
        f"udp port {udp_port}",
    )  # fmt: skip
    sniff.wait_listening()
    payloads = send(udp_port, 50)
    stdout, stderr = sniff.finish()
    assert sniff.proc.returncode == 0, stderr
    shown = [json.loads(line) for line in stdout.splitlines()]
    assert [bytes.fromhex(x["payload_hex"]) for x in shown] == payloads
    read = tcpdump_read(out)
    assert len(read) == 50
    for (time_ns, frame), fields, payload in zip(read, shown, payloads, strict=True):
        assert time_ns == fields["time_ns"]
        assert len(frame) == fields["caplen"] == 14 + 20 + 8 + len(payload)
        assert frame.endswith(payload)
    assert "50 packets captured" in stderr
    assert pf.libpcap_read(out)[1] == [(t, len(f), f) for t, f in read]


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_cleanly_with_the_summary(signum: int, udp_port: int, tmp_path: Path) -> None:
    out = tmp_path / "sig.pcap"
    sniff = Sniff("-i", "lo", "-w", str(out), "--print", "-n", f"udp port {udp_port}")
    sniff.wait_listening()
    send(udp_port, 20)
    shown = sniff.lines(20)
    assert all(f"127.0.0.1.{udp_port}: UDP, length 9" in line for line in shown)
    sniff.proc.send_signal(signum)
    _, stderr = sniff.finish()
    assert sniff.proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    # On lo the kernel's socket sees each packet leave and arrive, and libpcap
    # discards the outgoing copy: received counts both, as tcpdump shows too.
    assert stderr.splitlines() == [
        "20 packets captured",
        "40 packets received by filter",
        "0 packets dropped by kernel",
        "0 packets dropped by interface",
    ]
    assert len(tcpdump_read(out)) == 20


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_a_signal_during_a_flood_stops_at_once(udp_port: int, tmp_path: Path) -> None:
    # Reports print far slower than lo delivers: the backlog must stay bounded
    # (the helper waits, the kernel drops and counts), and Ctrl-C must not
    # print the backlog first.  What was on its way still goes to the file.
    out = tmp_path / "flood.pcap"
    sniff = Sniff("-i", "lo", "-w", str(out), "--print", f"udp port {udp_port}")
    sniff.wait_listening()
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            send_udp("127.0.0.1", udp_port, [b"f" * 100] * 100)

    def drain() -> None:
        assert sniff.proc.stdout is not None
        while sniff.proc.stdout.read(65536):
            pass

    threads = [threading.Thread(target=flood), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    rss = int(proc_status(sniff.proc.pid)["VmRSS"].split()[0])
    sniff.proc.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    assert sniff.proc.wait(10) == 0
    took = time.monotonic() - signalled
    stop.set()
    for t in threads:
        t.join()
    assert sniff.proc.stderr is not None
    stderr = sniff.proc.stderr.read()
    assert took < 3, f"{took:.1f} s from SIGINT to exit"
    assert rss < 150_000, f"{rss} KiB resident while flooded"
    captured = int(re.search(r"^(\d+) packets? captured$", stderr, re.M).group(1))  # type: ignore[union-attr]
    assert re.search(r"^\d+ packets? dropped by kernel$", stderr, re.M), stderr
    assert captured > 0
    assert len(pf.libpcap_read(out)[1]) == captured  # the file is whole and holds them all


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_live_status_line_on_a_terminal(udp_port: int) -> None:
    master, slave = pty.openpty()
    sniff = Sniff("-i", "lo", "-w", os.devnull, f"udp port {udp_port}", stderr=slave)
    os.close(slave)
    seen = b""

    def until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 10
        while text not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096)
        assert text in seen, seen

    until(b"listening on lo")
    send(udp_port, 5)
    until(b"\r\x1b[K5 packets captured, 0 dropped by kernel")
    sniff.proc.send_signal(signal.SIGINT)
    until(b"0 packets dropped by interface")
    assert sniff.proc.wait(10) == 0
    os.close(master)


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_two_interfaces_into_one_pcapng(udp_port: int, tmp_path: Path) -> None:
    out = tmp_path / "both.pcapng"
    sniff = Sniff(
        "-i", "lo", "-i", "lo", "-w", str(out), "-c", "20", "--print", "-n",
        f"udp port {udp_port}",
    )  # fmt: skip
    sniff.wait_listening(2)
    payloads = send(udp_port, 10)
    stdout, stderr = sniff.finish()
    assert sniff.proc.returncode == 0, stderr
    assert len(stdout.splitlines()) == 20
    assert all(line.startswith("lo ") for line in stdout.splitlines())
    dlt, records = pf.libpcap_read(out)
    assert dlt == 1
    assert sorted(data[42:] for _, _, data in records) == sorted(payloads * 2)
    with start_file(out) as cap:
        back = list(cap)
    times = [pkt.time for pkt in back]
    assert times == sorted(times), "not in time order"
    for ifid in (0, 1):  # each capture's packets, under its own interface block
        assert sorted(p.data[42:] for p in back if p.interface_id == ifid) == sorted(payloads)
    tcpdump = subprocess.run(["tcpdump", "-nr", str(out)], capture_output=True, text=True)
    assert tcpdump.returncode == 0, tcpdump.stderr
    assert len(tcpdump.stdout.splitlines()) == 20


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_no_such_interface_is_one_line() -> None:
    result = run(SNIFF, "-i", "nosuch0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("epcap-sniff: ")
    assert "nosuch0" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.root
def test_demo_captures_live_when_privileged() -> None:
    result = run(SNIFF, "--demo")
    assert result.returncode == 0, result.stderr
    assert "live capture on lo" in result.stdout
    assert "epcap-sniff: 10 packets captured" in result.stdout
    assert result.stdout.count('protocol: "udp"') == 10
    assert result.stdout.count('payload: "epcap demo datagram ') == 10
