"""Settings: one object from flags over environment variables, one table in README."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from arengine.errors import UserError
from arengine.interaction.ratelimit import Rate
from arengine.settings import OPTIONS, Settings, add_arguments, settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def parse(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return Settings.from_args(p.parse_args(argv), env or {})


def test_defaults_are_secure() -> None:
    s = Settings.from_env({})
    assert s.host == "127.0.0.1" and not s.open_rooms and not s.trust_proxy
    assert s.admin_token is None  # made once and kept in the key file
    assert s.limits.joins is not None and s.limits.comments is not None
    assert s.limits.connect_timeout_s == 30.0 and s.db_sync == "FULL"
    assert s.keys_path == "arengine.keys"


def test_environment_and_flags_flags_win() -> None:
    env = {"ARENGINE_DB": "/srv/env.db", "ARENGINE_DB_SYNC": "normal", "ARENGINE_PORT": "9000",
           "ARENGINE_ADMIN_TOKEN": "an-admin-token-of-24-chars", "ARENGINE_HANDS": "0",
           "ARENGINE_LIMIT_JOINS": "10/60", "ARENGINE_ICE_SERVERS": "stun:a:1,stun:b:2",
           "ARENGINE_BITRATE": "1500", "ARENGINE_DEMO": "no"}
    s = Settings.from_env(env)
    assert (s.db, s.db_sync, s.port) == ("/srv/env.db", "NORMAL", 9000)
    assert s.admin_token == "an-admin-token-of-24-chars" and s.keys_path == "/srv/env.keys"
    assert s.room.track_hands is False and s.room.bitrate == 1_500_000
    assert s.limits.joins == Rate(10, 10 / 60) and s.ice_servers == ("stun:a:1", "stun:b:2")
    assert not s.demo and not s.room.demo
    s = parse(["--db", "flag.db", "--port", "9100", "--hands", "--limit-joins", "off",
               "--ice-server", "stun:c:3", "--demo"], env)
    assert (s.db, s.port, s.room.track_hands, s.limits.joins) == ("flag.db", 9100, True, None)
    assert s.ice_servers == ("stun:c:3",) and s.demo and s.room.demo
    assert s.db_sync == "NORMAL"  # no flag given: the environment shows through


@pytest.mark.parametrize(("env", "words"), [
    ({"ARENGINE_PORT": "eighty"}, "ARENGINE_PORT: must be a whole number"),
    ({"ARENGINE_PORT": "0"}, "ARENGINE_PORT: must be between 1 and 65535"),
    ({"ARENGINE_DB_SYNC": "sometimes"}, "ARENGINE_DB_SYNC: must be one of FULL, NORMAL"),
    ({"ARENGINE_ADMIN_TOKEN": "short"}, "ARENGINE_ADMIN_TOKEN: must be at least 16"),
    ({"ARENGINE_LIMIT_JOINS": "lots"}, "ARENGINE_LIMIT_JOINS: must be COUNT/SECONDS"),
    ({"ARENGINE_SIZE": "big"}, "ARENGINE_SIZE: must look like 1280x720"),
    ({"ARENGINE_EFFECTS": "lipstick,glitter"}, "unknown effect 'glitter'"),
    ({"ARENGINE_OPEN_ROOMS": "maybe"}, "must be true or false"),
    ({"ARENGINE_DEMO_SHADE": "no-such-shade"}, "unknown shade"),
])
def test_bad_values_name_where_they_came_from(env: dict[str, str], words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)):
        Settings.from_env(env)


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(UserError, match="--fps: must be between 1 and 60"):
        parse(["--fps", "0"])


def test_secrets_have_no_flag() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert "--admin-token" not in p.format_help()  # a flag would show in `ps`


def test_readme_has_the_settings_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert settings_table() in text, "README's settings table differs from arengine.settings"
    for o in OPTIONS:
        assert o.env in text
