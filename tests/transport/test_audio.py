"""Room audio: one Opus encoder per room, its packets shared by every viewer."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from arengine.transport.audio import FRAME_SAMPLES, SAMPLE_RATE, RoomAudio


class Tone(MediaStreamTrack):
    """A 440 Hz mono tone at 44.1 kHz in 10 ms frames (not Opus's own rate or layout)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(0.01)
        n = 441
        t = (self.n + np.arange(n)) / 44100
        pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 44100
        frame.pts = self.n
        frame.time_base = Fraction(1, 44100)
        self.n += n
        return frame


def _peak(packets: list[av.Packet]) -> int:
    dec = av.CodecContext.create("opus", "r")
    peak = 0
    for p in packets:
        for f in dec.decode(p):
            x = f.to_ndarray()
            if x.dtype.kind == "f":  # FFmpeg's Opus decoder gives floats in [-1, 1]
                x = x * 32767
            peak = max(peak, int(np.abs(x).max()))
    return peak


async def _take(track: MediaStreamTrack, n: int) -> list[av.Packet]:
    return [await asyncio.wait_for(track.recv(), 2) for _ in range(n)]


def test_viewers_share_one_encoder_and_its_packets() -> None:
    async def main() -> None:
        audio = RoomAudio("r")
        a, b = audio.subscribe(), audio.subscribe()
        pa, pb = await asyncio.gather(_take(a, 15), _take(b, 15))
        assert [id(p) for p in pa] == [id(p) for p in pb]  # the same packet objects
        assert 15 <= audio.encoded <= 17  # one encode per 20 ms, not one per viewer
        pts = [p.pts for p in pa]
        assert np.all(np.diff(pts) == FRAME_SAMPLES) and pa[0].time_base == Fraction(
            1, SAMPLE_RATE)
        assert _peak(pa) < 50  # no host: silence
        await audio.close()

    asyncio.run(main())


def test_host_audio_is_resampled_encoded_and_silence_returns_after_it() -> None:
    async def main() -> None:
        audio = RoomAudio("r")
        viewer = audio.subscribe()
        await _take(viewer, 3)
        tone = Tone()
        audio.attach(tone)
        assert audio.live
        packets = await _take(viewer, 30)
        assert _peak(packets[10:]) > 4000  # the tone came through
        assert audio.relayed > 0
        audio.detach(tone)
        assert not audio.live
        await _take(viewer, 15)  # the host's last buffered audio drains out
        assert _peak(await _take(viewer, 10)) < 50
        await audio.close()

    asyncio.run(main())


def test_a_stalled_viewer_keeps_only_the_newest_and_others_go_on() -> None:
    async def main() -> None:
        audio = RoomAudio("r")
        stalled, live = audio.subscribe(), audio.subscribe()
        got = await _take(live, 25)
        assert len(got) == 25 and stalled.dropped >= 10
        newest = await stalled.recv()
        assert newest.pts >= got[-1].pts - 10 * FRAME_SAMPLES  # no half-second-old audio
        await audio.close()

    asyncio.run(main())


def test_unsubscribed_track_ends_and_the_clock_stops_with_no_listener() -> None:
    async def main() -> None:
        audio = RoomAudio("r")
        track = audio.subscribe()
        await _take(track, 2)
        pending = asyncio.ensure_future(_take(track, 100))
        audio.unsubscribe(track)
        with pytest.raises(MediaStreamError):
            await pending
        await asyncio.sleep(0.1)
        encoded = audio.encoded
        await asyncio.sleep(0.2)
        assert audio.encoded == encoded and audio.listeners == 0
        again = audio.subscribe()  # a new viewer starts the clock again
        await _take(again, 2)
        await audio.close()

    asyncio.run(main())
