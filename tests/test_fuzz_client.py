"""Property tests of the client's frame decoder and session, as a fuzzer
would drive them: arbitrary bytes, truncated streams, out-of-range lengths,
frames whose msgpack values have the wrong types, and valid streams split
anywhere.  The client yields exactly the packets or raises its ProtocolError;
it never raises anything else, never holds more than one frame, never hangs."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import epcap
from epcap._protocol import (
    MAX_FRAME,
    End,
    Event,
    Ready,
    Refused,
    Reply,
    Session,
    Stats,
)

from helpers import READY, frame

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED = (Ready, list, Stats, Reply, Refused, End, epcap.EpcapError)


def feed(session: Session, stream: bytes, cuts: list[int]) -> list[Event]:
    """Feed `stream` in pieces split at `cuts`, checking the buffer bound."""
    events: list[Event] = []
    bounds = sorted({min(c, len(stream)) for c in cuts})
    for a, b in zip([0, *bounds], [*bounds, len(stream)], strict=True):
        events += session.receive(stream[a:b])
        assert session._decoder.buffered <= MAX_FRAME + 4  # one frame, at most
        if events and isinstance(events[-1], epcap.ProtocolError):
            break  # the shell stops reading: the session stays broken
    return events


def well_formed(events: list[Event]) -> None:
    """Only known events; a ProtocolError only as the very last one."""
    assert all(isinstance(e, ALLOWED) for e in events), events
    assert not any(isinstance(e, epcap.ProtocolError) for e in events[:-1])


packets = st.lists(
    st.tuples(
        st.integers(0, 2**64 - 1) | st.tuples(st.integers(2**35, 2**40), st.integers(0, 10**9 - 1))
        | st.tuples(st.integers(0, 2**32 - 1), st.integers(10**9, 4_294_967_295_000)),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=300),
    ),
    max_size=20,
)  # fmt: skip
cut_points = st.lists(st.integers(0, 20_000), max_size=10)


def packets_frame(dlt: int, pkts: list[tuple[Any, int, bytes]]) -> bytes:
    flat: list[Any] = []
    for t, length, data in pkts:
        flat += [list(t) if isinstance(t, tuple) else t, length, data]
    return frame(["packets", dlt, flat])


def expected(dlt: int, pkts: list[tuple[Any, int, bytes]]) -> list[epcap.Packet]:
    out = []
    for t, length, data in pkts:
        if isinstance(t, tuple):  # a pcap file's invalid fraction is a RawTime
            ns = t[0] * 10**9 + t[1] if t[1] < 10**9 else epcap.RawTime(*t)
        else:
            ns = t
        out.append(epcap.Packet(dlt, ns, length, data))
    return out


@FUZZ
@given(dlt=st.integers(0, 300), batches=st.lists(packets, max_size=5), cuts=cut_points)
def test_valid_streams_split_anywhere_give_exactly_the_packets(
    dlt: int, batches: list[list[tuple[Any, int, bytes]]], cuts: list[int]
) -> None:
    stream = READY + b"".join(packets_frame(dlt, b) for b in batches)
    stream += frame(["stats", {"packets": 1}]) + frame(["eof", {"packets": 1}])
    session = Session()
    events = feed(session, stream, cuts)
    well_formed(events)
    got = [p for e in events if isinstance(e, list) for p in e]
    want = [p for b in batches for p in expected(dlt, b)]
    assert got == want
    assert [repr(p.time) for p in got] == [repr(p.time) for p in want]  # RawTime's fields too
    assert isinstance(events[-1], End) and session.end_of_stream()


@FUZZ
@given(batches=st.lists(packets, min_size=1, max_size=4), data=st.data())
def test_a_truncated_stream_gives_the_whole_frames_before_the_cut(
    batches: list[list[tuple[Any, int, bytes]]], data: st.DataObject
) -> None:
    frames = [READY] + [packets_frame(1, b) for b in batches]
    stream = b"".join(frames)
    cut = data.draw(st.integers(0, len(stream) - 1))
    session = Session()
    events = feed(session, stream[:cut], data.draw(cut_points))
    well_formed(events)
    assert not any(isinstance(e, epcap.ProtocolError) for e in events)
    complete, size = 0, 0
    for f in frames:
        if size + len(f) > cut:
            break
        size, complete = size + len(f), complete + 1
    assert len(events) == complete
    assert not session.end_of_stream()  # a stream cut short is never a proper end


@FUZZ
@given(
    length=st.one_of(st.just(0), st.integers(MAX_FRAME + 1, 2**32 - 1)),
    junk=st.binary(max_size=64),
)
def test_out_of_range_lengths_fail_without_waiting_for_the_body(length: int, junk: bytes) -> None:
    session = Session()
    events = session.receive(READY + struct.pack(">I", length) + junk)
    assert isinstance(events[0], Ready)
    assert isinstance(events[-1], epcap.ProtocolError) and "out of range" in str(events[-1])
    assert session._decoder.buffered == 0
    assert isinstance(session.receive(b"more")[-1], epcap.ProtocolError)  # and it stays broken


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-(2**63), 2**64 - 1), children, max_size=5),
    max_leaves=20,
)  # fmt: skip
TAGS = ["ready", "packets", "stats", "eof", "error", "reply", "refused", "nosuch"]


@FUZZ
@given(
    first=st.sampled_from(TAGS),
    first_args=st.lists(msgpack_values, max_size=4),
    tag=st.sampled_from(TAGS),
    args=st.lists(msgpack_values, max_size=4),
)
def test_wrong_msgpack_types_are_protocol_errors_and_nothing_else(
    first: str, first_args: list[Any], tag: str, args: list[Any]
) -> None:
    # A frame of any shape in SETUP, and after a good ready in RUNNING.
    for stream in (frame([first, *first_args]), READY + frame([tag, *args])):
        for file_mode in (False, True):
            events = Session(file_mode=file_mode).receive(stream)
            well_formed(events)
            for e in events:
                if isinstance(e, list):  # a packets frame that happened to be valid
                    assert all(
                        isinstance(p, epcap.Packet) and type(p.time) in (int, epcap.RawTime)
                        for p in e
                    )


@FUZZ
@given(
    report=st.dictionaries(st.sampled_from(["op", "code", "errno", "message", "x"]), msgpack_values)
)
def test_any_error_report_maps_to_an_epcap_error(report: dict[str, Any]) -> None:
    for state in (frame(["error", report]), READY + frame(["error", report])):
        events = Session().receive(state)
        assert isinstance(events[-1], epcap.EpcapError)
        str(events[-1])
    refused = Session().receive(READY + frame(["refused", "filter", report]))
    well_formed(refused)


@FUZZ
@given(data=st.binary(max_size=4096), cuts=cut_points, valid_start=st.booleans())
def test_arbitrary_bytes_in_any_pieces(data: bytes, cuts: list[int], valid_start: bool) -> None:
    stream = (READY if valid_start else b"") + data
    whole = Session().receive(stream)
    pieces = feed(Session(), stream, cuts)
    well_formed(whole)
    well_formed(pieces)
    # Splitting never changes what is decoded (errors compare by message).
    assert [repr(e) if isinstance(e, Exception) else e for e in whole] == [
        repr(e) if isinstance(e, Exception) else e for e in pieces
    ]


def test_the_buffer_holds_at_most_one_frame() -> None:
    session = Session()
    session.receive(READY)
    stream = frame(["packets", 1, [0, 1, b"z" * (MAX_FRAME - 64)]])
    for i in range(0, len(stream) - 1, 65536):
        assert session.receive(stream[i : min(i + 65536, len(stream) - 1)]) == []
        assert session._decoder.buffered <= len(stream)
    (batch,) = session.receive(stream[-1:])
    assert isinstance(batch, list) and batch[0].length == 1
    assert session._decoder.buffered == 0
