"""The marker-bit jitter buffer: frames leave at their last packet, never half-built."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from arengine.transport.jitter import MarkerJitterBuffer, use_marker_jitter_buffer


def packet(seq: int, ts: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=ts, marker=marker)
    p._data = data  # type: ignore[attr-defined]  # what aiortc's depayloader sets
    return p


def frames_of(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes] | None]:
    out = []
    for p in packets:
        _, frame = buffer.add(p)
        out.append(None if frame is None else (frame.timestamp, frame.data))
    return out


def test_frame_completes_at_its_marked_last_packet() -> None:
    stream = [packet(10, 3000, False, b"a"), packet(11, 3000, False, b"b"),
              packet(12, 3000, True, b"c"), packet(13, 6000, True, b"d")]
    buf = MarkerJitterBuffer()
    assert frames_of(buf, stream) == [None, None, (3000, b"abc"), (6000, b"d")]
    assert buf.completed_on_marker == 2
    # aiortc's own buffer gives the first frame only when the next one starts.
    assert frames_of(JitterBuffer(512, is_video=True), stream) == [
        None, None, None, (3000, b"abc")]


def test_missing_packet_holds_the_frame_until_it_arrives() -> None:
    buf = MarkerJitterBuffer()
    assert frames_of(buf, [packet(1, 90, False, b"a"), packet(3, 90, True, b"c")]) == [
        None, None]
    # the retransmitted middle packet completes the frame, in sequence order
    assert frames_of(buf, [packet(2, 90, False, b"b")]) == [(90, b"abc")]


def test_unmarked_frame_completes_on_the_next_timestamp() -> None:
    buf = MarkerJitterBuffer()
    out = frames_of(buf, [packet(5, 100, False, b"x"), packet(6, 100, False, b"y"),
                          packet(7, 200, True, b"z")])
    assert out == [None, None, (100, b"xy")]
    assert buf.completed_on_timestamp == 1
    # the marked frame behind it comes out with the next packet
    assert frames_of(buf, [packet(8, 300, True, b"w")]) == [(200, b"z")]


def test_sequence_numbers_wrap() -> None:
    buf = MarkerJitterBuffer()
    out = frames_of(buf, [packet(65534, 1, False, b"1"), packet(65535, 1, False, b"2"),
                          packet(65536, 1, True, b"3"), packet(65537, 2, True, b"4")])
    assert out == [None, None, (1, b"123"), (2, b"4")]


def test_late_duplicate_of_a_delivered_frame_is_ignored() -> None:
    buf = MarkerJitterBuffer()
    assert frames_of(buf, [packet(1, 9, True, b"a"), packet(1, 9, True, b"a"),
                           packet(2, 18, True, b"b")]) == [(9, b"a"), None, (18, b"b")]


def test_installs_on_a_real_receiver_once() -> None:
    async def main() -> None:
        pc = RTCPeerConnection()
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        assert use_marker_jitter_buffer(receiver)
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert isinstance(buffer, MarkerJitterBuffer)
        assert use_marker_jitter_buffer(receiver)
        assert receiver._RTCRtpReceiver__jitter_buffer is buffer  # type: ignore[attr-defined]
        assert not use_marker_jitter_buffer(object())
        await pc.close()

    asyncio.run(main())
