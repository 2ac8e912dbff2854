"""Hypothesis strategies shared by the tests of the decoder and the
printer: structured frames of every link type, with random headers,
lengths and truncation."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

MAC_SRC = bytes.fromhex("0016b6a1b2c3")
MAC_DST = bytes.fromhex("0015af010203")
noise = st.binary(max_size=64)


@st.composite
def transport(draw: st.DrawFn) -> tuple[int, bytes]:
    proto = draw(st.sampled_from([6, 17, 1, 58, 132, 47, 255]))
    if proto == 6:
        off = draw(st.integers(0, 15))
        head = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, off << 4, draw(st.integers(0, 255)), 5, 0, 0)
        return proto, head + draw(noise)
    if proto == 132:
        chunks = b"".join(
            struct.pack("!BBH", t, 0, n) + draw(st.binary(max_size=12))
            for t, n in draw(
                st.lists(st.tuples(st.integers(0, 15), st.integers(0, 40)), max_size=6)
            )
        )
        return proto, struct.pack("!HHII", 1, 2, 3, 0) + chunks
    return proto, struct.pack("!BBH", draw(st.integers(0, 255)), 0, 0) + draw(noise)


@st.composite
def network(draw: st.DrawFn) -> tuple[int, bytes]:
    kind = draw(st.sampled_from(["ipv4", "ipv6", "arp", "other"]))
    if kind == "ipv4":
        proto, seg = draw(transport())
        ihl = draw(st.integers(0, 15))
        total = draw(st.sampled_from([0, 20 + len(seg), draw(st.integers(0, 0xFFFF))]))
        frag = draw(st.sampled_from([0, 0x2000, 0x0010]))
        head = struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0, b"\1" * 4, b"\2" * 4
        )
        return 0x0800, head + b"\0" * max(0, ihl * 4 - 20) + seg
    if kind == "ipv6":
        proto, seg = draw(transport())
        exts = draw(st.lists(st.sampled_from([0, 43, 44, 60, 51]), max_size=20))
        body, nxt = seg, proto
        for ext in reversed(exts):
            size = draw(st.integers(0, 3))
            if ext == 44:
                hdr = struct.pack("!BBHI", nxt, 0, draw(st.integers(0, 0xFFFF)), 9)
            elif ext == 51:
                hdr = struct.pack("!BB", nxt, size) + b"\0" * ((size + 2) * 4 - 2)
            else:
                hdr = struct.pack("!BB", nxt, size) + b"\1\0" + b"\0" * (size * 8 + 4)
            body, nxt = hdr + body, ext
        plen = draw(st.sampled_from([0, len(body), draw(st.integers(0, 0xFFFF))]))
        return 0x86DD, struct.pack(
            "!IHBB16s16s", 0x60000000, plen, nxt, 64, b"\1" * 16, b"\2" * 16
        ) + body
    if kind == "arp":
        return 0x0806, struct.pack("!HHBB", 1, 0x800, draw(st.integers(0, 8)), 4) + draw(noise)
    return draw(st.integers(0, 0xFFFF)), draw(noise)


@st.composite
def frames(draw: st.DrawFn) -> tuple[int, bytes]:
    ethertype, body = draw(network())
    tags = draw(st.lists(st.sampled_from([0x8100, 0x88A8, 0x9100]), max_size=10))
    link = draw(st.sampled_from([1, 113, 276, 0, 108, 9, 12, 228, 229]))
    tagged = b""
    for tpid in tags:
        tagged += struct.pack("!HH", tpid, draw(st.integers(0, 0xFFFF)))
    if link == 1:
        frame = MAC_DST + MAC_SRC + tagged + struct.pack("!H", ethertype) + body
    elif link == 113:
        frame = struct.pack("!HHH8sH", 0, 1, 6, MAC_SRC + b"\0\0", ethertype) + body
    elif link == 276:
        frame = struct.pack("!HHiHBB8s", ethertype, 0, 1, 1, 0, 6, MAC_SRC + b"\0\0") + body
    elif link in (0, 108):
        frame = struct.pack(">I", draw(st.sampled_from([2, 24, 30, 0x02000000]))) + body
    elif link == 9:
        frame = b"\xff\x03" + struct.pack("!H", draw(st.sampled_from([0x21, 0x57]))) + body
    else:
        frame = body
    cut = draw(st.integers(0, len(frame)))
    return link, frame[: len(frame) - cut] if draw(st.booleans()) else frame
