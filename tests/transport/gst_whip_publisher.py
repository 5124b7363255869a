"""A WHIP publisher built on GStreamer's own WebRTC stack (webrtcbin), for interop tests.

Run it with the system interpreter, which has PyGObject (``/usr/bin/python3``); the project's
virtual environment does not need GStreamer. It publishes a looped video file (decoded once
into memory, then pushed at the chosen rate, since webrtcbin does not pace what it is given)
and, unless ``--no-audio``, an Opus test tone, with ``bundle-policy=max-bundle`` and
send-only transceivers, as GStreamer's WHIP clients do. The whole offer is POSTed once ICE
gathering is complete (no trickle). It prints ``CONNECTED`` when the peer connection is up
and a line starting with ``ERROR`` when the POST, ICE or DTLS fails, then runs until killed
(SIGTERM or SIGINT ends the WHIP session with a DELETE) or for ``--duration`` seconds.

Debian's ``simple-whip-client`` would do the same, but it aborts at start on a libsoup2 and
libsoup3 clash, hence this script.
"""

from __future__ import annotations

import argparse
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

# Encoders as a WebRTC host would run them: no lookahead, no B-frames, a keyframe every two
# seconds at 15 fps so a late decoder starts soon. The payloaders' caps carry clock-rate:
# without it webrtcbin makes no offer.
VIDEO_ENCODERS = {
    "h264": ("x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max=30 "
             "! video/x-h264,profile=constrained-baseline "
             "! rtph264pay config-interval=-1 aggregate-mode=zero-latency "
             "! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000"),
    "vp8": ("vp8enc deadline=1 cpu-used=8 target-bitrate={bps} keyframe-max-dist=30 "
            "end-usage=cbr error-resilient=partitions "
            "! rtpvp8pay ! application/x-rtp,media=video,encoding-name=VP8,payload=96,"
            "clock-rate=90000"),
}
AUDIO = ("audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert "
         "! audioresample ! opusenc ! rtpopuspay "
         "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000")
HTTP_TIMEOUT_S = 15.0


def say(line: str) -> None:
    """One status line for the parent process (flushed: it reads stdout as a pipe)."""
    print(line, flush=True)


def decode_frames(path: str, width: int, height: int, max_frames: int) -> list[bytes]:
    """The first ``max_frames`` frames of an MP4/MOV file's first video track, as I420 at
    ``width`` x ``height`` (its other tracks are left unlinked)."""
    pipe = Gst.parse_launch(
        "filesrc name=file ! qtdemux name=demux demux.video_0 ! queue ! decodebin "
        f"! videoconvert ! videoscale ! video/x-raw,format=I420,width={width},"
        f"height={height},pixel-aspect-ratio=1/1 ! appsink name=out sync=false max-buffers=8")
    pipe.get_by_name("file").set_property("location", path)
    sink = pipe.get_by_name("out")
    pipe.set_state(Gst.State.PLAYING)
    frames: list[bytes] = []
    try:
        while len(frames) < max_frames:
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            if sample is None:
                break
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            if ok:
                frames.append(bytes(info.data))
                buf.unmap(info)
        error = pipe.get_bus().pop_filtered(Gst.MessageType.ERROR)
        if not frames and error is not None:
            err, debug = error.parse_error()
            say(f"ERROR: decoding {path}: {err.message} ({debug})")
    finally:
        pipe.set_state(Gst.State.NULL)
    return frames


class Publisher:
    """One webrtcbin publishing to one WHIP endpoint."""

    def __init__(self, args: argparse.Namespace, frames: list[bytes]) -> None:
        self.args = args
        self.frames = frames
        self.index = 0
        self.location: str | None = None
        self.loop = GLib.MainLoop()
        self.connected = False
        self.exit_code = 0
        kbps = args.kbps
        video = VIDEO_ENCODERS[args.codec].format(kbps=kbps, bps=kbps * 1000)
        parts = ["webrtcbin name=rtc bundle-policy=max-bundle"]
        if args.audio:  # first, so the video section is the bundle-only one
            parts.append(f"{AUDIO} ! rtc.")
        parts.append(
            f"appsrc name=src is-live=true do-timestamp=true format=time "
            f"caps=video/x-raw,format=I420,width={args.width},height={args.height},"
            f"framerate={args.fps}/1,pixel-aspect-ratio=1/1 "
            f"! queue max-size-buffers=2 leaky=downstream ! {video} ! rtc.")
        self.pipe = Gst.parse_launch(" ".join(parts))
        self.rtc = self.pipe.get_by_name("rtc")
        self.src = self.pipe.get_by_name("src")
        self.rtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.rtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.rtc.connect("notify::connection-state", self.on_connection_state)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)
        bus.connect("message::warning", self.on_warning)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, self.stop)
        if self.args.duration > 0:
            GLib.timeout_add(int(self.args.duration * 1000), self.stop)
        self.pipe.set_state(Gst.State.PLAYING)
        GLib.timeout_add(max(1, round(1000 / self.args.fps)), self.push_frame)
        self.loop.run()
        self.pipe.set_state(Gst.State.NULL)
        return self.exit_code

    def stop(self, *_: Any) -> bool:
        if self.location is not None:
            request = urllib.request.Request(self.location, method="DELETE",
                                             headers=self.auth())
            try:
                urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S).close()
            except urllib.error.HTTPError as e:
                if e.code != 404:  # 404: the server had already ended the session
                    say(f"WARNING: DELETE {self.location} answered {e.code}")
            except (urllib.error.URLError, OSError) as e:
                say(f"WARNING: DELETE {self.location} failed: {e}")
            self.location = None
        self.loop.quit()
        return False

    def fail(self, message: str) -> None:
        say(f"ERROR: {message}")
        self.exit_code = 1
        self.stop()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.args.token}"} if self.args.token else {}

    def push_frame(self) -> bool:
        data = self.frames[self.index % len(self.frames)]
        self.index += 1
        self.src.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        return True

    def on_negotiation_needed(self, rtc: Any) -> None:
        for t in range(64):  # the transceivers webrtcbin made for the linked pads
            trans = rtc.emit("get-transceiver", t)
            if trans is None:
                break
            trans.set_property("direction",
                               GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        promise = Gst.Promise.new_with_change_func(self.on_offer, rtc)
        rtc.emit("create-offer", None, promise)

    def on_offer(self, promise: Gst.Promise, rtc: Any) -> None:
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            GLib.idle_add(self.fail, "webrtcbin made no offer (check the RTP caps)")
            return
        rtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, rtc: Any, _: Any) -> None:
        if rtc.get_property("ice-gathering-state") == \
                GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.post_offer)

    def post_offer(self) -> bool:
        if self.location is not None:
            return False
        offer = self.rtc.get_property("local-description").sdp.as_text()
        if self.args.print_offer:
            for line in offer.splitlines():
                say(f"OFFER {line}")
        request = urllib.request.Request(
            self.args.url, data=offer.encode(), method="POST",
            headers={"Content-Type": "application/sdp", **self.auth()})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as r:
                status = r.status
                answer = r.read().decode()
                location = r.headers.get("Location")
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace").strip().replace("\n", " ")
            self.fail(f"WHIP POST answered {e.code}: {body}")
            return False
        except (urllib.error.URLError, OSError) as e:
            self.fail(f"WHIP POST failed: {e}")
            return False
        if status != 201 or not location:
            self.fail(f"WHIP POST answered {status} without a Location")
            return False
        self.location = urllib.parse.urljoin(self.args.url, location)
        say(f"ANSWERED {status} {self.location}")
        ok, msg = GstSdp.SDPMessage.new_from_text(answer)
        if ok != GstSdp.SDPResult.OK:
            self.fail("the WHIP answer is not SDP")
            return False
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.rtc.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_connection_state(self, rtc: Any, _: Any) -> None:
        state = rtc.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and not self.connected:
            self.connected = True
            say("CONNECTED")
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            ice = rtc.get_property("ice-connection-state")
            if ice in (GstWebRTC.WebRTCICEConnectionState.CONNECTED,
                       GstWebRTC.WebRTCICEConnectionState.COMPLETED):
                why = "the DTLS handshake failed (ICE had connected)"
            else:
                why = f"ICE failed ({ice.value_nick})"
            GLib.idle_add(self.fail, f"the peer connection failed: {why}")

    def on_error(self, _: Any, message: Gst.Message) -> None:
        err, debug = message.parse_error()
        self.fail(f"{message.src.get_name()}: {err.message} ({debug})")

    def on_warning(self, _: Any, message: Gst.Message) -> None:
        err, debug = message.parse_warning()
        say(f"WARNING: {message.src.get_name()}: {err.message} ({debug})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="the WHIP endpoint, e.g. http://127.0.0.1:8000/whip/demo")
    p.add_argument("--token", help="the host's bearer token")
    p.add_argument("--video", required=True, help="an MP4/MOV file to decode and loop")
    p.add_argument("--codec", choices=sorted(VIDEO_ENCODERS), default="h264")
    p.add_argument("--no-audio", dest="audio", action="store_false")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--kbps", type=int, default=1200)
    p.add_argument("--max-frames", type=int, default=150,
                   help="frames of the file to loop (memory: width x height x 1.5 each)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (0: until killed)")
    p.add_argument("--print-offer", action="store_true")
    args = p.parse_args(argv)
    Gst.init(None)
    frames = decode_frames(args.video, args.width, args.height, args.max_frames)
    if not frames:
        say(f"ERROR: no frames decoded from {args.video}")
        return 1
    say(f"DECODED {len(frames)} frames")
    return Publisher(args, frames).run()


if __name__ == "__main__":
    sys.exit(main())
