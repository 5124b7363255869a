"""GLSL sources from ``shaders/``: loading, ``#include``, defines and readable compile errors.

Drivers report errors against the source string they were given, which carries a
``#version`` line, ``#define`` lines and inlined ``#include`` files in front of the code a
person wrote. Every generated line is therefore tagged with the file and line it came
from, so a compile error can say ``shaders/lips.frag:42`` instead of ``0:45(12)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arengine.data import SHADERS_DIR

GLSL_VERSION = "#version 330 core"

# Mesa: "0:12(5): error: ...", NVIDIA: "0(12) : error C1008: ...",
# AMD / ANGLE / glslang: "ERROR: 0:12: ...".
_LOG_LINE = re.compile(
    r"^\s*(?:ERROR:\s*|WARNING:\s*)?\d+[:(](?P<line>\d+)[):]?(?:\((?P<col>\d+)\))?\s*:?\s*(?P<msg>.*)$"
)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"(?P<name>[^"]+)"\s*$')


class ShaderError(RuntimeError):
    """A shader file could not be read."""


class ShaderCompileError(ShaderError):
    """The driver rejected a shader; ``path`` and ``line`` point into the file a person edits."""

    def __init__(self, path: Path, line: int | None, message: str, log: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        self.log = log
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ShaderSource:
    """Generated GLSL text plus, for each of its lines, the (file, line) it came from."""

    text: str
    origin: tuple[tuple[Path | None, int], ...]
    path: Path

    def locate(self, generated_line: int) -> tuple[Path | None, int]:
        """File and 1-based line of a 1-based line of the generated text."""
        if 1 <= generated_line <= len(self.origin):
            return self.origin[generated_line - 1]
        return self.path, generated_line


def load_source(name: str | Path, defines: dict[str, Any] | None = None,
                shaders_dir: Path | None = None) -> ShaderSource:
    """Read one shader file, prepend the version and ``defines``, inline its includes."""
    base = Path(shaders_dir) if shaders_dir is not None else SHADERS_DIR
    path = Path(name) if Path(name).is_absolute() else base / name
    lines: list[str] = [GLSL_VERSION]
    origin: list[tuple[Path | None, int]] = [(None, 0)]
    for key, value in (defines or {}).items():
        if not re.fullmatch(r"[A-Za-z_]\w*", key):
            raise ShaderError(f"bad #define name {key!r}")
        lines.append(f"#define {key} {_glsl_value(value)}".rstrip())
        origin.append((None, 0))
    _append_file(path, lines, origin, stack=())
    return ShaderSource("\n".join(lines) + "\n", tuple(origin), path)


def _glsl_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value) if "." in repr(value) or "e" in repr(value) else f"{value}.0"
    return str(value)


def _append_file(path: Path, lines: list[str], origin: list[tuple[Path | None, int]],
                 stack: tuple[Path, ...]) -> None:
    if path in stack:
        raise ShaderError(f"{path}: #include cycle through {' -> '.join(map(str, stack))}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ShaderError(f"cannot read shader {path}: {e.strerror or e}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#version"):
            # The loader owns the version line; keep the numbering with an empty line.
            lines.append("")
            origin.append((path, number))
            continue
        m = _INCLUDE.match(line)
        if m:
            _append_file(path.parent / m["name"], lines, origin, (*stack, path))
            continue
        lines.append(line)
        origin.append((path, number))


def compile_error(source: ShaderSource, log: str) -> ShaderCompileError:
    """The first error of a driver info log, mapped back to the shader file and line."""
    entries: list[tuple[Path | None, int, str]] = []
    for raw in log.splitlines():
        m = _LOG_LINE.match(raw)
        if not m or not m["msg"]:
            continue
        file, line = source.locate(int(m["line"]))
        entries.append((file, line, m["msg"].strip()))
    errors = [e for e in entries if "error" in e[2].lower()]
    mapped = [f"{f or source.path}:{n}: {msg}" for f, n, msg in entries]
    if not entries:
        text = log.strip() or "compilation failed without an info log"
        return ShaderCompileError(source.path, None, text, log)
    file, line, msg = (errors or entries)[0]
    detail = msg if len(mapped) <= 1 else msg + "\n" + "\n".join(mapped)
    return ShaderCompileError(file or source.path, line if file else None, detail, log)


def split_moderngl_log(error_text: str) -> dict[str, str]:
    """Per-stage info logs from moderngl's "GLSL Compiler failed" message.

    moderngl joins the stage name (``vertex_shader``, ``fragment_shader``, ...) underlined
    with ``=`` and the driver log; linker errors come as "GLSL Linker failed".
    """
    stages: dict[str, str] = {}
    current: str | None = None
    buf: list[str] = []
    lines = error_text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip().endswith("_shader") and nxt and set(nxt.strip()) == {"="}:
            if current is not None:
                stages[current] = "\n".join(buf)
            current, buf = line.strip(), []
            i += 2
            continue
        if current is not None:
            buf.append(line)
        i += 1
    if current is not None:
        stages[current] = "\n".join(buf)
    return stages
