"""The dead-man switch against a real local HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from supervisor import deadman
from tests.supervisor import trainers
from tests.supervisor.conftest import ROOT, SUPERVISOR_PY, Run, cli, pid_alive, wait_until

KEY = "sekrit-instance-key-123"


class FakeVast:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[str, str, str | None]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_DELETE(self) -> None:  # noqa: N802
                fake.requests.append(("DELETE", self.path, self.headers.get("Authorization")))
                status = fake.statuses.pop(0) if fake.statuses else 200
                body = json.dumps({"success": status == 200}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def vast() -> Iterator[tuple[FakeVast, str]]:
    fake = FakeVast([])
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _start(run: Run, api: str, **deadman_cfg: object) -> int:
    cfg = {
        "enabled": True,
        "ack_timeout_s": 1.0,
        "watcher_silence_s": 3600,
        "api_base": api,
        "retry_backoff_s": 0.01,
    }
    cfg.update(deadman_cfg)
    run.configure(trainers.TQDM_OK, deadman=cfg)
    env = dict(os.environ, CONTAINER_ID="4242", CONTAINER_API_KEY=KEY)
    done = subprocess.run(
        [SUPERVISOR_PY, "-m", "supervisor", "start", "--config", str(run.config_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)["pid"]


def test_it_destroys_the_instance_when_no_watcher_acknowledges_the_end(
    run: Run, vast: tuple[FakeVast, str]
) -> None:
    fake, api = vast
    fake.statuses[:] = [429, 500]
    pid = _start(run, api)
    wait_until(lambda: not pid_alive(pid), timeout=30)
    assert run.state()["status"] == "done"
    assert [r[:2] for r in fake.requests] == [("DELETE", "/api/v0/instances/4242/")] * 3
    assert fake.requests[-1][2] == "Bearer " + KEY
    report = json.loads((run.run_dir / "deadman.json").read_text())
    assert report["fired"] is True and report["ok"] is True and report["tries"] == 3
    for name in ("supervisor.log", "deadman.json", "state.json"):
        assert KEY not in (run.run_dir / name).read_text()


def test_it_does_nothing_when_a_watcher_acknowledges_the_end(
    run: Run, vast: tuple[FakeVast, str]
) -> None:
    fake, api = vast
    pid = _start(run, api, ack_timeout_s=30)
    run.wait_terminal()
    probe = cli("probe", "--run-dir", str(run.run_dir), "--ack", "laptop-1")
    assert probe.returncode == 0
    wait_until(lambda: not pid_alive(pid), timeout=20)
    assert fake.requests == []
    report = json.loads((run.run_dir / "deadman.json").read_text())
    assert report["fired"] is False
    ack = json.loads((run.run_dir / "watcher_ack.json").read_text())
    assert ack["watcher"] == "laptop-1" and ack["status"] == "done"


def test_the_silence_rule_fires_while_live_and_the_terminal_rule_needs_a_terminal_ack() -> None:
    assert deadman.due(100, 0, None, None, False, 900, 100) is not None
    assert deadman.due(100, 0, None, 50, False, 900, 100) is None
    assert deadman.due(100, 0, 10, 50, False, 90, 1e9) is not None  # ack was of a live state
    assert deadman.due(100, 0, 10, 50, True, 90, 1e9) is None
    assert deadman.due(50, 0, 10, None, False, 90, 1e9) is None


def test_credentials_fall_back_to_pid_1s_environment(tmp_path: Path) -> None:
    environ = tmp_path / "environ"
    environ.write_bytes(b"PATH=/bin\0CONTAINER_ID=77\0CONTAINER_API_KEY=k=v\0")
    assert deadman.credentials({}, str(environ)) == ("77", "k=v")
    assert deadman.credentials({"CONTAINER_ID": "1", "CONTAINER_API_KEY": "x"}, "/nope") == (
        "1",
        "x",
    )
    assert deadman.credentials({}, str(tmp_path / "missing")) == (None, None)


def test_a_destroy_that_keeps_failing_gives_up_after_its_retries(
    vast: tuple[FakeVast, str],
) -> None:
    fake, api = vast
    fake.statuses[:] = [503] * 10
    result = deadman.destroy_instance(api, "9", KEY, retries=3, backoff_s=0.0)
    assert (result.ok, result.http_status, result.tries) == (False, 503, 3)
    assert len(fake.requests) == 3
