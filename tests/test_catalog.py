"""The bundled shade catalog and its validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arengine.catalog import (
    FINISHES,
    LANGUAGES,
    Shade,
    ShadeCatalog,
    UnknownShadeError,
    default_catalog,
)
from arengine.errors import UserError


def _write(tmp_path: Path, shades: Any) -> Path:
    p = tmp_path / "shades.json"
    p.write_text(json.dumps({"shades": shades}), encoding="utf-8")
    return p


GOOD = {"id": "test-red", "name": "Test Red", "line": "Test", "hex": "#B0223A",
        "finish": "matte", "opacity": 0.9}


def test_bundled_catalog_covers_the_range() -> None:
    cat = ShadeCatalog.load()
    assert len(cat) >= 24
    assert len(cat.lines()) >= 4
    assert set(FINISHES) == {s.finish for s in cat}
    assert len(set(cat.ids())) == len(cat)
    assert any(s.liner_hex for s in cat) and any(s.ombre_inner_hex for s in cat)
    for s in cat:
        assert set(LANGUAGES) <= set(s.names), s.id
        assert s.display_name("en") == s.name
    assert sum(1 for _ in cat) == len(cat)
    assert "velvet-ruby" in cat


def test_default_catalog_is_read_once() -> None:
    assert default_catalog() is default_catalog()


def test_shade_colour_helpers() -> None:
    red = Shade("r", "Red", "L", "#FF0000", "matte")
    assert red.bgr == (0, 0, 255)
    assert red.lab == pytest.approx((53.2, 80.1, 67.2), abs=1.0)


def test_get_unknown_id_lists_valid_ids() -> None:
    cat = ShadeCatalog.load()
    with pytest.raises(UnknownShadeError) as err:
        cat.get("no-such-shade")
    assert isinstance(err.value, KeyError) and isinstance(err.value, UserError)
    msg = str(err.value)
    assert "no-such-shade" in msg and "velvet-ruby" in msg and "star-bronze" in msg
    assert not msg.startswith('"')


def test_a_good_minimal_catalog_loads(tmp_path: Path) -> None:
    cat = ShadeCatalog.load(_write(tmp_path, [GOOD, {**GOOD, "id": "b", "finish": "gloss",
                                                     "liner_hex": "#550011",
                                                     "liner_width": 0.02}]))
    assert cat.ids() == ["test-red", "b"]
    assert cat.get("b").liner_hex == "#550011"
    assert cat.get("test-red").liner_width == 0.0


@pytest.mark.parametrize(("change", "words"), [
    ({"hex": "red"}, ["test-red", "hex"]),
    ({"hex": "#12345"}, ["test-red", "hex"]),
    ({"finish": "velvet"}, ["test-red", "finish", "matte"]),
    ({"opacity": 1.5}, ["test-red", "opacity"]),
    ({"opacity": 0}, ["test-red", "opacity"]),
    ({"opacity": "high"}, ["test-red", "opacity"]),
    ({"name": ""}, ["test-red", "name"]),
    ({"liner_hex": "#101010"}, ["test-red", "liner_width"]),
    ({"liner_hex": "#101010", "liner_width": 0.5}, ["test-red", "liner_width"]),
    ({"ombre_inner_hex": "#101010", "ombre_ratio": 2}, ["test-red", "ombre_ratio"]),
    ({"ombre_inner_hex": "#xyzxyz", "ombre_ratio": 0.4}, ["test-red", "ombre_inner_hex"]),
    ({"colour": "#101010"}, ["test-red", "colour"]),
    ({"names": {"zh": 3}}, ["test-red", "names"]),
    ({"id": "Bad Id"}, ["Bad Id", "id"]),
])
def test_bad_values_name_shade_and_field(tmp_path: Path, change: dict[str, Any],
                                         words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        ShadeCatalog.load(_write(tmp_path, [{**GOOD, **change}]))
    for w in words:
        assert w in str(err.value)


def test_missing_field_is_named(tmp_path: Path) -> None:
    bad = dict(GOOD)
    del bad["line"]
    with pytest.raises(ValueError, match=r"shade 'test-red': missing field 'line'"):
        ShadeCatalog.load(_write(tmp_path, [bad]))


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"test-red.*duplicate"):
        ShadeCatalog.load(_write(tmp_path, [GOOD, GOOD]))


def test_broken_json_and_shapes_are_readable(tmp_path: Path) -> None:
    p = tmp_path / "shades.json"
    p.write_text('{"shades": [', encoding="utf-8")
    with pytest.raises(ValueError, match=r"not valid JSON.*line 1"):
        ShadeCatalog.load(p)
    p.write_text('[1, 2]', encoding="utf-8")
    with pytest.raises(ValueError, match='"shades" list'):
        ShadeCatalog.load(p)
    with pytest.raises(ValueError, match="no shades"):
        ShadeCatalog.load(_write(tmp_path, []))
    with pytest.raises(ValueError, match=r"shade #0: expected an object"):
        ShadeCatalog.load(_write(tmp_path, ["red"]))
    with pytest.raises(ValueError, match="not found"):
        ShadeCatalog.load(tmp_path / "missing.json")


def test_round_trip_through_dict() -> None:
    for s in ShadeCatalog.load():
        assert Shade.from_dict(s.to_dict()) == s
