"""The dead-man switch against a real local HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import math
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
    """Vast's instance API as the switch uses it: DELETE answers from `statuses` (a status) or
    `answers` ((status, body text, headers)), then 200 success; a successful DELETE removes the
    instance unless `stays`; GET answers 404 once it is gone, else the running instance."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.answers: list[tuple[int, str, dict[str, str]]] = []
        self.present = True
        self.stays = False
        self.requests: list[tuple[str, str, str | None]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_DELETE(self) -> None:  # noqa: N802
                fake.requests.append(("DELETE", self.path, self.headers.get("Authorization")))
                if fake.answers:
                    status, text, headers = fake.answers.pop(0)
                else:
                    status = fake.statuses.pop(0) if fake.statuses else 200
                    text, headers = json.dumps({"success": status == 200}), {}
                if status == 200 and text == json.dumps({"success": True}):
                    fake.present = fake.present and fake.stays
                self._answer(status, text, headers)

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(("GET", self.path, self.headers.get("Authorization")))
                if not fake.present:
                    self._answer(404, json.dumps({"success": False}), {})
                    return
                doc = {"instances": {"id": 4242, "actual_status": "running"}}
                self._answer(200, json.dumps(doc), {})

            def _answer(self, status: int, text: str, headers: dict[str, str]) -> None:
                body = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def methods(self) -> list[str]:
        return [r[0] for r in self.requests]


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
    deletes = [r[:2] for r in fake.requests if r[0] == "DELETE"]
    assert deletes == [("DELETE", "/api/v0/instances/4242/")] * 3
    assert fake.methods()[3:] == ["GET", "GET"]  # read back: gone twice in a row
    assert all(r[2] == "Bearer " + KEY for r in fake.requests)
    report = json.loads((run.run_dir / "deadman.json").read_text())
    assert report["fired"] is True and report["ok"] is True and report["tries"] == 3
    for name in ("supervisor.log", "deadman.json", "state.json"):
        assert KEY not in (run.run_dir / name).read_text()


def _ack(run: Run, **overrides: object) -> dict:
    state = run.state()
    fields = {"status": state["status"], "attempt": state["attempt"], "ended_at": state["ended_at"]}
    fields.update(overrides)
    done = cli(
        "ack", "--run-dir", str(run.run_dir), "--watcher", "laptop-1",
        "--status", str(fields["status"]), "--attempt", str(fields["attempt"]),
        "--ended-at", str(fields["ended_at"]),
    )  # fmt: skip
    return json.loads(done.stdout)


def test_it_does_nothing_when_a_watcher_acknowledges_the_end(
    run: Run, vast: tuple[FakeVast, str]
) -> None:
    fake, api = vast
    pid = _start(run, api, ack_timeout_s=30)
    run.wait_terminal()
    probe = cli("probe", "--run-dir", str(run.run_dir), "--ack", "laptop-1")
    assert probe.returncode == 0
    assert _ack(run) == {"ok": True, "matches": True, "message": "acknowledged"}
    wait_until(lambda: not pid_alive(pid), timeout=20)
    assert fake.requests == []
    report = json.loads((run.run_dir / "deadman.json").read_text())
    assert report["fired"] is False
    ack = json.loads((run.run_dir / "watcher_stored.json").read_text())
    assert ack["watcher"] == "laptop-1" and ack["status"] == "done"


def test_a_probe_that_read_the_end_or_an_ack_of_another_end_never_disarms_it(
    run: Run, vast: tuple[FakeVast, str]
) -> None:
    """Issue 11: a watcher that read the terminal state but could not store it (shell noise
    made it `invalid`, it crashed) must leave the switch armed: only an ack of THIS end counts."""
    fake, api = vast
    pid = _start(run, api, ack_timeout_s=3)
    run.wait_terminal()
    probe = cli("probe", "--run-dir", str(run.run_dir), "--ack", "laptop-1")
    assert probe.returncode == 0
    assert _ack(run, attempt=2)["matches"] is False  # another attempt's end
    assert _ack(run, status="failed")["matches"] is False
    assert _ack(run, ended_at="2020-01-01T00:00:00Z")["matches"] is False
    wait_until(lambda: not pid_alive(pid), timeout=30)
    deletes = [r[:2] for r in fake.requests if r[0] == "DELETE"]
    assert deletes == [("DELETE", "/api/v0/instances/4242/")]
    assert json.loads((run.run_dir / "deadman.json").read_text())["fired"] is True


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


def _report(run: Run) -> dict[str, object]:
    doc: dict[str, object] = json.loads((run.run_dir / "deadman.json").read_text())
    return doc


def test_a_200_with_success_false_is_not_destroyed_the_switch_retries_and_verifies(
    run: Run, vast: tuple[FakeVast, str]
) -> None:
    fake, api = vast
    fake.answers[:] = [(200, json.dumps({"success": False, "error": "try later"}), {})]
    pid = _start(run, api)
    wait_until(lambda: not pid_alive(pid), timeout=30)
    assert fake.methods() == ["DELETE", "DELETE", "GET", "GET"]
    assert not fake.present
    report = _report(run)
    assert report["ok"] is True and report["tries"] == 2
    assert report["message"] == "instance destroyed (verified: gone twice in a row)"


@pytest.mark.parametrize(
    "answer",
    [
        (200, json.dumps({"success": False}), {}),
        (200, "<html>502 Bad Gateway</html>", {}),
        (200, "", {}),
    ],
    ids=["success-false", "html", "no-body"],
)
def test_a_delete_that_is_never_clearly_accepted_is_reported_not_destroyed(
    run: Run, vast: tuple[FakeVast, str], answer: tuple[int, str, dict[str, str]]
) -> None:
    fake, api = vast
    fake.answers[:] = [answer] * 10
    pid = _start(run, api, retries=3)
    wait_until(lambda: not pid_alive(pid), timeout=30)
    assert fake.methods() == ["DELETE"] * 3
    report = _report(run)
    assert report["ok"] is False and report["tries"] == 3
    assert "NOT destroyed" in str(report["message"])


def test_a_delete_accepted_but_the_instance_still_there_is_not_destroyed(
    run: Run, vast: tuple[FakeVast, str]
) -> None:
    fake, api = vast
    fake.stays = True
    pid = _start(run, api, retries=2)
    wait_until(lambda: not pid_alive(pid), timeout=30)
    assert fake.present and fake.methods().count("DELETE") == 2
    assert fake.methods().count("GET") >= 2
    report = _report(run)
    assert report["ok"] is False and "still there" in str(report["message"])


@pytest.mark.parametrize(
    ("retry_after", "slept"),
    [("7", 7.0), ("nan", 0.01), ("-5", 0.0), ("1e300", 300.0), ("inf", 0.01), ("soon", 0.01)],
)
def test_retry_after_is_honoured_but_clamped_to_a_finite_range(
    vast: tuple[FakeVast, str], retry_after: str, slept: float
) -> None:
    fake, api = vast
    fake.answers[:] = [(429, "{}", {"Retry-After": retry_after})]
    delays: list[float] = []
    result = deadman.destroy_instance(
        api, "4242", KEY, retries=3, backoff_s=0.01, sleep=delays.append
    )
    assert result.ok
    assert delays[0] == slept  # garbage falls back to the switch's own backoff
    assert all(math.isfinite(d) and 0 <= d <= 300 for d in delays)
