"""The sans-I/O core: framing, message order, packet decoding, error mapping."""

from __future__ import annotations

import re
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import epcap
from epcap._errors import OPS, error_from_report
from epcap._protocol import (
    MAX_FRAME,
    VERSION,
    End,
    FrameDecoder,
    Ready,
    Session,
    State,
    Stats,
    encode,
)

from conftest import ROOT
from helpers import READY, frame

PACKETS = frame(["packets", 1, [1_000_000_005, 60, b"a" * 60, 2_999_999_999, 1514, b"b" * 100]])
EOF = frame(["eof", {"packets": 2}])


def test_a_stream_decodes_into_events_in_order() -> None:
    events = Session().receive(READY + PACKETS + EOF)
    assert isinstance(events[0], Ready) and events[0].settings["pid"] == 42
    assert events[1] == [
        epcap.Packet(1, 1_000_000_005, 60, b"a" * 60),
        epcap.Packet(1, 2_999_999_999, 1514, b"b" * 100),
    ]
    assert isinstance(events[2], End) and events[2].stats == {"packets": 2}


def test_times_past_2554_travel_as_pairs() -> None:
    wide = frame(["packets", 1, [[20_000_000_000, 5], 3, b"abc"]])
    (pkt,) = Session().receive(READY + wide)[1]  # type: ignore[misc]
    assert pkt == epcap.Packet(1, 20_000_000_000 * 10**9 + 5, 3, b"abc")
    assert type(pkt.time) is int


@pytest.mark.parametrize(
    "sec, frac", [(0, 10**9), (2**31, 2**31), (2**32 - 1, 4_294_967_295_000), (7, 2 * 10**9)]
)
def test_an_invalid_pcap_fraction_travels_as_a_pair_and_stays(sec: int, frac: int) -> None:
    """A fraction of a second or more, up to 4294967295 us, with seconds of
    32 bits: a pcap file's fields as they are, a RawTime, never carried."""
    packets = frame(["packets", 1, [[sec, frac], 3, b"abc"]])
    (pkt,) = Session().receive(READY + packets)[1]  # type: ignore[misc]
    assert type(pkt.time) is epcap.RawTime
    assert (pkt.time.seconds, pkt.time.fraction) == (sec, frac)
    assert pkt.time == sec * 10**9 + frac


def test_packet_fields() -> None:
    pkt = epcap.Packet(1, 1_262_810_118_123_456_789, 562, b"x" * 100)
    assert tuple(pkt) == (1, 1_262_810_118_123_456_789, 562, b"x" * 100)
    assert pkt.caplen == 100
    assert pkt.timestamp == pytest.approx(1262810118.123456789)
    assert pkt.datetime.isoformat() == "2010-01-06T20:35:18.123456+00:00"


@given(st.data())
def test_any_split_of_a_valid_stream_gives_the_same_events(data: st.DataObject) -> None:
    stream = READY + PACKETS + frame(["stats", {"packets": 2}]) + EOF
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    session, events = Session(), []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += session.receive(stream[a:b])
    assert session.end_of_stream() is True
    assert [type(e) for e in events] == [Ready, list, Stats, End]
    assert len(events[1]) == 2


def test_every_byte_boundary_split_of_a_frame() -> None:
    for cut in range(len(PACKETS) + 1):
        session = Session()
        session.receive(READY)
        first = session.receive(PACKETS[:cut])
        second = session.receive(PACKETS[cut:])
        assert first + second == [session_packets()]


def session_packets() -> list[epcap.Packet]:
    return Session().receive(READY + PACKETS)[1]  # type: ignore[return-value]


def violation(session: Session, data: bytes, match: str = "") -> list[Any]:
    """Feed data that breaks the protocol: the last event must be the
    ProtocolError (matching `match`), and the session over. Returns the
    events before it."""
    events = session.receive(data)
    assert isinstance(events[-1], epcap.ProtocolError), events
    assert match in str(events[-1])
    assert session.state is State.ENDED
    assert isinstance(session.receive(READY)[-1], epcap.ProtocolError)  # and it stays broken
    return events[:-1]


@pytest.mark.parametrize("length", [0, MAX_FRAME + 1, 0xFFFFFFFF])
def test_out_of_range_lengths_are_refused_before_the_body(length: int) -> None:
    values, error = FrameDecoder().feed(struct.pack(">I", length))
    assert values == [] and error is not None and "out of range" in str(error)


def test_frames_before_a_violation_are_kept() -> None:
    session = Session()
    before = violation(session, READY + PACKETS + struct.pack(">I", 0), "out of range")
    assert [type(e) for e in before] == [Ready, list]
    assert len(before[1]) == 2


def test_the_maximum_frame_is_accepted() -> None:
    data = b"z" * (MAX_FRAME - 32)
    whole = frame(["packets", 1, [0, len(data), data]])
    assert len(whole) - 4 <= MAX_FRAME  # the body, past the length prefix
    values, error = FrameDecoder().feed(whole)
    assert error is None and values[0][2][2] == data


@pytest.mark.parametrize(
    "value, match",
    [
        (["packets", 1, []], "expected 'ready'"),
        (["ready", {"version": VERSION + 1}], "protocol version"),
        (["ready", {}], "protocol version"),
        (["ready", [1, 2]], "malformed ready"),
        ("ready", "array led by a string"),
        ([], "array led by a string"),
        ([7, 1], "array led by a string"),
    ],
)
def test_bad_first_messages(value: Any, match: str) -> None:
    assert violation(Session(), frame(value), match) == []


@pytest.mark.parametrize(
    "value",
    [
        ["packets", 1, [1, 2]],
        ["packets", 1, [1, 3, "text, not bytes"]],
        ["packets", 1, [1.5, 3, b"x"]],
        ["packets", 1, ["1", 3, b"x"]],
        ["packets", 1, ["a" * 64, 3, b"x"]],
        ["packets", 1, [(1, 2, 3), 3, b"x"]],
        ["packets", 1, [(1, 4_294_967_295_001), 3, b"x"]],
        ["packets", 1, [(-1, 10**9), 3, b"x"]],
        ["packets", 1, [(2**32, 10**9), 3, b"x"]],
        ["packets", 1, [(1, -1), 3, b"x"]],
        ["packets", 1, [(1, "2"), 3, b"x"]],
        ["packets", 1, [1, "3", b"x"]],
        ["packets", 1, [b"x", 3, 1]],
        ["packets", "1", [1, 3, b"x"]],
        ["packets", 1, 5],
        ["packets", 1],
        ["packets", 1, [1, 3, b"x"], -1],
        ["packets", 1, [1, 3, b"x"], "2"],
        ["packets", 1, [1, 3, b"x"], 2.0],
        ["packets", 1, [1, 3, b"x"], True],
        ["packets", 1, [1, 3, b"x"], None],
        ["packets", 1, [1, 3, b"x"], [2]],
        ["packets", 1, [1, 3, b"x"], 2, 3],
        ["stats", 5],
        ["ready", {"version": VERSION}],
        ["bogus"],
    ],
)
def test_bad_running_messages(value: Any) -> None:
    session = Session()
    session.receive(READY)
    assert violation(session, frame(value)) == []


def test_a_4th_element_is_the_frames_pcapng_interface() -> None:
    """["packets", dlt, [...], ifid]: an int >= 0 (any width), the same for
    all the frame's packets; absent, 0."""
    kinds: list[int] = []

    def packet_type(ifid: int) -> type[epcap.Packet]:
        kinds.append(ifid)
        return epcap.Packet

    session = Session(packet_type=packet_type)
    session.receive(READY)
    for ifid in (0, 1, 7, 2**32 - 1, 2**40):
        (batch,) = session.receive(frame(["packets", 1, [1, 3, b"abc", 2, 4, b"defg"], ifid]))
        assert batch == [epcap.Packet(1, 1, 3, b"abc"), epcap.Packet(1, 2, 4, b"defg")]
    session.receive(frame(["packets", 1, [1, 3, b"abc"]]))
    assert kinds == [0, 1, 7, 2**32 - 1, 2**40, 0]


def test_nothing_may_follow_eof() -> None:
    before = violation(Session(), READY + EOF + PACKETS, "after the end")
    assert [type(e) for e in before] == [Ready, End]


def test_a_stream_that_ends_inside_a_frame_is_not_a_proper_end() -> None:
    session = Session()
    session.receive(READY + PACKETS + EOF[:-1])
    assert session.end_of_stream() is False


def test_a_stream_that_ends_before_eof_is_not_a_proper_end() -> None:
    session = Session()
    session.receive(READY)
    assert session.end_of_stream() is False


def test_malformed_msgpack_and_trailing_bytes() -> None:
    for body in (b"\xc1", b"\x92\x01", msgpack.packb(["eof", {}]) + b"\x00"):
        session = Session()
        session.receive(READY)
        assert violation(session, struct.pack(">I", len(body)) + body, "malformed") == []


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_events_or_a_protocol_error(data: bytes) -> None:
    events = Session().receive(data)
    kinds = (Ready, epcap.CaptureError, epcap.ProtocolError)
    assert all(isinstance(e, kinds) for e in events)
    assert not any(isinstance(e, epcap.ProtocolError) for e in events[:-1])


def test_error_frames_map_to_their_exceptions() -> None:
    cases = [
        ({"op": "pcap_compile", "code": "PCAP_ERROR"}, epcap.FilterError),
        ({"op": "pcap_activate", "code": "PCAP_ERROR_NO_SUCH_DEVICE"}, epcap.NoSuchDeviceError),
        ({"op": "pcap_activate", "code": "PCAP_ERROR_PERM_DENIED"}, epcap.PermissionDeniedError),
        ({"op": "open", "errno": "EACCES"}, epcap.PermissionDeniedError),
        ({"op": "open", "errno": "ENOENT"}, epcap.CaptureFileError),
        ({"op": "pcap_fopen_offline", "code": "PCAP_ERROR"}, epcap.CaptureFileError),
        ({"op": "getpwnam"}, epcap.PrivilegeDropError),
        ({"op": "chroot", "errno": "ENOENT"}, epcap.PrivilegeDropError),
        ({"op": "privilege", "errno": "EPERM"}, epcap.PermissionDeniedError),
        ({"op": "pcap_dispatch", "code": "PCAP_ERROR"}, epcap.CaptureError),
        ({"op": "policy", "errno": "EPERM"}, epcap.PolicyError),
        ({"op": "interface", "code": "PCAP_ERROR_NO_SUCH_DEVICE"}, epcap.NoSuchDeviceError),
        ({"op": "send", "errno": "EPERM"}, epcap.SendError),
        ({"op": "pcap_inject", "errno": "EMSGSIZE"}, epcap.SendError),
        ({"op": "a_new_op", "errno": "ENODEV"}, epcap.NoSuchDeviceError),
    ]
    for report, cls in cases:
        exc = error_from_report({"message": "m", **report})
        assert type(exc) is cls, (report, type(exc))
        assert exc.message == "m" and exc.op == report["op"]
    corrupt = error_from_report({"op": "pcap_dispatch", "message": "m"}, file_mode=True)
    assert type(corrupt) is epcap.CaptureFileError


def test_an_error_frame_is_an_event_carrying_the_helper_message() -> None:
    report = {"op": "pcap_compile", "code": "PCAP_ERROR", "errno": None, "message": "syntax error"}
    (event,) = Session().receive(frame(["error", report]))
    assert isinstance(event, epcap.FilterError)
    assert str(event) == "syntax error (pcap_compile, PCAP_ERROR)"


def test_encode_frames_commands_and_bounds_them() -> None:
    assert encode("stats") == b"\x00\x00\x00\x07\x91\xa5stats"
    with pytest.raises(ValueError, match="frame limit"):
        encode("send", b"x" * MAX_FRAME)


def test_exceptions_are_public_and_documented() -> None:
    for name in epcap.__all__:
        obj = getattr(epcap, name)
        assert obj.__doc__, name
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert obj.__module__ == "epcap"
            assert issubclass(obj, epcap.EpcapError)


# Where the helper names the op of an error: as a literal argument of these.
C_OPS = [
    r'\bdie\("([a-z_]+)"',
    r'\bdie_pcap\(st, "([a-z_]+)"',
    r'\brequire_pcap\(st, "([a-z_]+)"',
    r'\brequire_syscall\([^;]*, "([a-z_]+)"\);',
    r'\bframe_refused\("[a-z]+", "([a-z_]+)"',
    r'\*op = "([a-z_]+)"',
    r'\bwire_pack_error\(pk, "([a-z_]+)"',
]


def test_the_op_table_holds_every_op_the_helper_reports() -> None:
    """One table, op -> exception: the client's (OPS), PROTOCOL.md's, and
    the op strings in epcapd/*.c are the same set."""
    sources = sorted((ROOT / "epcapd").glob("*.c"))
    code = " ".join(" ".join(path.read_text().split()) for path in sources)
    in_code = {op for pattern in C_OPS for op in re.findall(pattern, code)}
    # Three places pass on an op they were given (require_syscall, die_pcap,
    # and the filter's from capture_set_filter): every other die() names its own.
    assert len(re.findall(r"\bdie\(op, ", code)) == 3
    assert in_code == set(OPS), (in_code - set(OPS), set(OPS) - in_code)
    protocol = (ROOT / "epcapd" / "PROTOCOL.md").read_text()
    section = protocol.split("### Errors: the op → exception table")[1].split("\n## ")[0]
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| `([A-Za-z]+)` \|", section, re.M))
    assert documented == {op: cls.__name__ for op, cls in OPS.items()}
