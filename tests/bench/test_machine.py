from __future__ import annotations

import subprocess

import pytest

from arengine.bench import machine
from arengine.bench.machine import hardware_encoders, machine_info, nvidia_gpus, rss_mb


def test_machine_info_has_what_a_report_needs() -> None:
    m = machine_info()
    assert m["cpu"] and m["cores_logical"] >= 1 and m["cores_usable"] >= 1
    for pkg in ("python", "mediapipe", "av", "aiortc", "numpy", "opencv-contrib-python"):
        assert m["versions"][pkg], pkg
    assert m["clock"]["function"] == "time.perf_counter_ns"
    assert m["clock"]["monotonic"] is True
    assert isinstance(m["gpus"], list)


def test_no_nvidia_smi_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    assert nvidia_gpus() == []


def test_nvidia_smi_output_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def fake_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        out = "NVIDIA H100 80GB HBM3, 550.54, 81559 MiB\n"
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(machine.subprocess, "run", fake_run)
    assert nvidia_gpus() == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54",
                              "memory": "81559 MiB"}]


def test_hardware_encoders_are_tried_not_assumed() -> None:
    enc = hardware_encoders()
    assert set(enc) >= {"h264_nvenc"}
    if not nvidia_gpus():  # listed by FFmpeg, but it must not open without a GPU
        assert enc["h264_nvenc"] != "ok"


def test_rss_is_plausible() -> None:
    assert 10 < rss_mb() < 100_000
