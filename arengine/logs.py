"""Keeping native libraries' log noise off the user's terminal.

MediaPipe's C++ graph, TFLite and absl write start-up notes ("Created TensorFlow Lite
XNNPACK delegate", "Feedback manager requires a model with a single signature") straight
to file descriptor 2, from their own threads, every time a graph is built: dozens of lines
per run that bury the one-line warnings and errors a user does need. Python's ``logging``
never sees them, and on mediapipe 0.10.21 neither ``GLOG_minloglevel`` nor
``TF_CPP_MIN_LOG_LEVEL`` silences them (absl logs before ``InitializeLog`` go to stderr
regardless), so the only lever is the descriptor itself.

:func:`native_log_filter` puts a pipe in place of descriptor 2 and a thread that forwards
every line to the real stderr except the known noise (:data:`NATIVE_NOISE`). Python's own
``sys.stderr`` is pointed straight at the real stderr, so tracebacks, warnings, the
progress bar and the CLI's one-line errors are never delayed or reordered by the filter.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

# Lines native libraries write that say nothing a user can act on.
NATIVE_NOISE = re.compile(
    # absl / glog prefix; before InitializeLog absl writes "00:00:<epoch seconds>.<us>"
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    rb"STDERR"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|libpng warning: iCCP: )"  # a PNG's colour-profile quirk, read fine anyway
)
# A partial line (no newline yet) is forwarded after this long without more bytes, so a
# prompt or progress text from native code still shows.
_PARTIAL_WAIT_S = 0.05


def is_native_noise(line: bytes) -> bool:
    """Whether one line written to descriptor 2 is native log noise to drop."""
    return NATIVE_NOISE.match(line) is not None


class NativeLogFilter:
    """Descriptor 2 replaced by a pipe whose lines, less the noise, reach the real stderr.

    Built by :func:`native_log_filter`; :meth:`close` puts everything back and forwards
    what is still in the pipe. ``dropped`` counts the lines filtered out.
    """

    def __init__(self) -> None:
        if sys.stderr is not None:
            sys.stderr.flush()
        self._saved = os.dup(2)  # the real stderr, for the forwarder and sys.stderr
        try:
            read_end, write_end = os.pipe()
        except OSError:
            os.close(self._saved)
            raise
        os.dup2(write_end, 2)
        os.close(write_end)
        self._read_end = read_end
        self.dropped = 0
        self._python_stderr: TextIO | None = None
        if _writes_to_fd2(sys.stderr):
            # Python's stderr bypasses the pipe: its lines must not wait on the thread.
            self._python_stderr = sys.stderr
            sys.stderr = open(  # noqa: SIM115 - outlives the filter on purpose
                self._saved, "w", buffering=1, closefd=False,
                encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace")
        self._thread = threading.Thread(target=self._forward, name="native-log-filter",
                                        daemon=True)
        self._thread.start()
        self._closed = False

    def _write(self, data: bytes) -> None:
        while data:
            try:
                n = os.write(self._saved, data)
            except InterruptedError:
                continue
            except OSError:
                return  # stderr gone (a closed pipe): keep draining, never block writers
            data = data[n:]

    def _emit(self, line: bytes) -> None:
        if is_native_noise(line):
            self.dropped += 1
        else:
            self._write(line)

    def _forward(self) -> None:
        buf = b""
        dropping = False  # inside a noise line whose start was already seen
        try:
            while True:
                if buf:
                    ready, _, _ = select.select([self._read_end], [], [], _PARTIAL_WAIT_S)
                    if not ready:  # a partial line, and nothing more for a while
                        dropping = dropping or is_native_noise(buf)
                        if not dropping:
                            self._write(buf)
                        buf = b""
                        continue
                chunk = os.read(self._read_end, 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if dropping:
                        dropping = False  # the rest of a noise line
                        continue
                    self._emit(line + b"\n")
            if buf and not dropping:
                self._emit(buf)
        finally:
            os.close(self._read_end)

    def close(self) -> None:
        """Restore descriptor 2 and ``sys.stderr``; forward what the pipe still holds."""
        if self._closed:
            return
        self._closed = True
        if self._python_stderr is not None:
            # Left open, not closed: a logging handler or progress bar made during the run
            # may still hold it, and must keep reaching the real stderr, not a closed file.
            sys.stderr.flush()
            sys.stderr = self._python_stderr
        os.dup2(self._saved, 2)  # drops the pipe's last write end: the thread sees EOF
        # A child process still holding the pipe keeps the thread forwarding for it.
        self._thread.join(timeout=2.0)
        if self._python_stderr is None and not self._thread.is_alive():
            os.close(self._saved)  # nothing else writes to it any more


def _writes_to_fd2(stream: TextIO) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False  # an in-memory stream (a test's capture): leave it alone


@contextlib.contextmanager
def native_log_filter(verbose: bool = False) -> Iterator[NativeLogFilter | None]:
    """Drop native log noise from descriptor 2 while the block runs, unless ``verbose``.

    Yields the filter (None when verbose, or when there is no usable descriptor 2).
    ``ARENGINE_NATIVE_LOGS=1`` in the environment counts as verbose.
    """
    if verbose or os.environ.get("ARENGINE_NATIVE_LOGS") == "1":
        yield None
        return
    try:
        filt = NativeLogFilter()
    except OSError:  # no stderr to filter (closed descriptor 2)
        yield None
        return
    try:
        yield filt
    finally:
        filt.close()
