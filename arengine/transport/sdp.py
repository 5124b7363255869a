"""Checks on an SDP offer before it reaches aiortc, so bad offers get the right HTTP error.

aiortc raises assorted exceptions (or none at all) on odd SDP; WHIP/WHEP clients need a
400 for a malformed offer and a 422 for one that parses but carries no usable video.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import SessionDescription

SUPPORTED_VIDEO = ("VP8", "H264")


class OfferError(ValueError):
    """An offer the server cannot use; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OfferInfo:
    """What an offer asks for: the video codecs it offers and its video direction."""

    video_codecs: tuple[str, ...]
    video_direction: str
    has_audio: bool
    has_datachannel: bool


def inspect_offer(text: str, want: str) -> OfferInfo:
    """Parse and check an offer; ``want`` is "send" (WHIP) or "recv" (WHEP) for video."""
    if not text.strip():
        raise OfferError(400, "empty SDP offer")
    if not text.lstrip().startswith("v=0"):
        raise OfferError(400, "malformed SDP offer: it must start with v=0")
    try:
        desc = SessionDescription.parse(text)
    except Exception as e:  # aiortc's parser raises whatever its split/int calls raise
        raise OfferError(400, f"malformed SDP offer: {e or type(e).__name__}") from None
    if not desc.media:
        raise OfferError(400, "malformed SDP offer: no m= sections")
    for m in desc.media:
        if m.kind in ("audio", "video") and (
                m.ice is None or not m.ice.usernameFragment or not m.ice.password):
            raise OfferError(400, f"malformed SDP offer: {m.kind} section lacks ICE "
                                  "credentials (a=ice-ufrag / a=ice-pwd)")
        if m.kind in ("audio", "video") and (m.dtls is None or not m.dtls.fingerprints):
            raise OfferError(400, f"malformed SDP offer: {m.kind} section lacks a DTLS "
                                  "fingerprint")
    video = [m for m in desc.media if m.kind == "video" and m.port != 0]
    if not video:
        raise OfferError(422, "the offer has no video track")
    m = video[0]
    direction = m.direction or "sendrecv"
    if want == "send" and direction not in ("sendonly", "sendrecv"):
        raise OfferError(422, f"a WHIP offer must send video, this one is {direction}")
    if want == "recv" and direction not in ("recvonly", "sendrecv"):
        raise OfferError(422, f"a WHEP offer must receive video, this one is {direction}")
    codecs = tuple(dict.fromkeys(c.name.upper() for c in m.rtp.codecs
                                 if c.name.upper() in SUPPORTED_VIDEO))
    if not codecs:
        offered = ", ".join(sorted({c.name for c in m.rtp.codecs})) or "none"
        raise OfferError(422, f"unsupported video codecs ({offered}); "
                              f"use one of {', '.join(SUPPORTED_VIDEO)}")
    return OfferInfo(codecs, direction,
                     any(x.kind == "audio" and x.port != 0 for x in desc.media),
                     any(x.kind == "application" for x in desc.media))
