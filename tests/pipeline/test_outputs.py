"""A room's outputs: shared encoders by spec, bounded queues, stats, the host API."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from arengine.app import create_app, running
from arengine.server import OutputKind
from arengine.settings import Settings
from arengine.transport.output import (
    EncoderSpec,
    Output,
    OutputPolicy,
    OutputSource,
    check_target,
)


class CollectIn(BaseModel):
    kind: Literal["collect"]
    bitrate_kbps: int = 1000
    keyframe_interval_s: float = 2.0
    slow: bool = False


class CollectingOutput(Output):
    """Reads video packets and audio frames like a real output, into lists."""

    kind = "collect"

    def __init__(self, spec: EncoderSpec, slow: bool) -> None:
        super().__init__()
        self.spec = spec
        self.slow = slow
        self.packets = 0
        self.keyframes = 0
        self.audio_frames = 0

    def describe(self) -> dict[str, Any]:
        return {"target": "memory", "encoder": self.spec.name}

    async def run(self, source: OutputSource) -> None:
        video = source.video(self.spec)
        audio = source.audio_pcm()
        self.set_state("live")
        try:
            while True:
                packet, _ = await video.get()
                self.packets += 1
                self.keyframes += packet.is_keyframe
                self.frames += 1
                self.video_rate.add(packet.size)
                self.audio_frames += len(audio.drain())
                if self.slow:
                    await asyncio.sleep(0.5)  # a far end that cannot keep up
                self.dropped = video.dropped
        finally:
            source.release_video(video)
            source.release_audio_pcm(audio)


def collect(body: CollectIn, policy: OutputPolicy) -> CollectingOutput:
    spec = EncoderSpec("h264", body.bitrate_kbps * 1000, 30, body.keyframe_interval_s, "main")
    return CollectingOutput(spec, body.slow)


KIND = OutputKind("collect", CollectIn, collect)
HOST = {"Authorization": "Bearer host-token-for-outputs"}


def _app(tmp_path: Path) -> Any:
    s = Settings(db=str(tmp_path / "rooms.db"), demo=False).with_room(
        demo=True, demo_size=(320, 180), fps=30, track_faces=False, track_hands=False,
        effects=())
    app = create_app(s)
    app.state.media.output_kinds = {"collect": KIND}
    return app


def test_outputs_share_encoders_by_spec_and_report(tmp_path: Path) -> None:
    async def main() -> None:
        app = _app(tmp_path)
        async with running(app) as http:
            await app.state.hub.create_room("r", "room1", host_token=HOST["Authorization"][7:])
            r = await http.post("/api/rooms/room1/outputs", json={"kind": "collect"})
            assert r.status_code == 401
            made = []
            for body in ({"kind": "collect"}, {"kind": "collect"},
                         {"kind": "collect", "bitrate_kbps": 500}):
                r = await http.post("/api/rooms/room1/outputs", json=body, headers=HOST)
                assert r.status_code == 201, r.text
                made.append(r.json()["id"])
            pipeline = app.state.media.pipelines["room1"]
            await asyncio.sleep(3.0)
            assert len(pipeline.encoders) == 2  # two specs, three outputs
            outs = app.state.media.outputs["room1"].outputs
            for o in outs.values():
                assert o.state == "live" and o.packets > 30 and o.keyframes >= 1
                assert o.audio_frames > 50  # the room's 20 ms audio clock (silence here)
            stats = (await http.get("/api/rooms/room1/stats", headers=HOST)).json()
            assert {s["id"] for s in stats["outputs"]} == set(made)
            assert all(s["fps"] > 10 and s["bitrate_kbps"] > 0 for s in stats["outputs"])
            metrics = (await http.get("/metrics")).text
            up = f'arengine_output_up{{kind="collect",output="{made[0]}",room="room1"}} 1.0'
            assert up in metrics
            listed = (await http.get("/api/rooms/room1/outputs", headers=HOST)).json()
            assert len(listed["outputs"]) == 3 and listed["kinds"] == ["collect"]
            for oid in made:
                r = await http.delete(f"/api/rooms/room1/outputs/{oid}", headers=HOST)
                assert r.status_code == 200
            assert not pipeline.encoders  # the last subscriber gone: encoders stopped
            r = await http.delete(f"/api/rooms/room1/outputs/{made[0]}", headers=HOST)
            assert r.status_code == 404

    asyncio.run(main())


def test_a_slow_output_drops_and_never_delays_another(tmp_path: Path) -> None:
    async def main() -> None:
        app = _app(tmp_path)
        async with running(app) as http:
            await app.state.hub.create_room("r", "room1", host_token=HOST["Authorization"][7:])
            for slow in (True, False):
                r = await http.post("/api/rooms/room1/outputs", headers=HOST,
                                    json={"kind": "collect", "slow": slow})
                assert r.status_code == 201
            await asyncio.sleep(4.0)
            slow_o, fast_o = app.state.media.outputs["room1"].outputs.values()
            assert slow_o.dropped > 20  # counted, the queue emptied back to a keyframe
            assert fast_o.dropped == 0 and fast_o.packets > 90  # same encoder, unharmed
            processed = app.state.media.observer.snapshot("room1")["frames"]["processed"]
            assert processed > 90  # the compositor went on at the source rate

    asyncio.run(main())


def test_bad_output_requests_are_refused_in_words(tmp_path: Path) -> None:
    async def main() -> None:
        app = _app(tmp_path)
        async with running(app) as http:
            await app.state.hub.create_room("r", "room1", host_token=HOST["Authorization"][7:])
            for body, words in (({"kind": "teleport"}, "kind must be one of: collect"),
                                ({"kind": "collect", "bitrate_kbps": "fast"},
                                 "bitrate_kbps"), ([], "kind must be one of")):
                r = await http.post("/api/rooms/room1/outputs", json=body, headers=HOST)
                assert r.status_code == 422 and words in r.json()["detail"], r.text
            r = await http.post("/api/rooms/room1/outputs", content=b"{nope", headers=HOST)
            assert r.status_code == 400

    asyncio.run(main())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.9",
                                  "169.254.169.254", "::1"])
def test_push_targets_must_be_public_unless_allowed(host: str) -> None:
    with pytest.raises(ValueError, match="private or local address"):
        check_target(host, 1935, OutputPolicy())
    check_target(host, 1935, replace(OutputPolicy(), allow_private=True))


def test_an_unresolvable_target_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot resolve"):
        check_target("no-such-host.invalid", 1935, OutputPolicy())
