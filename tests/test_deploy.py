"""The deployment files in deploy/ are correct as shipped: compose's structure (distinct host
ports, exec-form commands, healthchecks on /health/ready), Prometheus scraping every replica by
its own name, the systemd unit (verified by systemd-analyze when present), and the Dockerfile's
own install command and CMD, run here in a temporary virtualenv (there is no docker daemon)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import REPO_ROOT
from tests.serve_process import free_port

DEPLOY = REPO_ROOT / "deploy"
SHUTDOWN_TIMEOUT_S = 30  # serve.shutdown_timeout's default


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def aicli_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in data["services"].items()
        if (svc.get("command") or [None])[:2] == ["aicli", "serve"]
    }


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", str(text))
    assert match, text
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


# ---- compose ------------------------------------------------------------------------------------


def test_compose_publishes_each_host_port_once() -> None:
    published = []
    for name, svc in compose()["services"].items():
        replicas = (svc.get("deploy") or {}).get("replicas", 1)
        ports = svc.get("ports", [])
        assert not (ports and replicas > 1), f"{name}: {replicas} replicas cannot share a port"
        for port in ports:
            spec = str(port if not isinstance(port, dict) else port["published"])
            if ":" in spec:
                published.append(spec.rsplit(":", 1)[0])
    assert published and len(published) == len(set(published)), published


def test_compose_runs_at_least_two_replicas_in_exec_form_behind_the_balancer() -> None:
    data = compose()
    replicas = aicli_services(data)
    assert len(replicas) >= 2
    for name, svc in data["services"].items():
        for field in ("command", "entrypoint"):
            if field in svc:  # a list: the process itself is PID 1 and gets SIGTERM
                assert isinstance(svc[field], list), f"{name}.{field} is in shell form"
                assert svc[field][0] not in ("sh", "bash", "/bin/sh"), f"{name}.{field}"
    for name, svc in replicas.items():
        text = json.dumps(svc)
        assert "pip install" not in text, f"{name} installs at start"
        assert "ports" not in svc, f"{name} publishes a port of its own"
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        assert seconds(svc["stop_grace_period"]) > SHUTDOWN_TIMEOUT_S  # the drain can finish
        for value in svc["environment"].values():  # secrets come from the environment
            assert not re.match(r"(sk-|tok-)", str(value)), value
    # the load balancer sends to every replica, and waits for them to be healthy
    upstream = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    servers = set(re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream, re.M))
    assert servers == {(name, "8000") for name in replicas}
    lb = next(s for s in data["services"].values() if "nginx.conf" in json.dumps(s))
    assert set(lb["depends_on"]) == set(replicas)
    assert all(d["condition"] == "service_healthy" for d in lb["depends_on"].values())


def test_every_replica_has_a_healthcheck_on_health_ready() -> None:
    for name, svc in aicli_services(compose()).items():
        test = svc["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] == "CMD", name  # exec form: no shell
        assert "/health/ready" in " ".join(test), name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    redis = compose()["services"]["redis"]
    assert redis["healthcheck"]["test"][0] == "CMD"


# ---- prometheus ------------------------------------------------------------------------------


def test_prometheus_scrapes_each_replica_by_its_own_name() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "aicli"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    replicas = aicli_services(compose())
    assert sorted(targets) == sorted(f"{name}:8000" for name in replicas)
    assert job["authorization"]["type"] == "Bearer"
    mounted = [v for v in compose()["services"]["prometheus"]["volumes"] if "aicli-token" in v]
    assert mounted and mounted[0].endswith(job["authorization"]["credentials_file"] + ":ro")


# ---- systemd ---------------------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(DEPLOY / "aicli.service", encoding="utf-8")
    return parser


def test_systemd_unit_waits_for_the_network_and_runs_unprivileged() -> None:
    u = unit()
    assert "network-online.target" in u["Unit"]["After"].split()
    assert "network-online.target" in u["Unit"]["Wants"].split()
    service = u["Service"]
    assert service["DynamicUser"] == "yes" and "User" not in service
    command = shlex.split(service["ExecStart"])
    assert command[0].startswith("/") and command[0].endswith("/aicli") and command[1] == "serve"
    assert service["KillSignal"] == "SIGTERM"
    assert seconds(service["TimeoutStopSec"] + "s") > SHUTDOWN_TIMEOUT_S
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
    }.items():  # fmt: skip
        assert service[key] == value, key
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (not required in CI)")
    # verify checks that ExecStart's program exists: point it at this checkout's aicli
    here = shutil.which("aicli", path=str(Path(sys.executable).parent)) or "/usr/bin/env"
    text = (DEPLOY / "aicli.service").read_text(encoding="utf-8")
    (tmp_path / "aicli.service").write_text(text.replace("/opt/aicli/bin/aicli", here))
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "aicli.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "aicli.service" not in done.stderr, done.stderr
    # exposure on systemd's 0-100 scale (shown as 0-10): 18 today, "OK"; 30 would be "MEDIUM"
    exposure = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=30", str(tmp_path / "aicli.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert exposure.returncode == 0, exposure.stdout[-2000:] + exposure.stderr


# ---- the Dockerfile --------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        word, _, rest = whole.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_the_image_runs_as_a_non_root_user_in_exec_form() -> None:
    steps = instructions()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    words = [w for w, _ in steps]
    assert words.index("USER") < words.index("CMD")  # the service itself is not root
    cmd = json.loads(next(args for word, args in steps if word == "CMD"))
    assert cmd[:2] == ["aicli", "serve"] and "0.0.0.0" in cmd
    assert "ENTRYPOINT" not in words  # no shell wrapper in front of aicli
    assert "pip" not in json.dumps(cmd)  # nothing is installed when a container starts
    assert next(args for word, args in steps if word == "STOPSIGNAL") == "SIGTERM"


@pytest.mark.slow
def test_the_dockerfiles_install_and_cmd_run(tmp_path: Path) -> None:
    """The image's own commands, with its paths moved under tmp_path: COPY, the install RUN, then
    CMD (and compose's healthcheck against it), then SIGTERM: it drains and exits 0."""
    steps = instructions()
    root = tmp_path / "image"
    moved = {"/src": root / "src", "/opt/aicli": root / "opt" / "aicli"}

    def here(text: str) -> str:
        for inside, outside in moved.items():
            text = re.sub(re.escape(inside) + r"(?=[/'\s\[\]]|$)", str(outside), text)
        return text

    for word, args in steps:
        if word == "COPY":
            *sources, dest = shlex.split(args)
            for src in sources:
                target = Path(here(dest))
                if dest.endswith("/"):
                    target = target / Path(src).name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = REPO_ROOT / src
                if source.is_dir():
                    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(source, target)
    installs = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert len(installs) == 1
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", here(installs[0])],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    venv_bin = moved["/opt/aicli"] / "bin"
    assert (venv_bin / "aicli").exists()

    # CMD, as the image's ENV sets PATH, on a free port, with the tokens compose passes
    port = free_port()
    cmd = json.loads(next(args for word, args in steps if word == "CMD"))
    cmd = [str(port) if c == "8000" else c for c in cmd]
    work = root / "srv"
    work.mkdir()
    env = {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(work),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_CONFIG_HOME": str(work / "config"),
        "AICLI_SERVE_TOKENS": "tok-app1,tok-prometheus",
        "TMPDIR": str(tmp_path),
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the image's CMD did not start serving")
        # compose's healthcheck, as the container would run it (same python, same env)
        check = compose()["services"]["aicli-1"]["healthcheck"]["test"][1:]
        check = [c.replace(":8000/", f":{port}/") for c in check]
        ok = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        refused = subprocess.run(  # a wrong token: the check fails, as it must
            check, env={**env, "AICLI_SERVE_TOKENS": "wrong"}, capture_output=True, timeout=30
        )
        assert refused.returncode != 0
        metrics = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": "Bearer tok-prometheus"}, timeout=10,
        )  # fmt: skip
        assert metrics.status_code == 200 and "aicli_fallbacks_total" in metrics.text
    finally:
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
        code = proc.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
