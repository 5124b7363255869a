"""The hooks into aiortc's private parts: verified on the installed aiortc, a clear error
naming the hook when one stops applying, and the DTLS hook letting RSA-certificate peers in."""

from __future__ import annotations

import asyncio
import datetime

import aiortc
import pytest
from aiortc import RTCCertificate, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import SSL

from arengine.transport import hooks
from arengine.transport.hooks import HookError, verify_hooks


def test_every_hook_applies_to_the_installed_aiortc() -> None:
    names = verify_hooks()
    assert set(names) == {h.name for h in hooks.HOOKS}
    assert hooks.AIORTC_MIN <= hooks.aiortc_version()[:2] < hooks.AIORTC_BELOW


def test_verify_works_inside_a_running_loop_too() -> None:
    async def main() -> tuple[str, ...]:
        return verify_hooks()

    assert asyncio.run(main()) == verify_hooks()


@pytest.mark.parametrize(("cls", "attr", "hook"), [
    (RTCRtpSender, "_send_keyframe", "shared-keyframes"),
    (JitterBuffer, "_remove_frame", "marker-jitter-buffer"),
    (RTCCertificate, "_create_ssl_context", "dtls-ciphers"),
])
def test_a_missing_private_method_names_its_hook(monkeypatch: pytest.MonkeyPatch, cls: type,
                                                 attr: str, hook: str) -> None:
    monkeypatch.delattr(cls, attr)
    with pytest.raises(HookError) as err:
        verify_hooks()
    assert err.value.hooks == (hook,)
    assert hook in str(err.value) and attr in str(err.value)


def test_a_renamed_private_attribute_names_its_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    original = RTCRtpReceiver.__init__

    def init(self: RTCRtpReceiver, kind: str, transport: object) -> None:
        original(self, kind, transport)  # type: ignore[arg-type]
        # as if a release renamed the estimator
        self.__dict__["_RTCRtpReceiver__estimator"] = self.__dict__.pop(
            "_RTCRtpReceiver__remote_bitrate_estimator")

    monkeypatch.setattr(RTCRtpReceiver, "__init__", init)
    with pytest.raises(HookError) as err:
        verify_hooks()
    assert err.value.hooks == ("announced-bitrate",)
    assert "_RTCRtpReceiver__remote_bitrate_estimator" in str(err.value)


def test_an_aiortc_outside_the_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(HookError) as err:
        verify_hooks()
    assert "aiortc-version" in err.value.hooks
    assert "1.17.0 is outside >=1.16,<1.17" in str(err.value)


def test_a_changed_dtls_cipher_list_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    def create(self: RTCCertificate, srtp_profiles: list[object]) -> SSL.Context:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_cipher_list(b"ECDHE-ECDSA-AES256-GCM-SHA384")
        return ctx

    monkeypatch.setattr(RTCCertificate, "_create_ssl_context", create)
    with pytest.raises(HookError) as err:
        verify_hooks()
    assert err.value.hooks == ("dtls-ciphers",)
    assert "ECDHE-ECDSA-AES256-GCM-SHA384" in str(err.value)


def test_decoder_wrapping_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc import rtcrtpreceiver
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", rtcrtpreceiver.get_decoder)
    seen: list[str] = []

    def wrap(codec: RTCRtpCodecParameters, decoder: object) -> object:
        seen.append(codec.mimeType)
        return decoder

    hooks.wrap_decoders(wrap)
    hooks.wrap_decoders(wrap)
    rtcrtpreceiver.get_decoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000,
                                                     payloadType=96))
    assert seen == ["video/VP8"]


def rsa_certificate() -> RTCCertificate:
    """A self-signed RSA certificate, like the one GStreamer's DTLS makes for itself."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "gst-like")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return RTCCertificate(key=key, cert=cert)  # type: ignore[arg-type]


async def _connect_rsa_offerer(monkeypatch: pytest.MonkeyPatch,
                               timeout: float = 20.0) -> tuple[str, str | None]:
    """An offerer with an RSA certificate against a default aiortc answerer; the answerer's
    connection state once it settles, and the DTLS suite it got."""
    cert = rsa_certificate()
    with monkeypatch.context() as m:
        m.setattr(RTCCertificate, "generateCertificate", classmethod(lambda cls: cert))
        rsa_peer = RTCPeerConnection()
    ours = RTCPeerConnection()
    try:
        rsa_peer.createDataChannel("probe")
        await rsa_peer.setLocalDescription(await rsa_peer.createOffer())
        await ours.setRemoteDescription(rsa_peer.localDescription)
        await ours.setLocalDescription(await ours.createAnswer())
        # aiortc answers as the DTLS client, so the RSA offerer is the DTLS server and
        # picks the suite from what ours offers (GStreamer's place in a WHIP session).
        assert "a=setup:active" in ours.localDescription.sdp
        await rsa_peer.setRemoteDescription(RTCSessionDescription(
            ours.localDescription.sdp, "answer"))

        async def settled() -> None:
            while ours.connectionState not in ("connected", "failed", "closed"):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(settled(), timeout)
        suite = None
        sctp = ours.sctp
        if sctp is not None and ours.connectionState == "connected":
            ssl = getattr(sctp.transport, "_ssl", None)
            suite = ssl.get_cipher_name() if ssl is not None else None
        return ours.connectionState, suite
    finally:
        await ours.close()
        await rsa_peer.close()


@pytest.mark.slow
def test_an_rsa_certificate_peer_completes_the_dtls_handshake(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hooks.allow_rsa_dtls()
    state, suite = asyncio.run(_connect_rsa_offerer(monkeypatch))
    print(f"RSA-certificate peer: {state}, DTLS suite {suite}")
    assert state == "connected"
    assert suite in hooks.RSA_DTLS_CIPHERS


@pytest.mark.slow
def test_without_the_hook_an_rsa_peer_finds_no_shared_cipher(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hooks.allow_rsa_dtls()
    hooked = RTCCertificate._create_ssl_context
    monkeypatch.setattr(RTCCertificate, "_create_ssl_context",
                        hooked.__wrapped__)  # type: ignore[attr-defined]
    state, _ = asyncio.run(_connect_rsa_offerer(monkeypatch))
    assert state == "failed"  # what GStreamer publishers met before the hook
