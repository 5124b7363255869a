"""A room's outputs: source -> compositor -> outputs, any number, started and stopped live.

:class:`RoomOutputs` is the room as an :class:`~arengine.transport.output.OutputSource`
(shared encoders from the room pipeline, audio from the room's audio clock) and the list
of its running outputs, with their stats for the stats endpoint and Prometheus. WHEP
viewers are outputs of the same kind in spirit (they share the viewers' encoder); they
are counted apart because there can be thousands.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from prometheus_client import Counter, Gauge

from arengine.pipeline.room import RoomPipeline
from arengine.transport.audio import EncodedAudioTrack, RoomAudio
from arengine.transport.encoder import Codec, PacketQueue
from arengine.transport.output import EncoderSpec, Output, PcmQueue

logger = logging.getLogger(__name__)

MAX_OUTPUTS = 8  # per room: each one is a connection and maybe an encoder of its own

OUTPUT_UP = Gauge("arengine_output_up", "1 while an output is live", ["room", "output", "kind"])
OUTPUT_FPS = Gauge("arengine_output_fps", "Video frames sent per second by an output",
                   ["room", "output", "kind"])
OUTPUT_BITRATE = Gauge("arengine_output_bitrate_bits", "Video bits per second sent",
                       ["room", "output", "kind"])
OUTPUT_DROPPED = Counter("arengine_output_dropped_total",
                         "Video frames an output dropped (its far end too slow)",
                         ["room", "output", "kind"])
OUTPUT_RECONNECTS = Counter("arengine_output_reconnects_total",
                            "Times an output reconnected", ["room", "output", "kind"])


class OutputLimitError(ValueError):
    """The room already has its :data:`MAX_OUTPUTS` (a 409: the state forbids another)."""


class RoomOutputs:
    """The outputs of one room and what they draw from it."""

    def __init__(self, pipeline: RoomPipeline, audio: RoomAudio) -> None:
        self.room = pipeline.room
        self.pipeline = pipeline
        self.audio = audio
        self.outputs: dict[str, Output] = {}
        self._reported: dict[str, tuple[int, int]] = {}  # id -> (dropped, reconnects)

    # -- OutputSource --------------------------------------------------------------------

    def video(self, spec: EncoderSpec) -> PacketQueue:
        return self.pipeline.subscribe_packets(spec)

    def release_video(self, packets: PacketQueue) -> None:
        for enc in self.pipeline.encoders.values():
            enc.fanout.unsubscribe(packets)
        # The encoder itself stops at the next prune (a viewer leaving, or remove()).

    def audio_pcm(self) -> PcmQueue:
        frames = PcmQueue()
        self.audio.subscribe_pcm(frames)
        return frames

    def release_audio_pcm(self, frames: PcmQueue) -> None:
        self.audio.unsubscribe_pcm(frames)

    def audio_opus(self) -> EncodedAudioTrack:
        return self.audio.subscribe()

    def release_audio_opus(self, track: EncodedAudioTrack) -> None:
        self.audio.unsubscribe(track)

    @property
    def size(self) -> tuple[int, int] | None:
        return self.pipeline.size

    def viewer_spec(self, codec: Codec) -> EncoderSpec:
        return self.pipeline.viewer_spec(codec)

    @property
    def fps(self) -> int:
        return self.pipeline.config.fps

    # -- the list ------------------------------------------------------------------------

    def add(self, output: Output) -> Output:
        """Start ``output`` on this room."""
        if len(self.outputs) >= MAX_OUTPUTS:
            raise OutputLimitError(f"a room has at most {MAX_OUTPUTS} outputs; stop one first")
        self.outputs[output.id] = output
        output.start(self)
        logger.info("room %s: output %s (%s) started: %s", self.room, output.id, output.kind,
                    output.describe())
        return output

    async def remove(self, output_id: str) -> bool:
        output = self.outputs.pop(output_id, None)
        if output is None:
            return False
        await output.stop()
        self._forget_metrics(output)
        await self.pipeline.prune_encoders()
        logger.info("room %s: output %s (%s) stopped", self.room, output.id, output.kind)
        return True

    async def close(self) -> None:
        for output_id in list(self.outputs):
            await self.remove(output_id)

    def stats(self) -> list[dict[str, Any]]:
        """Each output's stats, and the same numbers into Prometheus."""
        out = []
        for o in self.outputs.values():
            s = o.stats()
            labels = (self.room, o.id, o.kind)
            OUTPUT_UP.labels(*labels).set(1 if o.state == "live" else 0)
            OUTPUT_FPS.labels(*labels).set(s["fps"])
            OUTPUT_BITRATE.labels(*labels).set(s["bitrate_kbps"] * 1000)
            dropped, reconnects = self._reported.get(o.id, (0, 0))
            if o.dropped > dropped:
                OUTPUT_DROPPED.labels(*labels).inc(o.dropped - dropped)
            if o.reconnects > reconnects:
                OUTPUT_RECONNECTS.labels(*labels).inc(o.reconnects - reconnects)
            self._reported[o.id] = (o.dropped, o.reconnects)
            out.append(s)
        return out

    def _forget_metrics(self, o: Output) -> None:
        labels = (self.room, o.id, o.kind)
        for g in (OUTPUT_UP, OUTPUT_FPS, OUTPUT_BITRATE):
            with contextlib.suppress(KeyError):  # never set
                g.remove(*labels)
        self._reported.pop(o.id, None)
