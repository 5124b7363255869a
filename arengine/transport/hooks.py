"""Every place arengine reaches into aiortc's private parts, and the start-up check on them.

aiortc has no public way to do several things a live server needs: complete video frames on
the RTP marker bit, announce a fixed receive bitrate, write the playout-delay extension,
narrow an answerer's codecs, route keyframe requests to a shared encoder, ask a sender for a
keyframe, time decoding, and talk DTLS to peers with RSA certificates (GStreamer, for one).
Each of those swaps a private attribute or wraps a private function, which any aiortc
release may rename. So they all live here, each one a named :class:`Hook` with a check, the
version range they were verified against is pinned in ``pyproject.toml``, and
:func:`verify_hooks`, run once when the server starts, fails loudly naming the hook that no
longer applies, instead of a stream quietly losing a frame of latency or a publisher failing
its handshake. (Every peer session also installs the DTLS hook itself,
:func:`allow_rsa_dtls`, so RSA peers never depend on the start-up call having run.)

The modules that use the hooks keep their own logic (:mod:`~arengine.transport.jitter`,
:mod:`~arengine.transport.bitrate`, :mod:`~arengine.transport.playout`,
:mod:`~arengine.transport.whep`, :mod:`~arengine.transport.whip`) and call the accessors
below; an accessor returns None (or False) where the private part is missing, and the caller
logs and carries on without its improvement.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiortc
from aiortc import (
    RTCCertificate,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    rtcdtlstransport,
    rtcpeerconnection,
    rtcrtpreceiver,
    rtp,
)
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from OpenSSL import SSL

# The aiortc releases these hooks were read against and tested with (1.16.0); the same
# bounds are in pyproject.toml. Widen both only after verify_hooks and tests/transport pass.
AIORTC_MIN = (1, 16)
AIORTC_BELOW = (1, 17)

# The DTLS 1.2 suites aiortc 1.16 sets (rtcdtlstransport.RTCCertificate._create_ssl_context):
# ECDHE-ECDSA only, which need an ECDSA certificate on the DTLS server. aiortc answers a WHIP
# offer as the DTLS client, so a publisher with an RSA certificate (GStreamer's webrtcbin
# makes one) finds no shared cipher and the handshake fails. The hooked context offers
# aiortc's suites first, then these forward-secret ECDHE-RSA AEAD suites. (pyOpenSSL
# cannot read a context's list without freezing it, hence aiortc's list written out here
# and compared with what aiortc sets when the hooks are verified.)
AIORTC_DTLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305",
                       "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA")
RSA_DTLS_CIPHERS = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                    "ECDHE-RSA-CHACHA20-POLY1305")

_JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
_HEADER_MAP_ATTR = "_RTCRtpSender__rtp_header_extensions_map"
_HOOKED = "_arengine_hook"  # marks a function this module put in aiortc's place

T = TypeVar("T")


class HookError(RuntimeError):
    """aiortc no longer has what a hook patches; ``hooks`` names the ones that failed."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.hooks = tuple(failures)
        lines = [f"  {name}: {why}" for name, why in failures.items()]
        super().__init__(
            f"aiortc {aiortc.__version__} does not fit arengine's hooks into its private "
            f"parts (verified for >={_dotted(AIORTC_MIN)},<{_dotted(AIORTC_BELOW)}):\n"
            + "\n".join(lines))


@dataclass(frozen=True)
class Hook:
    """One reach into aiortc: what it touches, and a check that raises if it cannot."""

    name: str
    touches: str
    check: Callable[[], None]


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def aiortc_version() -> tuple[int, ...]:
    """The installed aiortc's (major, minor[, patch]) from its ``__version__``."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(aiortc.__version__))
    if m is None:
        raise ValueError(f"cannot read aiortc's version {aiortc.__version__!r}")
    return tuple(int(x) for x in m.groups() if x is not None)


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise LookupError(why)


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _method(cls: type, name: str, params: list[str]) -> None:
    fn = inspect.getattr_static(cls, name, None)
    _need(callable(fn), f"{cls.__module__}.{cls.__qualname__}.{name} is gone")
    _need(_params(fn) == params, f"{cls.__qualname__}.{name} takes {_params(fn)}, "
                                 f"expected {params}")


class _StandInTransport:
    """Enough of an RTCDtlsTransport for aiortc's sender and receiver constructors."""

    state = "new"


def _in_a_loop(build: Callable[[], T]) -> T:
    """Run ``build`` where aiortc's constructors find an event loop (they ask for one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async def run() -> T:
            return build()

        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(run())
        finally:
            loop.close()
    return build()


# -- checks -----------------------------------------------------------------------------

def _check_version() -> None:
    v = aiortc_version()[:2]
    _need(AIORTC_MIN <= v < AIORTC_BELOW,
          f"aiortc {aiortc.__version__} is outside >={_dotted(AIORTC_MIN)},"
          f"<{_dotted(AIORTC_BELOW)}")


def _dtls12_ciphers(ctx: SSL.Context) -> list[str]:
    """The (D)TLS 1.2 suites a context offers; it cannot be changed after this."""
    return [c for c in SSL.Connection(ctx).get_cipher_list() if not c.startswith("TLS_")]


def _check_dtls_ciphers() -> None:
    _method(RTCCertificate, "_create_ssl_context", ["self", "srtp_profiles"])
    profiles = getattr(rtcdtlstransport, "SRTP_PROFILES", None)
    if not isinstance(profiles, list):
        raise LookupError("aiortc.rtcdtlstransport.SRTP_PROFILES is gone")
    cert = RTCCertificate.generateCertificate()
    create = inspect.getattr_static(RTCCertificate, "_create_ssl_context")
    original = getattr(create, "__wrapped__", create)
    ctx = original(cert, profiles)
    _need(isinstance(ctx, SSL.Context), "RTCCertificate._create_ssl_context no longer "
                                        "returns an OpenSSL context")
    own = _dtls12_ciphers(ctx)
    _need(own == list(AIORTC_DTLS_CIPHERS),
          f"aiortc's DTLS suites are now {own}, not {list(AIORTC_DTLS_CIPHERS)}")
    allow_rsa_dtls()
    hooked = _dtls12_ciphers(cert._create_ssl_context(srtp_profiles=profiles))
    _need(hooked == [*AIORTC_DTLS_CIPHERS, *RSA_DTLS_CIPHERS],
          f"the hooked DTLS context offers {hooked}")


def _check_decoder_factory() -> None:
    fn = getattr(rtcrtpreceiver, "get_decoder", None)
    _need(callable(fn), "aiortc.rtcrtpreceiver.get_decoder is gone")
    _need(_params(fn) == ["codec"], f"aiortc.rtcrtpreceiver.get_decoder takes "
                                    f"{_params(fn)}, expected ['codec']")


def _check_jitter_buffer() -> None:
    _method(JitterBuffer, "_remove_frame", ["self", "sequence_number"])
    _method(JitterBuffer, "remove", ["self", "count"])
    _need(_params(JitterBuffer.__init__) == ["self", "capacity", "prefetch", "is_video"],
          f"JitterBuffer() takes {_params(JitterBuffer.__init__)}")
    _need(_params(JitterFrame.__init__) == ["self", "data", "timestamp"],
          f"JitterFrame() takes {_params(JitterFrame.__init__)}")
    buf = JitterBuffer(capacity=4, is_video=True)
    for attr in ("_origin", "_packets", "capacity"):
        _need(hasattr(buf, attr), f"JitterBuffer has no {attr}")
    # The depayloaded payload a frame is joined from: the receiver sets it on each packet.
    _need("._data = " in inspect.getsource(rtcrtpreceiver.RTCRtpReceiver),
          "RTCRtpReceiver no longer stores depayloaded data as packet._data")
    receiver = RTCRtpReceiver("video", _StandInTransport())  # type: ignore[arg-type]
    _need(isinstance(getattr(receiver, _JITTER_BUFFER_ATTR, None), JitterBuffer),
          f"a video RTCRtpReceiver has no {_JITTER_BUFFER_ATTR}")


def _check_bitrate_estimator() -> None:
    receiver = RTCRtpReceiver("video", _StandInTransport())  # type: ignore[arg-type]
    est = bitrate_estimator(receiver)
    if est is None:
        raise LookupError(f"a video RTCRtpReceiver has no {_ESTIMATOR_ATTR} with an add()")
    want = ["arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]
    _need(_params(est.add) == want, f"the bitrate estimator's add() takes "
                                    f"{_params(est.add)}, expected {want}")


def _check_header_extensions() -> None:
    _method(rtp.HeaderExtensionsMap, "configure", ["self", "parameters"])
    _method(rtp.HeaderExtensionsMap, "set", ["self", "values"])
    for fn in ("pack_header_extensions", "unpack_header_extensions"):
        _need(callable(getattr(rtp, fn, None)), f"aiortc.rtp.{fn} is gone")
    sender = _in_a_loop(lambda: RTCRtpSender("video", _StandInTransport()))  # type: ignore[arg-type]
    _need(isinstance(getattr(sender, _HEADER_MAP_ATTR, None), rtp.HeaderExtensionsMap),
          f"RTCRtpSender has no {_HEADER_MAP_ATTR}")
    _need(isinstance(_probe_transceiver()._headerExtensions, list),
          "RTCRtpTransceiver has no _headerExtensions list")


def _check_negotiated_codecs() -> None:
    fn = getattr(rtcpeerconnection, "filter_preferred_codecs", None)
    _need(callable(fn), "aiortc.rtcpeerconnection.filter_preferred_codecs is gone")
    _need(_params(fn) == ["codecs", "preferred"],
          f"filter_preferred_codecs takes {_params(fn)}, expected ['codecs', 'preferred']")
    _need(isinstance(_probe_transceiver()._codecs, list),
          "RTCRtpTransceiver has no _codecs list")


def _check_keyframe_requests() -> None:
    _method(RTCRtpSender, "_send_keyframe", ["self"])


def _check_picture_loss() -> None:
    _method(RTCRtpReceiver, "_send_rtcp_pli", ["self", "media_ssrc"])
    _need(inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp_pli),
          "RTCRtpReceiver._send_rtcp_pli is no longer a coroutine")


def _probe_transceiver() -> RTCRtpTransceiver:
    def build() -> RTCRtpTransceiver:
        t = _StandInTransport()
        return RTCRtpTransceiver("video", RTCRtpReceiver("video", t),  # type: ignore[arg-type]
                                 RTCRtpSender("video", t))  # type: ignore[arg-type]

    return _in_a_loop(build)


HOOKS: tuple[Hook, ...] = (
    Hook("aiortc-version", "aiortc.__version__", _check_version),
    Hook("dtls-ciphers", "RTCCertificate._create_ssl_context", _check_dtls_ciphers),
    Hook("decode-timing", "aiortc.rtcrtpreceiver.get_decoder", _check_decoder_factory),
    Hook("marker-jitter-buffer", f"JitterBuffer._remove_frame, RTCRtpReceiver."
         f"{_JITTER_BUFFER_ATTR}", _check_jitter_buffer),
    Hook("announced-bitrate", f"RTCRtpReceiver.{_ESTIMATOR_ATTR}", _check_bitrate_estimator),
    Hook("playout-delay", f"RTCRtpSender.{_HEADER_MAP_ATTR}, RTCRtpTransceiver."
         "_headerExtensions, aiortc.rtp.HeaderExtensionsMap", _check_header_extensions),
    Hook("answer-codecs", "RTCRtpTransceiver._codecs, filter_preferred_codecs",
         _check_negotiated_codecs),
    Hook("shared-keyframes", "RTCRtpSender._send_keyframe", _check_keyframe_requests),
    Hook("picture-loss", "RTCRtpReceiver._send_rtcp_pli", _check_picture_loss),
)


def verify_hooks(hooks: Iterable[Hook] = HOOKS) -> tuple[str, ...]:
    """Check every hook against the installed aiortc and install the process-wide ones.

    Call once when the server starts. Returns the names of the hooks checked; raises
    :class:`HookError` naming each hook that no longer applies, with the reason.
    """
    failures: dict[str, str] = {}
    names = []
    for hook in hooks:
        names.append(hook.name)
        try:
            hook.check()
        except Exception as e:  # any way a check breaks means the hook does not apply
            failures[hook.name] = f"{e or type(e).__name__} (patches {hook.touches})"
    if failures:
        raise HookError(failures)
    return tuple(names)


# -- DTLS: ECDHE-RSA suites -------------------------------------------------------------

def allow_rsa_dtls() -> None:
    """Let aiortc's DTLS contexts offer :data:`RSA_DTLS_CIPHERS` too (idempotent).

    Wraps ``RTCCertificate._create_ssl_context``, where aiortc builds each connection's
    OpenSSL context and sets its cipher list; aiortc's own suites stay first, in order.
    """
    original = inspect.getattr_static(RTCCertificate, "_create_ssl_context", None)
    if getattr(original, _HOOKED, False):
        return
    if not callable(original) or _params(original) != ["self", "srtp_profiles"]:
        raise HookError({"dtls-ciphers": "RTCCertificate._create_ssl_context is gone or "
                                         "takes other arguments"})

    ciphers = ":".join([*AIORTC_DTLS_CIPHERS, *RSA_DTLS_CIPHERS]).encode()

    @functools.wraps(original)
    def create_ssl_context(self: RTCCertificate, srtp_profiles: list[Any]) -> SSL.Context:
        ctx = original(self, srtp_profiles)
        ctx.set_cipher_list(ciphers)
        return ctx

    setattr(create_ssl_context, _HOOKED, True)
    RTCCertificate._create_ssl_context = create_ssl_context  # type: ignore[method-assign]


# -- decoding ---------------------------------------------------------------------------

def wrap_decoders(wrap: Callable[[Any, Any], Any]) -> None:
    """Pass every decoder aiortc's receivers make through ``wrap(codec, decoder)``.

    aiortc builds decoders with ``aiortc.rtcrtpreceiver.get_decoder``; this replaces that
    name. Installing the same ``wrap`` again changes nothing.
    """
    current = rtcrtpreceiver.get_decoder
    if getattr(current, _HOOKED, None) is wrap:
        return
    original = getattr(current, "__wrapped__", current) if getattr(current, _HOOKED, None) \
        else current

    @functools.wraps(original)
    def get_decoder(codec: Any) -> Any:
        return wrap(codec, original(codec))

    setattr(get_decoder, _HOOKED, wrap)
    rtcrtpreceiver.get_decoder = get_decoder


# -- receivers: jitter buffer and bitrate estimator ---------------------------------------

class OpenJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, its private frame-completion step open to subclasses.

    aiortc calls ``_remove_frame`` after each packet is stored; here that asks
    :meth:`next_frame`, which a subclass overrides using :meth:`packet_at` and
    :meth:`take_frame` instead of aiortc's private fields.
    """

    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity=capacity, is_video=True)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        return self.next_frame()

    def next_frame(self) -> JitterFrame | None:
        """The next complete frame, if any (default: aiortc's rule)."""
        return super()._remove_frame(0)

    def packet_at(self, offset: int) -> RtpPacket | None:
        """The packet ``offset`` places after the oldest one kept (None: a gap, or empty)."""
        if self._origin is None:
            return None
        return self._packets[(self._origin + offset) % self.capacity]

    def take_frame(self, packets: list[RtpPacket], timestamp: int, count: int) -> JitterFrame:
        """Join ``packets``' payloads into a frame and drop the ``count`` oldest slots."""
        frame = JitterFrame(data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
                            timestamp=timestamp)
        self.remove(count)
        return frame


def jitter_buffer(receiver: Any) -> JitterBuffer | None:
    """An aiortc video receiver's jitter buffer (None: not an aiortc receiver we know)."""
    current = getattr(receiver, _JITTER_BUFFER_ATTR, None)
    return current if isinstance(current, JitterBuffer) else None


def set_jitter_buffer(receiver: Any, buffer: JitterBuffer) -> bool:
    """Replace a receiver's jitter buffer; call before its first packet. False if it has none."""
    if jitter_buffer(receiver) is None:
        return False
    setattr(receiver, _JITTER_BUFFER_ATTR, buffer)
    return True


def bitrate_estimator(receiver: Any) -> Any | None:
    """A video receiver's remote bitrate estimator (an object with ``add``), or None."""
    current = getattr(receiver, _ESTIMATOR_ATTR, None)
    return current if callable(getattr(current, "add", None)) else None


def set_bitrate_estimator(receiver: Any, estimator: Any) -> bool:
    """Replace a receiver's estimator (whose ``add`` results aiortc sends as REMB)."""
    if bitrate_estimator(receiver) is None:
        return False
    setattr(receiver, _ESTIMATOR_ATTR, estimator)
    return True


# -- senders and transceivers ------------------------------------------------------------

def set_header_extensions_map(sender: Any, ext_map: rtp.HeaderExtensionsMap) -> bool:
    """Give a sender the map that writes its packets' header extensions; False if it has none.

    aiortc configures the map when the sender starts, from the transceiver's negotiated
    extensions (see :func:`add_negotiated_header_extension`).
    """
    if not isinstance(getattr(sender, _HEADER_MAP_ATTR, None), rtp.HeaderExtensionsMap):
        return False
    setattr(sender, _HEADER_MAP_ATTR, ext_map)
    return True


def add_negotiated_header_extension(transceiver: Any, ext_id: int, uri: str) -> None:
    """Add ``uri`` (with the offer's ``ext_id``) to what the answer negotiates and the
    sender writes; between setRemoteDescription and createAnswer."""
    exts = list(getattr(transceiver, "_headerExtensions", []))
    if not any(e.uri == uri for e in exts):
        exts.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))
        transceiver._headerExtensions = exts


def negotiated_codecs(transceiver: Any) -> list[RTCRtpCodecParameters]:
    """The codecs a transceiver negotiated, best first (empty before negotiation)."""
    return list(getattr(transceiver, "_codecs", None) or [])


def narrow_negotiated_codecs(transceiver: Any,
                             preferred: list[RTCRtpCodecCapability]) -> list[RTCRtpCodecParameters]:
    """Keep only ``preferred`` codecs in what an answerer negotiated; the kept list.

    aiortc applies codec preferences when it reads an offer, which for an answerer has
    already happened when the server chooses the codec.
    """
    codecs = rtcpeerconnection.filter_preferred_codecs(negotiated_codecs(transceiver),
                                                       preferred)
    transceiver._codecs = codecs
    return list(codecs)


def route_keyframe_requests(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """Send a viewer's PLI/FIR to ``request`` instead of aiortc's per-sender encoder
    (there is none for pre-encoded packets)."""
    sender._send_keyframe = request  # type: ignore[method-assign]


async def report_picture_loss(receiver: RTCRtpReceiver) -> bool:
    """Ask the far sender of a video receiver's stream for a keyframe now (RTCP PLI), as a
    player does when it lost one; False before any packet came. aiortc sends PLIs only from
    its own loss detection, so a client (a test, a benchmark) that wants one asks here."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    await receiver._send_rtcp_pli(sources[0].source)
    return True
