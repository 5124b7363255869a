"""Tokens: random or derived, none reads as a command-line option."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pytest

from arengine.errors import UserError
from arengine.keys import ServerKeys, new_token, spell_token

URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_leading_dash_is_swapped_and_nothing_else_changes() -> None:
    raw = b"\xfb" + bytes(range(1, 24))  # base64 of 0xfb.. starts with "-"
    plain = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert plain.startswith("-")
    assert spell_token(raw) == "_" + plain[1:]
    other = bytes(range(24))
    assert spell_token(other) == base64.urlsafe_b64encode(other).rstrip(b"=").decode()


def test_random_tokens_never_start_with_a_dash() -> None:
    # One in 64 plain tokens starts with "-": among 2,000 the odds of seeing none are 2e-14.
    tokens = [new_token() for _ in range(2000)]
    assert all(not t.startswith("-") for t in tokens)
    assert all(len(t) == 32 and set(t) <= URL_SAFE for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_every_token_passes_as_an_option_value(tmp_path: Path) -> None:
    """What failed a GStreamer publisher: ``--token -abc`` is refused by argparse."""
    keys = ServerKeys(tmp_path / "a.keys")
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--token")
    derived = [keys.token(f"host:r{i}") for i in range(500)]
    assert all(not t.startswith("-") and len(t) == 43 for t in derived)
    for token in derived[:100] + [new_token() for _ in range(100)]:
        assert parser.parse_args(["--token", token]).token == token


def test_derived_tokens_are_stable_and_distinct(tmp_path: Path) -> None:
    path = tmp_path / "b.keys"
    first = ServerKeys(path)
    again = ServerKeys(path)
    assert first.token("admin") == again.token("admin")
    assert first.token("admin") != first.token("host:demo")
    assert ServerKeys(tmp_path / "c.keys").token("admin") != first.token("admin")


def test_a_broken_key_file_is_one_readable_error(tmp_path: Path) -> None:
    path = tmp_path / "d.keys"
    path.write_text(json.dumps({"secret": "ab"}), encoding="utf-8")
    with pytest.raises(UserError, match=r"unreadable.*delete it"):
        ServerKeys(path)
