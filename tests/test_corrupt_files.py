"""File mode over damaged captures: truncated at many points, bits flipped
in file and record headers, absurd caplen and snaplen values, pcapng blocks
unknown or mis-sized.  For each variant the helper delivers exactly the
packets libpcap itself reads before the damage (a pcap file's times as its
own unsigned fields say, a fraction of a second or more as a RawTime:
pcapfiles.libpcap_read), then a CaptureError or a clean end, as libpcap
does; it never crashes (run `make SANITIZE=1 test` to hold it to that under
AddressSanitizer) and never hangs."""

from __future__ import annotations

import contextlib
import random
import signal
import struct
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

import epcap

import pcapfiles as pf
from conftest import start_file

HANG_SECONDS = 10
PCAPNG_MAGIC = struct.pack("<I", pf.PCAPNG_SHB)


def own_files() -> dict[str, bytes]:
    """Fixtures the tests make themselves: pcap of both precisions and byte
    orders, and pcapng with an unknown block and a comment."""
    records = pf.sample_records()
    return {
        "micro-le.pcap": pf.pcap_bytes(records, linktype=pf.LINKTYPE_ETHERNET),
        "nano-be.pcap": pf.pcap_bytes(
            records, linktype=pf.LINKTYPE_ETHERNET, nano=True, big_endian=True
        ),
        "ng.pcapng": pf.pcapng_bytes(
            records, linktype=pf.LINKTYPE_ETHERNET, unknown_block=True, comment="epcap"
        ),
        "ng-be.pcapng": pf.pcapng_bytes(records, linktype=pf.LINKTYPE_ETHERNET, big_endian=True),
    }


def _flip(raw: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(raw)
    out[pos] ^= 1 << bit
    return bytes(out)


def _put32(raw: bytes, pos: int, value: int, order: str) -> bytes:
    if pos + 4 > len(raw):
        return raw
    return raw[:pos] + struct.pack(f"{order}I", value) + raw[pos + 4 :]


def variants(name: str, raw: bytes) -> Iterator[tuple[str, bytes]]:
    """Damaged copies of one capture file, the same for every run."""
    rng = random.Random(f"epcap:{name}")
    for cut in sorted({rng.randrange(1, len(raw)) for _ in range(6)} | {len(raw) - 1}):
        yield f"truncated-at-{cut}", raw[:cut]
    head = 24 if not raw.startswith(PCAPNG_MAGIC) else min(len(raw), 64)
    for _ in range(4):
        pos, bit = rng.randrange(head), rng.randrange(8)
        yield f"file-header-bit-{pos}.{bit}", _flip(raw, pos, bit)
    for _ in range(4):
        pos, bit = rng.randrange(head, max(head + 1, min(len(raw), head + 48))), rng.randrange(8)
        if pos < len(raw):
            yield f"record-header-bit-{pos}.{bit}", _flip(raw, pos, bit)
    if raw.startswith(PCAPNG_MAGIC):
        yield from _pcapng_variants(raw)
    else:
        yield from _pcap_variants(raw)


def _pcap_variants(raw: bytes) -> Iterator[tuple[str, bytes]]:
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    for snaplen in (0, 1, 0xFFFFFFFF):
        yield f"snaplen-{snaplen}", _put32(raw, 16, snaplen, order)
    for caplen in (0, 262145, 0x7FFFFFFF, 0xFFFFFFFF):
        yield f"first-caplen-{caplen}", _put32(raw, 24 + 8, caplen, order)
    yield "wire-length-below-caplen", _put32(raw, 24 + 12, 1, order)
    yield "linktype-65535", _put32(raw, 20, 65535, order)
    second = 24 + 16 + struct.unpack_from(f"{order}I", raw, 24 + 8)[0]
    yield "second-caplen-huge", _put32(raw, second + 8, 0xFFFFFF00, order)


def _pcapng_variants(raw: bytes) -> Iterator[tuple[str, bytes]]:
    order = "<" if raw[8:12] == struct.pack("<I", pf.PCAPNG_BYTE_ORDER_MAGIC) else ">"
    shb_len = struct.unpack_from(f"{order}I", raw, 4)[0]
    idb = shb_len
    idb_len = struct.unpack_from(f"{order}I", raw, idb + 4)[0] if idb + 8 <= len(raw) else 0
    first = idb + idb_len
    unknown = struct.pack(f"{order}II", 0x0BAD0BAD, 16) + b"abcd" + struct.pack(f"{order}I", 16)
    yield "unknown-block-after-idb", raw[:first] + unknown + raw[first:]
    for length in (0, 13, 0xFFFFFFF0):
        yield f"block-length-{length}", _put32(raw, first + 4, length, order)
    yield "trailer-mismatch", _put32(raw, idb + idb_len - 4, idb_len + 4, order)
    yield "idb-snaplen-huge", _put32(raw, idb + 12, 0xFFFFFFFF, order)
    yield "epb-caplen-huge", _put32(raw, first + 20, 0x7FFFFFFF, order)
    yield "epb-unknown-interface", _put32(raw, first + 8, 7, order)
    yield "shb-major-version-9", raw[:12] + struct.pack(f"{order}H", 9) + raw[14:]


@contextlib.contextmanager
def hang_guard(what: str) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"{what}: no end within {HANG_SECONDS} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_variant(path: Path, what: str) -> str:
    """Run the helper over one file and hold it to libpcap; return how it ended."""
    try:
        _, records = pf.libpcap_read(path)
        libpcap_error = None
    except pf.LibpcapError as exc:
        records, libpcap_error = exc.records, str(exc)
    expected = [(pf.time_key(t), length, data) for t, length, data in records]
    got: list[tuple[tuple[int, ...], int, bytes]] = []
    ended = "eof"
    with hang_guard(what):
        try:
            with start_file(path) as cap:
                for pkt in cap:
                    got.append((pf.time_key(pkt.time), pkt.length, pkt.data))
        except epcap.CaptureError as exc:  # HelperExitedError (a crash) is not one
            ended = f"error: {exc.message}"
    assert got == expected, what
    if libpcap_error is None:
        assert ended == "eof", f"{what}: libpcap reads it all, the helper ended with {ended}"
    else:
        assert ended != "eof", f"{what}: libpcap failed ({libpcap_error}), the helper did not"
    return ended


def run_all(files: dict[str, bytes], tmp_path: Path) -> dict[str, int]:
    tally = {"variants": 0, "eof": 0, "error": 0}
    for name, raw in files.items():
        for label, damaged in variants(name, raw):
            path = tmp_path / "damaged"
            path.write_bytes(damaged)
            ended = check_variant(path, f"{name} {label}")
            tally["variants"] += 1
            tally["eof" if ended == "eof" else "error"] += 1
    return tally


@pytest.mark.usefixtures("no_leftovers")
def test_damaged_own_captures(tmp_path: Path) -> None:
    tally = run_all(own_files(), tmp_path)
    assert tally["variants"] >= 90
    assert tally["error"] > 0 and tally["eof"] > 0  # both endings are exercised


@pytest.mark.captures
@pytest.mark.usefixtures("no_leftovers")
def test_damaged_shared_captures(captures: list[Path], tmp_path: Path) -> None:
    tally = run_all({p.name: p.read_bytes() for p in captures}, tmp_path)
    assert tally["variants"] >= 20 * len(captures)
    assert tally["error"] > 0 and tally["eof"] > 0
