"""The server's key file: the secret from which its stable tokens are derived.

The database keeps only hashes of tokens, so a copy of it grants nothing; but an operator
needs some tokens to survive a restart: the admin token (to create rooms) and the demo
room's host token (an OBS set-up that publishes to the demo room broke on every restart
when it was rotated at start). Both are derived from one random secret kept in a file
beside the database, readable by its owner only (mode 0600), like an SSH key. Deleting
the file rotates both at the next start.

Tokens are spelled so that none starts with "-": URL-safe base64 does so one time in 64,
and then ``--token TOKEN`` on a command line reads as an unknown option (argparse,
gst-launch and curl all refuse it), which failed a GStreamer publisher at random.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from arengine.errors import UserError


def spell_token(raw: bytes) -> str:
    """URL-safe base64 without padding, a leading "-" swapped for "_" (costs under 1 bit)."""
    text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return "_" + text[1:] if text.startswith("-") else text


def new_token(nbytes: int = 24) -> str:
    """A fresh random token of ``nbytes`` bytes (24: 192 bits, 32 characters)."""
    return spell_token(secrets.token_bytes(nbytes))


class ServerKeys:
    """Tokens derived from the secret in ``path`` (created on first use)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._secret = self._load()

    def _load(self) -> bytes:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            secret = bytes.fromhex(data["secret"])
            if len(secret) < 32:
                raise ValueError("secret too short")
            return secret
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"the key file {self.path} is unreadable ({type(e).__name__}); "
                            "delete it to make a new one (this rotates the admin and demo "
                            "host tokens)") from None
        secret = secrets.token_bytes(32)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # as the database's folder
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"secret": secret.hex()}, f)
        except FileExistsError:  # another process made it first: use theirs
            return self._load()
        except OSError as e:
            raise UserError(f"cannot write the key file {self.path}: {e.strerror}") from None
        return secret

    def token(self, purpose: str) -> str:
        """A stable token for ``purpose`` (e.g. "admin", "host:demo"), 43 URL-safe chars.

        Only the 1 in 64 tokens that began with "-" changed when that was ruled out.
        """
        return spell_token(hmac.new(self._secret, purpose.encode(), hashlib.sha256).digest())
