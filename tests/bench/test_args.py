"""The arguments the benchmark scripts share: good values parse, bad ones exit 2 with one line."""

from __future__ import annotations

import argparse

import pytest

from arengine.bench.args import compositors, frame_size


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="bench")


def test_good_values_parse() -> None:
    assert frame_size(parser(), "1280x720") == (1280, 720)
    assert frame_size(parser(), "160x120", smallest=(160, 120)) == (160, 120)
    assert compositors(parser(), "process, thread") == ["process", "thread"]
    assert compositors(parser(), "thread") == ["thread"]


@pytest.mark.parametrize("call, message", [
    (lambda ap: frame_size(ap, "big"), "--size takes WxH from 320x240 to 3840x2160"),
    (lambda ap: frame_size(ap, "319x240"), "--size takes WxH"),
    (lambda ap: frame_size(ap, "160x120", example="854x480"), "e.g. 854x480"),
    (lambda ap: frame_size(ap, "4000x2000"), "--size takes WxH"),
    (lambda ap: compositors(ap, "gpu"), "--compositor takes"),
    (lambda ap: compositors(ap, "thread,thread"), "--compositor takes"),
    (lambda ap: compositors(ap, ""), "--compositor takes"),
])
def test_bad_values_exit_2_with_one_line(call, message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        call(parser())
    assert err.value.code == 2
    out = capsys.readouterr().err
    assert message in out and "Traceback" not in out
