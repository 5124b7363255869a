"""The receive bitrate the server announces to a publishing host (REMB).

A WebRTC sender such as Chrome sends no faster than the receiver's estimate of the
bandwidth, which aiortc derives from packet arrival delays (its delay-based estimator, fed
back as REMB). On a busy server, packets are read late because the CPU is busy, not
because the path is full; the estimator takes that for congestion and holds the host
near its 300 kbit/s start: measured on a 2-core machine, Chrome then sent 720p at 15 fps
and 300 kbit/s, dropping every other camera frame. Media servers for live streaming
(Janus's ``bitrate`` setting, for one) announce a configured bitrate instead, and so does
arengine: :class:`AnnouncedBitrate` replaces aiortc's estimator and reports the room's
ingest bitrate twice a second. The sender still backs off on packet loss (its loss-based
control reads the receiver reports aiortc keeps sending), and a sender's own ceiling
(Chrome: 2.5 Mbit/s at 720p) still holds.
"""

from __future__ import annotations

import logging

from arengine.transport import hooks

logger = logging.getLogger(__name__)

INTERVAL_MS = 500


class AnnouncedBitrate:
    """Stands in for aiortc's ``RemoteBitrateEstimator``: the same ``add`` call, a fixed
    answer every :data:`INTERVAL_MS` of arrival time."""

    def __init__(self, bitrate: int) -> None:
        if bitrate <= 0:
            raise ValueError(f"bitrate must be positive, not {bitrate}")
        self.bitrate = bitrate
        self._last_ms: int | None = None
        self.sent = 0

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        """(bitrate, [ssrc]) when a report is due, else None (aiortc sends it as REMB)."""
        if self._last_ms is not None and arrival_time_ms - self._last_ms < INTERVAL_MS:
            return None
        self._last_ms = arrival_time_ms
        self.sent += 1
        return self.bitrate, [ssrc]


def announce_bitrate(receiver: object, bitrate: int) -> bool:
    """Make an aiortc video receiver announce ``bitrate`` (bit/s); False if it cannot.

    aiortc has no hook for its estimator (see :mod:`arengine.transport.hooks`); call this
    before the first packet arrives. An aiortc without one keeps its own estimator, and the
    reason is logged.
    """
    current = hooks.bitrate_estimator(receiver)
    if isinstance(current, AnnouncedBitrate):
        current.bitrate = bitrate
        return True
    if current is None or not hooks.set_bitrate_estimator(receiver, AnnouncedBitrate(bitrate)):
        logger.warning("this aiortc has no replaceable bitrate estimator; the host's "
                       "bitrate follows aiortc's delay-based estimate")
        return False
    return True
