"""Inputs of the libFuzzer harnesses (epcapd/fuzz/, `make fuzz`) replayed
against the real helper: the seed corpus, and every crash the fuzzers found
(regressions/), kept so that it stays fixed. Whatever the input, the helper
ends with a clean protocol answer, never a signal or a sanitizer report (a
SANITIZE=1 build writes those to stderr, where the helper writes nothing)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import msgpack
import pytest

import pcapfiles as pf
from conftest import HELPER, ROOT

FUZZ = ROOT / "epcapd" / "fuzz"

# A SANITIZE=1 helper refuses an allocation above 256 MiB where a normal one
# hits RLIMIT_DATA (epcapd/sanitize.c), and ASan says so: not a bug.
ALLOCATION_REFUSED = re.compile(
    rb"==\d+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes"
)


def inputs(harness: str) -> list[Any]:
    files = sorted((FUZZ / "corpus" / harness).iterdir())
    regressions = FUZZ / "regressions" / harness
    if regressions.is_dir():
        files += sorted(regressions.iterdir())
    assert files, f"no {harness} inputs in {FUZZ}"
    return [pytest.param(f, id=f"{f.parent.name}/{f.name}") for f in files]


def frames(out: bytes) -> list[Any]:
    """Every frame on stdout; a cut-off frame fails the test."""
    result, off = [], 0
    while off < len(out):
        assert len(out) - off >= 4, "stdout ends inside a length prefix"
        (length,) = struct.unpack_from(">I", out, off)
        body = out[off + 4 : off + 4 + length]
        assert len(body) == length, "stdout ends inside a frame"
        result.append(msgpack.unpackb(body))
        off += 4 + length
    return result


def check_clean_end(proc: subprocess.CompletedProcess[bytes]) -> list[Any]:
    others = [line for line in proc.stderr.splitlines() if not ALLOCATION_REFUSED.fullmatch(line)]
    assert others == [], proc.stderr.decode(errors="replace")
    assert proc.returncode in (0, 1), f"helper died: status {proc.returncode}"
    got = frames(proc.stdout)
    assert got, "no frame at all"
    if proc.returncode == 0:
        assert got[-1][0] == "eof"
    else:
        assert got[-1][0] == "error"
    return got


@pytest.mark.parametrize("path", inputs("commands"))
def test_command_input(path: Path, tmp_path: Path) -> None:
    """The input is the helper's whole stdin, as in the harness. A file on
    stdin is read at the first poll, before the capture file is."""
    capture = tmp_path / "trace.pcap"
    records = [(pf.SAMPLE_EPOCH_NS + i, 60, pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", i, 9, b"x"))
               for i in range(3)]  # fmt: skip
    pf.write_pcap(capture, records, linktype=pf.LINKTYPE_ETHERNET)
    with path.open("rb") as stdin:
        proc = subprocess.run(
            [str(HELPER), "-r", str(capture)], stdin=stdin, capture_output=True, timeout=30
        )
    got = check_clean_end(proc)
    assert got[0][0] == "ready"
    if proc.returncode == 1:
        assert got[-1][1]["op"] == "protocol", got[-1]


@pytest.mark.parametrize("path", inputs("options"))
def test_options_input(path: Path) -> None:
    """The input is the argument vector, NUL-terminated arguments. Run as
    nobody (when the tests run as root) so that an argument vector that asks
    for a live capture is refused the packet socket instead of capturing."""
    args = path.read_bytes().split(b"\0")
    if args[-1] == b"":
        args.pop()  # the last argument's NUL, or an empty input
    proc = subprocess.run(
        [bytes(HELPER), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        user=65534 if os.geteuid() == 0 else None,
    )
    check_clean_end(proc)


@pytest.mark.root  # the helper trusts epcapd.conf only when root owns it
@pytest.mark.parametrize("path", inputs("policy"))
def test_policy_input(path: Path, tmp_path: Path) -> None:
    """The input is epcapd.conf beside a copy of the helper, which reads it
    at every start: the capture runs, or the helper refuses with op "policy"."""
    tmp_path.chmod(0o755)
    helper = tmp_path / "epcapd"
    shutil.copy(HELPER, helper)
    (tmp_path / "epcapd.conf").write_bytes(path.read_bytes())
    sample = ROOT / "client" / "epcap" / "data" / "sample.pcap"
    proc = subprocess.run(
        [str(helper), "-r", str(sample)], stdin=subprocess.DEVNULL, capture_output=True, timeout=30
    )
    got = check_clean_end(proc)
    if proc.returncode == 1:
        assert got[-1][1]["op"] == "policy", got[-1]
        assert "epcapd.conf: line " in got[-1][1]["message"]
    else:
        assert got[0][0] == "ready"
