"""Checks on an SDP offer before it reaches aiortc, so bad offers get the right HTTP error.

aiortc raises assorted exceptions (or none at all) on odd SDP; WHIP/WHEP clients need a
400 for a malformed offer and a 422 for one that parses but carries no usable video.

A section with port 0 is disabled (RFC 3264), except a ``bundle-only`` one inside a BUNDLE
group whose first (tagged) section is live (RFC 8843): that is how a max-bundle offerer,
such as GStreamer's webrtcbin, offers every section after the first, and aiortc receives
such sections over the bundle's one transport.
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


def _bundle_only(text: str) -> list[bool]:
    """Per m= section, whether it carries ``a=bundle-only`` (aiortc's parser drops it)."""
    flags: list[bool] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            flags.append(False)
        elif flags and line == "a=bundle-only":
            flags[-1] = True
    return flags


def live_sections(desc: SessionDescription, text: str) -> list[bool]:
    """Per m= section of ``desc`` (parsed from ``text``), whether it is in use.

    Live: a non-zero port, or port 0 with ``a=bundle-only`` in a BUNDLE group whose tagged
    section has a port. Any other port-0 section is disabled.
    """
    flags = _bundle_only(text)
    if len(flags) != len(desc.media):  # not split the way aiortc split it: trust ports only
        flags = [False] * len(desc.media)
    by_mid = {m.rtp.muxId: m for m in desc.media if m.rtp.muxId}
    bundled: set[str] = set()
    for group in desc.group:
        if group.semantic == "BUNDLE" and group.items:
            tagged = by_mid.get(str(group.items[0]))
            if tagged is not None and tagged.port != 0:
                bundled.update(str(mid) for mid in group.items)
    return [m.port != 0 or (only and m.rtp.muxId in bundled)
            for m, only in zip(desc.media, flags, strict=True)]


def _bad_line(text: str) -> str:
    """Where a failed parse went wrong, for a person: the first line after which the
    offer no longer parses (aiortc's own errors read like "list index out of range")."""
    lines = text.replace("\r\n", "\n").split("\n")
    for n in range(1, len(lines) + 1):
        try:
            SessionDescription.parse("\r\n".join(lines[:n]) + "\r\n")
        except Exception:
            line = lines[n - 1]
            shown = line if len(line) <= 60 else line[:60] + "..."
            return f"line {n} cannot be read: {shown!r}"
    return "it cannot be read as SDP"


def inspect_offer(text: str, want: str) -> OfferInfo:
    """Parse and check an offer; ``want`` is "send" (WHIP) or "recv" (WHEP) for video."""
    if not text.strip():
        raise OfferError(400, "empty SDP offer")
    if not text.lstrip().startswith("v=0"):
        raise OfferError(400, "malformed SDP offer: it must start with v=0")
    try:
        desc = SessionDescription.parse(text)
    except Exception:  # aiortc's parser raises whatever its split/int calls raise
        raise OfferError(400, f"malformed SDP offer: {_bad_line(text)}") from None
    if not desc.media:
        raise OfferError(400, "malformed SDP offer: no m= sections")
    used = [m for m, live in zip(desc.media, live_sections(desc, text), strict=True) if live]
    for m in used:  # a disabled section is not used, so not checked either
        if m.kind in ("audio", "video") and (
                m.ice is None or not m.ice.usernameFragment or not m.ice.password):
            raise OfferError(400, f"malformed SDP offer: {m.kind} section lacks ICE "
                                  "credentials (a=ice-ufrag / a=ice-pwd)")
        if m.kind in ("audio", "video") and (m.dtls is None or not m.dtls.fingerprints):
            raise OfferError(400, f"malformed SDP offer: {m.kind} section lacks a DTLS "
                                  "fingerprint")
    video = [m for m in used if m.kind == "video"]
    if not video:
        disabled = any(m.kind == "video" for m in desc.media)
        raise OfferError(422, "the offer has no video track" + (
            " (its video section has port 0 without a=bundle-only in a BUNDLE group: "
            "disabled)" if disabled else ""))
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
    return OfferInfo(codecs, direction, any(x.kind == "audio" for x in used),
                     any(x.kind == "application" for x in used))
