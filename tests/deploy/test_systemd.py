"""deploy/systemd: the unit passes systemd-analyze, its environment file names
only real settings, and its command line, run as systemd would, serves and
stops on SIGTERM within the unit's TimeoutStopSec."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from eas_gateway.config import Settings
from tests.conftest import ROOT, RunningGateway, free_port

UNIT = ROOT / "deploy" / "systemd" / "eas-gateway.service"
ENV_FILE = ROOT / "deploy" / "systemd" / "eas-gateway.env"


def unit_value(name: str) -> str:
    return re.search(rf"^{name}=(.*)$", UNIT.read_text(), re.M).group(1)  # type: ignore[union-attr]


def env_file() -> dict[str, str]:
    return dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines()
                if line.strip() and not line.startswith("#"))


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not on this machine")  # Debian has it with systemd
    executable = Path(sys.executable).parent / "eas-gateway"
    unit = tmp_path / "eas-gateway.service"
    unit.write_text(UNIT.read_text().replace(unit_value("ExecStart").split()[0], str(executable)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_environment_file_names_only_real_settings() -> None:
    known = {"EAS_" + f.name.upper() for f in fields(Settings)}
    assert set(env_file()) <= known, set(env_file()) - known
    Settings.from_env(env_file())  # every value parses


def test_the_units_command_serves_and_stops_on_sigterm(gateway: RunningGateway, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **env_file(), "EAS_UPSTREAM": gateway.upstream, "EAS_DATABASE_URL": gateway.database_url,
           "EAS_PORT": str(port), "EAS_STATE_DIR": str(tmp_path)}
    command = [str(Path(sys.executable).parent / "eas-gateway"), *unit_value("ExecStart").split()[1:]]
    with open(tmp_path / "log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: systemd counts that as a clean stop.
        assert process.wait(timeout=int(unit_value("TimeoutStopSec"))) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # EAS_LOG_FORMAT=json from the environment file: one JSON object per line.
    lines = [line for line in (tmp_path / "log").read_text().splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines[:5]
    assert any("Application shutdown complete" in line for line in lines), lines[-5:]
