"""Ask a viewer's browser to show frames as soon as they are decoded (RTP playout delay).

A browser smooths incoming video with a jitter buffer whose delay grows with how unevenly
frames arrive. A server that composites AR on a busy machine sends unevenly, and the
measured result was a viewer jitter buffer of 30-120 ms that kept growing for the first
half-minute of a stream, as much as everything else in glass to glass together. The
playout-delay RTP header extension (webrtc.org's ``playout-delay``, which Chrome offers and
cloud-gaming services use) lets the sender bound that delay: with a maximum of 0 the
browser renders each frame once it is decoded. The price is that uneven arrival shows as
uneven motion instead of as latency.

aiortc neither negotiates nor writes this extension, so :func:`use_playout_delay` adds it
to a video transceiver's negotiated extensions when the offer has it (between
setRemoteDescription and createAnswer) and gives the sender a header-extension map that
writes it on every packet (both through :mod:`arengine.transport.hooks`).
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc import rtp
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.sdp import SessionDescription

from arengine.transport import hooks

logger = logging.getLogger(__name__)

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
MAX_DELAY_MS = 40950  # 12 bits of 10 ms units


def pack_playout_delay(min_ms: int, max_ms: int) -> bytes:
    """The extension's 3 bytes: 12-bit minimum and maximum, in 10 ms units."""
    if not 0 <= min_ms <= max_ms <= MAX_DELAY_MS:
        raise ValueError(f"need 0 <= min <= max <= {MAX_DELAY_MS} ms, got {min_ms}, {max_ms}")
    lo, hi = min_ms // 10, max_ms // 10
    return bytes([lo >> 4, ((lo & 0x0F) << 4) | (hi >> 8), hi & 0xFF])


def unpack_playout_delay(value: bytes) -> tuple[int, int]:
    """(min, max) in milliseconds from the extension's 3 bytes."""
    if len(value) != 3:
        raise ValueError("the playout-delay extension is 3 bytes")
    lo = (value[0] << 4) | (value[1] >> 4)
    hi = ((value[1] & 0x0F) << 8) | value[2]
    return lo * 10, hi * 10


class PlayoutDelayMap(rtp.HeaderExtensionsMap):
    """aiortc's header-extension map, plus playout-delay on every packet once negotiated.

    The element is appended to the block aiortc packs (RFC 8285 allows the zero padding
    that block may end with between elements), so a packet costs a byte concatenation
    rather than an unpack and a repack.
    """

    def __init__(self, min_ms: int, max_ms: int) -> None:
        super().__init__()
        self.value = pack_playout_delay(min_ms, max_ms)
        self.id: int | None = None
        self._one_byte: bytes | None = None  # the element in each header form
        self._two_byte = b""

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        for ext in parameters.headerExtensions:
            if ext.uri == PLAYOUT_DELAY_URI:
                self.id = ext.id
                self._one_byte = bytes([(ext.id << 4) | (len(self.value) - 1)]) + self.value \
                    if ext.id <= 14 else None
                self._two_byte = bytes([ext.id, len(self.value)]) + self.value

    def set(self, values: rtp.HeaderExtensions) -> tuple[int, bytes]:
        profile, data = super().set(values)
        if self.id is None:
            return profile, data
        if not data:
            profile = 0xBEDE if self._one_byte is not None else 0x1000
        if profile == 0xBEDE and self._one_byte is not None:
            data += self._one_byte
        elif profile == 0x1000:
            data += self._two_byte
        else:  # one-byte block, but an id above 14: repack in the two-byte form
            extensions = rtp.unpack_header_extensions(profile, data)
            extensions.append((self.id, self.value))
            return rtp.pack_header_extensions(extensions)
        return profile, data + b"\x00" * (-len(data) % 4)


def offered_extension_id(offer_sdp: str, mid: str | None, uri: str) -> int | None:
    """The id the offer gives ``uri`` in the media section ``mid`` (None when absent)."""
    for media in SessionDescription.parse(offer_sdp).media:
        if mid is not None and media.rtp.muxId != mid:
            continue
        for ext in media.rtp.headerExtensions:
            if ext.uri == uri:
                return ext.id
    return None


def use_playout_delay(transceiver: Any, offer_sdp: str, min_ms: int = 0,
                      max_ms: int = 0) -> bool:
    """Negotiate and send playout-delay on a video transceiver; False if it cannot.

    Call between setRemoteDescription (of the viewer's offer) and createAnswer. Nothing
    changes when the offer lacks the extension or this aiortc has no replaceable map.
    """
    ext_id = offered_extension_id(offer_sdp, transceiver.mid, PLAYOUT_DELAY_URI)
    if ext_id is None:
        return False
    if not hooks.set_header_extensions_map(transceiver.sender,
                                           PlayoutDelayMap(min_ms, max_ms)):
        logger.warning("this aiortc has no replaceable header-extension map; viewers keep "
                       "their browser's playout delay")
        return False
    hooks.add_negotiated_header_extension(transceiver, ext_id, PLAYOUT_DELAY_URI)
    return True
