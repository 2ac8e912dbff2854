"""TCP (relative sequence numbers, options), UDP and SCTP."""

from __future__ import annotations

from ._nd import (
    LocalCut,
    Nd,
    Truncated,
    bits,
    caret,
    checksum,
    is_ip6,
    pseudo4,
    pseudo6,
    should_be,
)

# TCP -----------------------------------------------------------------------

TCP_FLAGS = (
    (0x01, "F"),
    (0x02, "S"),
    (0x04, "R"),
    (0x08, "P"),
    (0x10, "."),
    (0x20, "U"),
    (0x40, "E"),
    (0x80, "W"),
)
TCP_OPTIONS = {
    0: "eol",
    1: "nop",
    2: "mss",
    3: "wscale",
    4: "sackOK",
    5: "sack",
    6: "echo",
    7: "echoreply",
    8: "TS",
    11: "cc",
    12: "ccnew",
    13: "",
    19: "md5",
    20: "scps",
    28: "uto",
    29: "tcp-ao",
    30: "mptcp",
    34: "tfo",
    254: "exp",
}


class _BadOption(Exception):
    """tcpdump's ``goto bad`` in the TCP options."""


class _CutOption(Exception):
    """tcpdump's ``goto trunc`` in the TCP options."""


def tcp(nd: Nd, bp: int, length: int, iph: int, fragmented: bool) -> None:
    """TCP (print-tcp.c's tcp_print)."""
    nd.proto = "tcp"
    v6 = is_ip6(nd, iph)
    addr = nd.ip6 if v6 else nd.ip4
    src, dst = (iph + 8, iph + 24) if v6 else (iph + 12, iph + 16)
    if not nd.test(bp + 2, 2):
        nd.p(f"{addr(src)} > {addr(dst)}:")
        nd.trunc()
        return
    sport, dport = nd.u2(bp), nd.u2(bp + 2)
    if nd.u1(iph + 6 if v6 else iph + 9) == 6:
        nd.p(
            f"{addr(src)}.{nd.names.port(sport, 'tcp')} > "
            f"{addr(dst)}.{nd.names.port(dport, 'tcp')}: "
        )
    else:
        nd.p(f"{nd.names.port(sport, 'tcp')} > {nd.names.port(dport, 'tcp')}: ")
    if not nd.test(bp, 20):
        nd.trunc()
        return
    hlen = (nd.u1(bp + 12) >> 4) * 4
    if hlen < 20:
        nd.p(f" tcp {(length - hlen) & 0xFFFFFFFF} [bad hdr length {hlen} - too short, < 20]")
        return
    seq, ack, win, urp = nd.u4(bp + 4), nd.u4(bp + 8), nd.u2(bp + 14), nd.u2(bp + 18)
    if nd.o.quick:
        nd.p(f"tcp {(length - hlen) & 0xFFFFFFFF}")
        if hlen > length:
            nd.p(f" [bad hdr length {hlen} - too long, > {length}]")
        return
    flags = nd.u1(bp + 13)
    nd.p(f"Flags [{bits(TCP_FLAGS, flags, sep='')}]")
    rev, thseq, thack = False, 0, 0
    if not nd.o.absolute and flags & 0x10:
        seq, ack, rev, thseq, thack = nd.printer._relative(
            nd.raw(src, 16 if v6 else 4),
            nd.raw(dst, 16 if v6 else 4),
            sport,
            dport,
            seq,
            ack,
            bool(flags & 0x02),
        )
    if hlen > length:
        nd.p(f" [bad hdr length {hlen} - too long, > {length}]")
        return
    if nd.o.verbose and nd.o.checksums and not fragmented and nd.test(bp, length):
        pseudo = pseudo6(nd, iph, 6, length) if v6 else pseudo4(nd, iph, 6, length)
        computed = checksum(pseudo, nd.data[bp : bp + length])
        field = nd.u2(bp + 16)
        nd.p(f", cksum 0x{field:04x}")
        nd.p(f" (incorrect -> 0x{should_be(field, computed):04x})" if computed else " (correct)")
    length -= hlen
    if nd.o.verbose > 1 or length > 0 or flags & 0x07:
        nd.p(f", seq {seq}")
        if length > 0:
            nd.p(f":{(seq + length) & 0xFFFFFFFF}")
    if flags & 0x10:
        nd.p(f", ack {ack}")
    nd.p(f", win {win}")
    if flags & 0x20:
        nd.p(f", urg {urp}")
    if hlen > 20:
        nd.p(", options [")
        try:
            _tcp_options(nd, bp + 20, hlen - 20, rev, thseq, thack, bp + hlen + length)
        except _BadOption as bad:
            nd.p("[bad opt]")
            if bad.args[0]:
                nd.p("]")
            return
        except _CutOption as cut:
            nd.trunc()
            if cut.args[0]:
                nd.p(">")
            return
        nd.p("]")
    nd.p(f", length {length}")
    if length == 0:
        return
    header_len = (nd.u1(bp + 12) >> 4) * 4
    if not nd.test(bp, header_len):
        nd.p(f" [remaining caplen({nd.avail(bp)}) < header length({header_len})]")
        raise Truncated
    if flags & 0x04 and nd.o.verbose:
        _tcp_reset_data(nd, bp + header_len, length)


def _fast_open(nd: Nd, cp: int, datalen: int, label: str = "") -> str:
    """A TCP Fast Open option's cookie, or its request."""
    if datalen == 0:
        return label + " cookiereq"
    if datalen % 2 or not 4 <= datalen <= 16:
        return label + " (invalid)"
    return f"{label} cookie {nd.raw(cp, datalen).hex()}"


def _tcp_options(
    nd: Nd, cp: int, hlen: int, rev: bool, thseq: int, thack: int, payload_end: int
) -> None:
    """The options of a TCP header (``payload_end``: where its segment ends,
    for tcpdump's MD5 verdict)."""
    sep = False

    def lencheck(n: int) -> None:
        if n > hlen:
            raise _BadOption(sep)
        if not nd.test(cp, n):
            raise _CutOption(sep)

    while hlen > 0:
        if sep:
            nd.p(",")
        opt = nd.u1(cp)
        cp += 1
        if opt in (0, 1):
            length = 1
        else:
            length = nd.u1(cp)
            cp += 1
            if length < 2 or length > hlen:
                raise _BadOption(sep)
            hlen -= 1
        hlen -= 1
        datalen = 0
        nd.p(TCP_OPTIONS.get(opt, f"unknown-{opt}"))
        if opt == 2:
            datalen = 2
            lencheck(2)
            nd.p(f" {nd.u2(cp)}")
        elif opt == 3:
            datalen = 1
            lencheck(1)
            nd.p(f" {nd.u1(cp)}")
        elif opt == 5:
            datalen = length - 2
            if datalen % 8:
                nd.p(" invalid sack")
            else:
                nd.p(f" {datalen // 8} ")
                for i in range(0, datalen, 8):
                    lencheck(i + 4)
                    s = nd.u4(cp + i)
                    lencheck(i + 8)
                    e = nd.u4(cp + i + 4)
                    base = thseq if rev else thack
                    nd.p(f"{{{(s - base) & 0xFFFFFFFF}:{(e - base) & 0xFFFFFFFF}}}")
        elif opt in (6, 7, 11, 12, 13):
            datalen = 4
            lencheck(4)
            nd.p(f" {nd.u4(cp)}")
        elif opt == 8:
            datalen = 8
            lencheck(8)
            nd.p(f" val {nd.u4(cp)} ecr {nd.u4(cp + 4)}")
        elif opt == 19:
            datalen = 16
            lencheck(16)
            nd.p(
                " "
                + (
                    "snaplen too short, "
                    if payload_end > nd.end
                    else "shared secret not supplied with -M, "
                )
            )
            nd.p("can't check - " + nd.raw(cp, 16).hex())
        elif opt == 20:
            datalen = 2
            lencheck(2)
            nd.p(f" cap {nd.u1(cp):02x} id {nd.u1(cp + 1)}")
        elif opt == 29:
            datalen = length - 2
            if datalen < 2:
                nd.invalid()
            else:
                lencheck(1)
                nd.p(f" keyid {nd.u1(cp)}")
                lencheck(2)
                nd.p(f" rnextkeyid {nd.u1(cp + 1)}")
                if datalen > 2:
                    nd.p(" mac 0x")
                    for i in range(2, datalen):
                        lencheck(i + 1)
                        nd.p(f"{nd.u1(cp + i):02x}")
        elif opt in (0, 1, 4):
            pass
        elif opt == 28:
            datalen = 2
            lencheck(2)
            value = nd.u2(cp)
            nd.p(f" 0x{value:x}")
            nd.p(f" {(value >> 1) * 60 if value & 1 else value >> 1}")
        elif opt == 34:
            datalen = length - 2
            lencheck(datalen)
            nd.p(" " + _fast_open(nd, cp, datalen))
        elif opt == 254:
            datalen = length - 2
            lencheck(datalen)
            if datalen < 2:
                raise _BadOption(sep)
            magic = nd.u2(cp)
            nd.p(
                "-"
                + (
                    _fast_open(nd, cp + 2, datalen - 2, "tfo")
                    if magic == 0xF989
                    else f"{magic:04x}"
                )
            )
        elif opt == 30:  # MPTCP: tcpdump's own printer; its data, unparsed, here
            datalen = length - 2
            lencheck(datalen)
            if datalen:
                nd.p(" 0x" + nd.raw(cp, datalen).hex())
        else:
            datalen = length - 2
            if datalen:
                nd.p(" 0x")
            for i in range(datalen):
                lencheck(i + 1)
                nd.p(f"{nd.u1(cp + i):02x}")
        cp += datalen
        hlen -= datalen
        datalen += 1 if opt in (0, 1) else 2
        if datalen != length:
            nd.p(f"[len {length}]")
        sep = True
        if opt == 0:
            break


def _tcp_reset_data(nd: Nd, sp: int, length: int) -> None:
    nd.p(" [RST" if nd.test(sp, length) else " [!RST")
    if length > 30:
        length = 30
        nd.p("+")
    nd.p(" ")
    out = []
    while length and sp < nd.end:
        out.append(caret(nd.u1(sp)))
        sp, length = sp + 1, length - 1
    nd.p("".join(out) + "]")


# UDP -----------------------------------------------------------------------


def _udp_addresses(nd: Nd, iph: int, sport: int, dport: int) -> None:
    v6 = is_ip6(nd, iph)
    addr = nd.ip6 if v6 else nd.ip4
    src, dst = (iph + 8, iph + 24) if v6 else (iph + 12, iph + 16)
    if nd.u1(iph + 6 if v6 else iph + 9) == 17:
        if sport < 0:
            nd.p(f"{addr(src)} > {addr(dst)}: ")
        else:
            nd.p(
                f"{addr(src)}.{nd.names.port(sport, 'udp')} > "
                f"{addr(dst)}.{nd.names.port(dport, 'udp')}: "
            )
    elif sport >= 0:
        nd.p(f"{nd.names.port(sport, 'udp')} > {nd.names.port(dport, 'udp')}: ")


def udp(nd: Nd, bp: int, length: int, iph: int, fragmented: bool) -> None:
    """UDP (print-udp.c's udp_print), up to its payload."""
    nd.proto = "udp"
    if not nd.test(bp + 2, 2):
        _udp_addresses(nd, iph, -1, -1)
        nd.trunc()
        return
    sport, dport = nd.u2(bp), nd.u2(bp + 2)
    if length < 8:
        _udp_addresses(nd, iph, sport, dport)
        nd.p(f"truncated-udp {length}")
        return
    if not nd.test(bp + 4, 2):
        _udp_addresses(nd, iph, sport, dport)
        nd.trunc()
        return
    ulen = nd.u2(bp + 4)
    if ulen == 0 and length > 65535:
        ulen = length
    if ulen < 8:
        _udp_addresses(nd, iph, sport, dport)
        nd.p(f"truncated-udplength {ulen}")
        return
    ulen, length = ulen - 8, length - 8
    length = min(length, ulen)
    cp = bp + 8
    if cp > nd.end:
        _udp_addresses(nd, iph, sport, dport)
        nd.trunc()
        return
    _udp_addresses(nd, iph, sport, dport)
    if nd.o.verbose and nd.o.checksums and not fragmented:
        v6 = is_ip6(nd, iph)
        field = nd.u2(bp + 6)
        if not v6 and nd.o.verbose > 1:
            if field == 0:
                nd.p("[no cksum] ")
            elif nd.test(cp, length):
                computed = checksum(pseudo4(nd, iph, 17, length + 8), nd.data[bp : cp + length])
                _udp_sum(nd, field, computed)
        elif v6 and nd.test(cp, length):
            computed = checksum(pseudo6(nd, iph, 17, length + 8), nd.data[bp : cp + length])
            _udp_sum(nd, field, computed)
    if ulen > length and not fragmented:
        nd.p(f"UDP, bad length {ulen} > {length}")
    else:
        nd.p(f"UDP, length {ulen}")


def _udp_sum(nd: Nd, field: int, computed: int) -> None:
    if computed:
        nd.p(f"[bad udp cksum 0x{field:04x} -> 0x{should_be(field, computed):04x}!] ")
    else:
        nd.p("[udp sum ok] ")


# SCTP ----------------------------------------------------------------------

SCTP_CHUNKS = {
    0x00: "DATA",
    0x01: "INIT",
    0x02: "INIT ACK",
    0x03: "SACK",
    0x04: "HB REQ",
    0x05: "HB ACK",
    0x06: "ABORT",
    0x07: "SHUTDOWN",
    0x08: "SHUTDOWN ACK",
    0x09: "OP ERR",
    0x0A: "COOKIE ECHO",
    0x0B: "COOKIE ACK",
    0x0C: "ECN ECHO",
    0x0D: "ECN CWR",
    0x0E: "SHUTDOWN COMPLETE",
    0xC0: "FOR CUM TSN",
    0xC1: "REL CTRL",
    0xC2: "REL CTRL ACK",
}
SCTP_PPIDS = {
    1: "ISDN Q.921",
    2: "M2UA",
    3: "M3UA",
    4: "SUA",
    5: "M2PA",
    6: "V5.2",
    7: "H.248",
    8: "BICC",
    9: "TALI",
    10: "DUA",
    11: "ASAP",
    12: "ENRP",
    13: "H.323",
    14: "Q.IPC",
    15: "SIMCO",
    16: "DDPSC",
    17: "DDPSSC",
    18: "S1AP",
    19: "RUA",
    20: "HNBAP",
    21: "ForCES HP",
    22: "ForCES MP",
    23: "ForCES LP",
    24: "SBc-AP",
    25: "NBAP",
    27: "X2AP",
}
"""SCTP payload protocol identifiers tcpdump names (print-sctp.c)."""
FORCES_PORTS = {6704: "ForCES HP", 6705: "ForCES MP", 6706: "ForCES LP"}


def sctp(nd: Nd, bp: int, length: int, iph: int) -> None:
    """SCTP and its chunks (print-sctp.c's sctp_print); a ForCES payload is
    not taken apart here, nor M3UA's under -vv."""
    nd.proto = "sctp"
    if length < 12:
        nd.p(f"truncated-sctp - {12 - length} bytes missing!")
        return
    if not nd.test(bp, 12):
        nd.trunc()
        return
    sport, dport = nd.u2(bp), nd.u2(bp + 2)
    v6 = is_ip6(nd, iph)
    addr, src, dst = (nd.ip6, iph + 8, iph + 24) if v6 else (nd.ip4, iph + 12, iph + 16)
    nd.p(f"{addr(src)}.{sport} > {addr(dst)}.{dport}: sctp")
    forces = False
    for port in (sport, dport):
        if port in FORCES_PORTS:
            nd.p(f"[{FORCES_PORTS[port]}]")
            forces = True
    bp, left = bp + 12, length - 12
    sep = "\n\t" if nd.o.verbose >= 2 else " ("
    count = 0
    try:
        while left:
            count += 1
            if left < 4:
                nd.p(f"{sep}{count}) [chunk descriptor cut off at end of packet]")
                return
            if not nd.test(bp, 4):
                raise LocalCut
            chunk_len = nd.u2(bp + 2)
            if chunk_len < 4:
                nd.p(f"{sep}{count}) [Bad chunk length {chunk_len}, < size of chunk descriptor]")
                return
            align = -chunk_len % 4
            if left < align:
                nd.p(f"{sep}{count}) [Bad chunk length {chunk_len}, > remaining data in packet]")
                return
            if not nd.test(bp, chunk_len):
                raise LocalCut
            kind, flags = nd.u1(bp), nd.u1(bp + 1)
            bp, left, rest = bp + 4, (left - 4) & 0xFFFFFFFF, chunk_len - 4
            nd.p(f"{sep}{count}) [{SCTP_CHUNKS.get(kind, f'Unknown chunk type: 0x{kind:x}')}] ")
            if kind == 0:
                done = _sctp_data(nd, bp, rest, chunk_len, flags, forces)
            elif kind in (1, 2):
                done = _sctp_init(nd, bp, rest, chunk_len)
            elif kind == 3:
                done = _sctp_sack(nd, bp, rest, chunk_len)
            else:
                done = rest
            if done < 0:
                return
            bp, left, rest = bp + done, (left - done) & 0xFFFFFFFF, (rest - done) & 0xFFFF
            bp, left = bp + rest, (left - rest) & 0xFFFFFFFF  # what the chunk holds beyond
            if nd.o.verbose < 2:
                sep = ", ("
            if align:
                if not nd.test(bp, align):
                    raise LocalCut
                bp, left = bp + align, (left - align) & 0xFFFFFFFF
    except LocalCut:
        nd.trunc()


def _sctp_data(nd: Nd, bp: int, rest: int, chunk_len: int, flags: int, forces: bool) -> int:
    """A DATA chunk's header (and payload under -vv): the bytes taken, or
    -1 when tcpdump stops printing the packet."""
    marks = "".join(mark for bit, mark in ((4, "(U)"), (2, "(B)"), (1, "(E)")) if flags & bit)
    nd.p(marks + (" " if marks else ""))
    if rest < 12:
        nd.p(f"bogus chunk length {chunk_len}]")
        return -1
    ppid = nd.u4(bp + 8)
    nd.p(f"[TSN: {nd.u4(bp)}] [SID: {nd.u2(bp + 4)}] [SSEQ {nd.u2(bp + 6)}] ")
    nd.p(f"[PPID {SCTP_PPIDS.get(ppid, f'0x{ppid:x}')}] ")
    size = rest - 12
    if size == 0:
        nd.p(f"bogus chunk length {chunk_len}]")
        return -1
    if not forces and ppid not in (21, 22, 23) and nd.o.verbose >= 2 and ppid != 3:
        nd.p("[Payload")
        if not nd.suppress_default:
            nd.p(":")
            nd.default(bp + 12, size)
        nd.p("]")
    return rest


def _sctp_init(nd: Nd, bp: int, rest: int, chunk_len: int) -> int:
    if rest < 16:
        nd.p(f"bogus chunk length {chunk_len}]")
        return -1
    nd.p(f"[init tag: {nd.u4(bp)}] [rwnd: {nd.u4(bp + 4)}] [OS: {nd.u2(bp + 8)}] "
         f"[MIS: {nd.u2(bp + 10)}] [init TSN: {nd.u4(bp + 12)}] ")  # fmt: skip
    return rest  # parameters are not printed


def _sctp_sack(nd: Nd, bp: int, rest: int, chunk_len: int) -> int:
    if rest < 12:
        nd.p(f"bogus chunk length {chunk_len}]")
        return -1
    cum = nd.u4(bp)
    nd.p(f"[cum ack {cum}] [a_rwnd {nd.u4(bp + 4)}] [#gap acks {nd.u2(bp + 8)}] "
         f"[#dup tsns {nd.u2(bp + 10)}] ")  # fmt: skip
    at, rest = 12, rest - 12
    gap = 0
    while rest and gap < nd.u2(bp + 8):
        if rest < 4:
            nd.p(f"bogus chunk length {chunk_len}]")
            return -1
        start, end = nd.u2(bp + at), nd.u2(bp + at + 2)
        nd.p(f"\n\t\t[gap ack block #{gap + 1}: start = {(cum + start) & 0xFFFFFFFF}, "
             f"end = {(cum + end) & 0xFFFFFFFF}] ")  # fmt: skip
        at, rest, gap = at + 4, rest - 4, gap + 1
    dup = 0
    while rest and dup < nd.u2(bp + 10):
        if rest < 4:
            nd.p(f"bogus chunk length {chunk_len}]")
            return -1
        nd.p(f"\n\t\t[dup TSN #{dup + 1}: {nd.u4(bp + at)}] ")
        at, rest, dup = at + 4, rest - 4, dup + 1
    return at
