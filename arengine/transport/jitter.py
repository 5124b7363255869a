"""A video jitter buffer that hands a frame on as soon as its last packet is in.

aiortc's :class:`~aiortc.jitterbuffer.JitterBuffer` knows a frame is complete only when the
first packet of the *next* frame arrives (its timestamp differs), so every received frame
waits one whole frame interval (33 ms at 30 fps, 50 ms when a busy browser sends 20 fps)
before it is decoded. Video senders mark the last packet of each frame with the RTP marker
bit (RFC 7741 for VP8, RFC 6184 for H.264), so a frame whose packets run without a gap from
the buffer's start to a marked packet is complete at that packet. Frames without a marker
(a lost last packet, a sender that does not set it) still complete the old way, on the
next timestamp.
"""

from __future__ import annotations

import logging

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from arengine.transport import hooks

logger = logging.getLogger(__name__)


class MarkerJitterBuffer(hooks.OpenJitterBuffer):
    """aiortc's video jitter buffer, completing frames on the RTP marker bit."""

    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity=capacity)
        self.completed_on_marker = 0
        self.completed_on_timestamp = 0

    def next_frame(self) -> JitterFrame | None:
        packets: list[RtpPacket] = []
        timestamp: int | None = None
        for count in range(self.capacity):
            packet = self.packet_at(count)
            if packet is None:
                return None  # a gap (or nothing yet): wait for the missing packet or a resend
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # The previous frame had no marked last packet: complete it now.
                self.completed_on_timestamp += 1
                return self.take_frame(packets, timestamp, count)
            packets.append(packet)
            if packet.marker:
                self.completed_on_marker += 1
                return self.take_frame(packets, timestamp, count + 1)
        return None


def use_marker_jitter_buffer(receiver: object) -> bool:
    """Give an aiortc video receiver a :class:`MarkerJitterBuffer`; False if it cannot.

    aiortc has no hook for its jitter buffer (see :mod:`arengine.transport.hooks`); call
    this before the first packet arrives (between setRemoteDescription and the answer). On
    an aiortc whose receiver has no such buffer nothing changes and the reason is logged.
    """
    current = hooks.jitter_buffer(receiver)
    if isinstance(current, MarkerJitterBuffer):
        return True
    if current is None or not hooks.set_jitter_buffer(receiver,
                                                      MarkerJitterBuffer(current.capacity)):
        logger.warning("this aiortc has no replaceable video jitter buffer; frames will "
                       "wait one frame interval in it")
        return False
    return True
