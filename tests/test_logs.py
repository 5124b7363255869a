"""Native log noise on stderr: hidden by default, shown with ``--verbose``, nothing else lost.

MediaPipe writes its notes to file descriptor 2 from C++, so only a real process shows
what a user sees: each check runs one in a subprocess.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from arengine.cli import build_parser
from arengine.logs import is_native_noise

ROOT = Path(__file__).resolve().parents[1]
FEEDBACK = "inference_feedback_manager.cc"  # MediaPipe's note each time a graph is built
NOISE = [
    "W0000 00:00:1796121441.047470    9509 inference_feedback_manager.cc:114] Feedback "
    "manager requires a model with a single signature inference. Disabling support for "
    "feedback tensors.",
    "I0512 14:03:07.123456   42 gl_context.cc:369] GL version: 3.2",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("ARENGINE_NATIVE_LOGS", None)
    return e


def arengine(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arengine", *map(str, args)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)


def noise_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if is_native_noise(line.encode())]


def python(script: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)  # type: ignore[call-overload]


def test_noise_pattern() -> None:
    for line in NOISE:
        assert is_native_noise(line.encode()), line
    for line in ["arengine tryon: warning: no face found", "Traceback (most recent call last):",
                 "UserWarning: W0000 is not a log line", "E: something failed"]:
        assert not is_native_noise(line.encode()), line


@pytest.mark.parametrize("source", ["faces/obama-720p.jpg",
                                    "mediapipe_samples/gesture_recognizer_test_video.mp4"])
def test_tryon_hides_native_logs_unless_verbose(data_dir: Path, tmp_path: Path,
                                                 source: str) -> None:
    """A picture (image mode) and the 720p clip (video mode, where the graphs log most)."""
    ext = Path(source).suffix
    args: list[str | Path] = [data_dir / source, "-o", tmp_path / f"out{ext}", "--no-hands"]
    loud = arengine("tryon", *args, "--verbose")
    assert loud.returncode == 0, loud.stderr
    shown = noise_lines(loud.stderr)
    assert len(shown) >= 3 and any(FEEDBACK in line for line in shown), loud.stderr
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in shown
    (tmp_path / f"out{ext}").unlink()
    quiet = arengine("tryon", *args)
    assert quiet.returncode == 0, quiet.stderr
    assert noise_lines(quiet.stderr) == [] and FEEDBACK not in quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr  # a clean run says nothing at all
    assert (tmp_path / f"out{ext}").is_file() and quiet.stdout.startswith("wrote ")


def test_errors_and_warnings_still_come_through(data_dir: Path, tmp_path: Path) -> None:
    """A one-line CLI error and a warning, with the filter on, exactly as without it."""
    r = arengine("tryon", tmp_path / "missing.jpg", "-o", tmp_path / "o.jpg")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"arengine tryon: error: no such file: "
                                     f"{tmp_path / 'missing.jpg'}"]
    hand = data_dir / "mediapipe_samples" / "test_image.jpg"  # no face in it
    r = arengine("tryon", hand, "-o", tmp_path / "o.jpg", "--no-hands")
    assert r.returncode == 0
    assert r.stderr.splitlines() == [f"arengine tryon: warning: no face found in the picture "
                                     f"{hand}; the output shows it unchanged"]


def test_only_noise_is_dropped() -> None:
    """Python's lines, tracebacks and other native lines pass; the count of drops is right."""
    script = f"""
        import os, sys, warnings
        from arengine.logs import native_log_filter
        noise = {[line + chr(10) for line in NOISE]!r}
        try:
            with native_log_filter() as f:
                for line in noise:
                    os.write(2, line.encode())
                os.write(2, b"libfoo: a native error worth seeing\\n")
                print("python: a line on sys.stderr", file=sys.stderr)
                warnings.warn("a python warning")
                os.write(2, noise[0].rstrip().encode())  # no newline: flushed on close
                raise RuntimeError("boom")
        finally:
            print(f.dropped)
    """
    proc = python(script)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert noise_lines(err) == []
    assert "libfoo: a native error worth seeing" in err
    assert "python: a line on sys.stderr" in err
    assert "UserWarning: a python warning" in err
    assert "Traceback (most recent call last):" in err and "RuntimeError: boom" in err
    assert out.split() == [str(len(NOISE) + 1)]


def test_lines_are_not_held_back() -> None:
    """While the process still runs, its stderr lines (and a partial one) already arrive."""
    script = """
        import os, sys, time
        from arengine.logs import native_log_filter
        with native_log_filter():
            print("python line", file=sys.stderr)
            os.write(2, b"native line\\n")
            os.write(2, b"native prompt: ")
            time.sleep(120)
    """
    proc = python(script, bufsize=0)
    got: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        text = ""
        while chunk := proc.stderr.read(1):
            text += chunk
            got.put(text)

    threading.Thread(target=read, daemon=True).start()
    seen = ""
    try:
        while not all(s in seen for s in ("python line\n", "native line\n", "native prompt: ")):
            seen = got.get(timeout=20)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_every_subcommand_takes_verbose() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"tryon", "simulate", "bench"} <= set(sub.choices)  # type: ignore[arg-type]
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        assert "--verbose" in command._option_string_actions, name
        assert "--verbose" in command.format_help(), name
    assert parser.parse_args(["tryon", "x", "--verbose"]).verbose is True
    assert parser.parse_args(["bench", "--verbose", "compare", "a", "b"]).verbose is True
    assert parser.parse_args(["bench", "compare", "a", "b", "--verbose"]).verbose is True
    assert not getattr(parser.parse_args(["tryon", "x"]), "verbose", False)
    r = arengine("tryon", "--help")
    assert r.returncode == 0 and "--verbose" in r.stdout and r.stderr == ""
