"""What a benchmark ran on: CPU, GPU, encoders and library versions.

Latency figures are meaningless without the machine, so every report carries this block;
``compare`` prints it for both runs so a "regression" that is really a different box is
visible.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from fractions import Fraction
from importlib import metadata
from typing import Any, cast

PACKAGES = ("arengine", "mediapipe", "av", "aiortc", "numpy", "opencv-contrib-python",
            "opencv-python", "moderngl", "scikit-image", "matplotlib")
HW_ENCODERS = ("h264_nvenc", "hevc_nvenc", "h264_vaapi", "h264_qsv")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def nvidia_gpus() -> list[dict[str, str]]:
    """GPUs as nvidia-smi lists them; empty when there is no NVIDIA driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def hardware_encoders() -> dict[str, str]:
    """Each hardware H.264/HEVC encoder PyAV knows, and whether it really opens.

    FFmpeg builds list nvenc even without a GPU; only opening a context at a real size
    proves it works, so that is the test ("ok" or the error).
    """
    import av

    result = {}
    for name in HW_ENCODERS:
        try:
            ctx = cast("av.VideoCodecContext", av.CodecContext.create(name, "w"))
        except Exception as e:  # unknown codec in this FFmpeg build
            result[name] = f"not in this FFmpeg build ({type(e).__name__})"
            continue
        try:
            ctx.width, ctx.height = 1280, 720
            ctx.pix_fmt = "yuv420p"
            ctx.time_base = Fraction(1, 30)
            ctx.open()
            result[name] = "ok"
        except Exception as e:  # no device, no driver
            result[name] = f"cannot open: {str(e)[:120]}"
    return result


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import cv2

        out["cv2"] = cv2.__version__
    except ImportError:
        pass
    try:
        import av

        out["ffmpeg"] = str(av.library_versions.get("libavcodec"))
    except ImportError:
        pass
    return out


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """The machine block of a report (cheap: no GL context is made here)."""
    clock = time.get_clock_info("perf_counter")
    from arengine.bench.stats import clock_resolution_ns

    return {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_mb": memory_total_mb(),
        "os": platform.platform(),
        "load_average_at_start": load_average(),
        "gpus": nvidia_gpus(),
        "hardware_encoders": hardware_encoders(),
        "versions": versions(),
        "clock": {"function": "time.perf_counter_ns", "implementation": clock.implementation,
                  "nominal_resolution_s": clock.resolution,
                  "measured_step_ns": clock_resolution_ns(), "monotonic": clock.monotonic},
    }


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (from /proc, else ru_maxrss)."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
