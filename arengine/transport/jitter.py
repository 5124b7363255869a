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
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame

logger = logging.getLogger(__name__)

_RECEIVER_ATTR = "_RTCRtpReceiver__jitter_buffer"


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, completing frames on the RTP marker bit."""

    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.completed_on_marker = 0
        self.completed_on_timestamp = 0

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets: list[Any] = []
        timestamp: int | None = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None  # a gap: wait for the missing packet (or a NACK resend)
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # The previous frame had no marked last packet: complete it now.
                self.completed_on_timestamp += 1
                return self._take(packets, timestamp, count)
            packets.append(packet)
            if packet.marker:
                self.completed_on_marker += 1
                return self._take(packets, timestamp, count + 1)
        return None

    def _take(self, packets: list[Any], timestamp: int, count: int) -> JitterFrame:
        frame = JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
        self.remove(count)
        return frame


def use_marker_jitter_buffer(receiver: Any) -> bool:
    """Give an aiortc video receiver a :class:`MarkerJitterBuffer`; False if it cannot.

    aiortc has no hook for its jitter buffer, so this swaps its private attribute; call it
    before the first packet arrives (between setRemoteDescription and the answer). On an
    aiortc whose receiver has no such attribute nothing changes and the reason is logged.
    """
    current = getattr(receiver, _RECEIVER_ATTR, None)
    if isinstance(current, MarkerJitterBuffer):
        return True
    if not isinstance(current, JitterBuffer):
        logger.warning("this aiortc has no replaceable video jitter buffer; frames will "
                       "wait one frame interval in it")
        return False
    setattr(receiver, _RECEIVER_ATTR, MarkerJitterBuffer(current.capacity))
    return True
