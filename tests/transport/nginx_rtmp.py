"""A private nginx-rtmp for the RTMP tests: a platform-style ingest on a free loopback port
that also writes HLS, and, for RTMPS, a TLS front (nginx's stream module) with a CA and a
server certificate made for the test.

nginx runs in the foreground with its own config, pid file and error log in a test folder,
in a process group of its own, so :meth:`NginxRtmp.kill` takes the master and its workers
down at once (a far end that vanishes) and :meth:`NginxRtmp.start` brings it back on the
same ports.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
PACKAGES = "nginx-light libnginx-mod-rtmp libnginx-mod-stream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_or_skip(tls: bool = False) -> str:
    """The nginx binary with the RTMP (and for ``tls`` the stream) module; missing is a
    skip locally and a failure under CI=true."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    missing = [str(p) for p in (RTMP_MODULE, *((STREAM_MODULE,) if tls else ()))
               if not p.exists()]
    if nginx is None or missing:
        what = "nginx" if nginx is None else ", ".join(missing)
        message = f"{what} not found: apt-get install {PACKAGES}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return nginx


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the test CA's certificate (what a client must trust)
    cert: Path  # the server's chain: its certificate, signed by the CA
    key: Path


def make_tls(folder: Path, host: str = "localhost") -> TlsFiles:
    """A CA and a server certificate for ``host`` (a DNS name only: connecting by IP
    must fail the host name check)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arengine test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(pem))
    files.cert.write_bytes(cert.public_bytes(pem))
    files.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


class NginxRtmp:
    """nginx with ``application live`` (live, HLS) on ``port``; with ``tls``, an RTMPS
    front on ``tls_port`` that hands the stream to the same application."""

    def __init__(self, folder: Path, tls: TlsFiles | None = None) -> None:
        self.nginx = nginx_or_skip(tls is not None)
        self.folder = folder
        self.hls = folder / "hls"
        self.hls.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.conf = folder / "nginx.conf"
        self.error_log = folder / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_conf()

    def url(self, key: str, host: str = "127.0.0.1") -> str:
        return f"rtmp://{host}:{self.port}/live/{key}"

    def rtmps_url(self, key: str, host: str = "localhost") -> str:
        return f"rtmps://{host}:{self.tls_port}/live/{key}"

    def _write_conf(self) -> None:
        f = self.folder
        # Workers run as "nobody" under a root master and could not write HLS into a
        # private test folder: run them as whoever runs the tests.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        module = block = ""
        if self.tls is not None:
            module = f"load_module {STREAM_MODULE};\n"
            block = f"""
stream {{
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {self.tls.cert};
        ssl_certificate_key {self.tls.key};
        proxy_pass 127.0.0.1:{self.port};
    }}
}}
"""
        self.conf.write_text(f"""load_module {RTMP_MODULE};
{module}daemon off;
master_process on;
worker_processes 1;
{user}pid {f / "nginx.pid"};
error_log {self.error_log} info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        application live {{
            live on;
            wait_key on;
            hls on;
            hls_path {self.hls};
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}
{block}""")

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [self.nginx, "-c", str(self.conf), "-p", str(self.folder), "-e",
             str(self.error_log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        while ports:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited at start: {err}\n{self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", ports[0]), timeout=0.2):
                    ports.pop(0)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not listen in time") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL to the master and its workers: every connection drops at once."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def playlists(self) -> list[Path]:
        return sorted(self.hls.glob("*.m3u8"))


@contextmanager
def nginx_rtmp(folder: Path, tls: TlsFiles | None = None) -> Iterator[NginxRtmp]:
    """A started :class:`NginxRtmp`, killed at the end whatever happened."""
    server = NginxRtmp(folder, tls)
    try:
        server.start()
        yield server
    finally:
        server.kill()
