"""WHEP egress: a viewer plays a room's processed video with one HTTP POST.

Each viewer gets an :class:`~arengine.transport.encoder.EncodedTrack` of the room's
shared encoder for the negotiated codec, so a hundred viewers cost one encode. When the
offer asks for audio, the viewer gets the room's relayed host audio (or silence). A viewer's
PLI/FIR is routed to that shared encoder (rate-limited there) instead of aiortc's per-sender
encoder, which does not exist for pre-encoded packets. When the viewer's offer has a data
channel, the server sends room events over it (the product sticker's click rectangles).
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCRtpSender

from arengine.transport import hooks
from arengine.transport.encoder import MIME_TYPES, Codec, EncodedTrack
from arengine.transport.playout import use_playout_delay
from arengine.transport.session import PeerSession, send_json

logger = logging.getLogger(__name__)


def choose_codec(offered: tuple[str, ...], preferred: Codec) -> Codec:
    """The room's preferred codec when the viewer offers it, else the other one."""
    names = {c.upper() for c in offered}
    if preferred.upper() in names:
        return preferred
    for c in ("vp8", "h264"):
        if c.upper() in names:
            return c
    raise ValueError("no supported codec offered")


class WhepSession(PeerSession):
    """A viewer: sends one shared encoded track, optionally a data channel of events."""

    kind = "whep"

    def __init__(self, room: str, track: EncodedTrack, codec: Codec,
                 config: RTCConfiguration | None = None,
                 audio: MediaStreamTrack | None = None,
                 playout_delay: tuple[int, int] | None = (0, 0)) -> None:
        super().__init__(room, config)
        self.playout_delay = playout_delay  # (min, max) ms asked of the viewer's player
        self.playout_delay_sent = False
        self.track = track
        self.audio = audio
        self.codec = codec
        self.channel: RTCDataChannel | None = None
        self.told = False  # the latest media event reached this viewer

        @self.pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self.channel = channel

    def prepare(self) -> None:
        if self.audio is not None and any(t.kind == "audio" for t in self.pc.getTransceivers()):
            self.pc.addTrack(self.audio)
        for t in self.pc.getTransceivers():
            if t.kind != "video":
                continue
            sender = self.pc.addTrack(self.track)
            caps = RTCRtpSender.getCapabilities("video").codecs
            mime = MIME_TYPES[self.codec].lower()
            prefs = [c for c in caps if c.mimeType.lower() == mime]
            prefs += [c for c in caps if c.mimeType.lower() == "video/rtx"]
            t.setCodecPreferences(prefs)
            # aiortc applies preferences when it reads the offer, which for an answerer has
            # already happened: narrow the negotiated list too, or the answer would list
            # the viewer's first codec and the shared packets would be labelled with it.
            if not hooks.narrow_negotiated_codecs(t, prefs):
                raise ValueError(f"the offer does not accept {self.codec.upper()}")
            if self.playout_delay is not None:
                self.playout_delay_sent = use_playout_delay(
                    t, self.pc.remoteDescription.sdp, *self.playout_delay)
            # The shared encoder honours keyframe requests (PLI/FIR) for this viewer.
            hooks.route_keyframe_requests(sender, self.track.fanout.request_keyframe)
            return
        raise ValueError("the offer has no video section")

    def send_event(self, event: dict[str, Any]) -> bool:
        """Send a JSON event on the viewer's data channel, when it is open."""
        return send_json(self.channel, event, f"whep {self.id}")
