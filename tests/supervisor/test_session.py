"""`supervisor session`: a real session process over pipes against a real daemonized
supervisor and trainer (probe, watch events, ctl, ack, EOF), and the session's reading of bad
lines in-process (no line ends it; everything it reads is bounded)."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from supervisor import ANSWER_MARK
from supervisor.session import MAX_LINE_BYTES, MAX_WATCHES, Out, Session
from tests.supervisor.conftest import ROOT, SUPERVISOR_PY, Run, wait_until

# Prints a step, then holds until the test creates `go` (never races process start-up).
GATED = r"""
import os, sys, time
print("step 1/10", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("step 10/10", flush=True)
"""
CEILING_S = 60.0


class SessionProc:
    def __init__(self, heartbeat_s: float = 0.3) -> None:
        argv = [SUPERVISOR_PY, "-m", "supervisor", "--framed", "session", "--heartbeat"]
        argv.append(str(heartbeat_s))
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        assert self.lines.get(timeout=CEILING_S).strip() == b""
        assert self.lines.get(timeout=CEILING_S).strip() == ANSWER_MARK.encode()
        self.hello = json.loads(self.lines.get(timeout=CEILING_S))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def close(self) -> int:
        """Close stdin (EOF) and the session's exit status (killed if it outlives the ceiling)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=CEILING_S)
        finally:
            self.proc.kill()
            self.proc.wait()
            self.pump.join(CEILING_S)
            self.proc.stdout.close()

    def send(self, doc: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(doc).encode() + b"\n")
        self.proc.stdin.flush()

    def next(self, key: str, value: Any = None) -> dict[str, Any]:
        """The next line holding `key` (== value when given); heartbeats are skipped."""
        while True:
            doc = json.loads(self.lines.get(timeout=CEILING_S))
            if key in doc and (value is None or doc[key] == value):
                return doc


def test_a_session_answers_probes_and_pushes_the_changes_of_a_real_run(run: Run) -> None:
    go = run.tmp / "go"
    run.configure(GATED, args=str(go))
    run.start()
    wait_until(lambda: (run.run_dir / "state.json").exists() and run.state()["step"] == 1)
    s = SessionProc()
    try:
        talk(s, run, go)
    finally:
        assert s.close() == 0  # EOF on stdin: the session ends by itself


def talk(s: SessionProc, run: Run, go: Path) -> None:
    assert s.hello["session"] == 1
    run_dir = str(run.run_dir)
    s.send({"id": 1, "cmd": "probe", "run_dir": run_dir, "attempt": 1, "offset": 0})
    probe = s.next("id", 1)["answer"]
    assert probe["state"]["status"] == "running" and "step 1/10" in probe["log"]["text"]
    # quiet armed at 0 s: the silent trainer is news at once; then a watch without quiet
    s.send(
        {
            "id": 2,
            "cmd": "watch",
            "run_dir": run_dir,
            "status": "running",
            "attempt": 1,
            "quiet_s": 0,
            "timeout_s": 600,
        }
    )
    assert s.next("id", 2)["answer"]["ok"] is True
    assert s.next("event")["event"] == "quiet"
    s.send(
        {
            "id": 3,
            "cmd": "watch",
            "run_dir": run_dir,
            "status": "running",
            "attempt": 1,
            "timeout_s": 600,
        }
    )
    assert s.next("id", 3)["answer"]["watching"] == 1
    assert s.next("heartbeat")["heartbeat"] > 0  # beats while nothing happens
    go.touch()
    event = s.next("event")
    assert event["event"] == "changed" and event["state"]["status"] == "done"
    s.send(
        {
            "id": 4,
            "cmd": "ack",
            "run_dir": run_dir,
            "watcher": "w",
            "status": "done",
            "attempt": 1,
            "ended_at": event["state"]["ended_at"],
        }
    )
    assert s.next("id", 4)["answer"]["ok"] is True
    s.send({"id": 5, "cmd": "ctl", "run_dir": run_dir, "command": "stop", "timeout_s": 1})
    assert s.next("id", 5)["answer"]["ok"] is False  # nobody owns the run dir any more


def feed(session: Session, out: io.StringIO, data: bytes) -> list[dict[str, Any]]:
    start = len(out.getvalue())
    session.feed(data)
    return [json.loads(line) for line in out.getvalue()[start:].splitlines()]


def test_no_request_line_ends_the_session_and_what_it_reads_is_bounded(tmp_path: Path) -> None:
    out = io.StringIO()
    session = Session(Out(out))
    deep = b"[" * 100_000 + b"]" * 100_000
    bad = [
        b"not json",
        b"[1, 2]",
        deep[:60_000],
        b'{"id": 7, "cmd": "format-disk"}',
        b'{"id": 8, "cmd": "watch", "run_dir": 3}',
        b'{"id": true, "cmd": "ping"}',
        b'{"id": 9, "cmd": "watch", "run_dir": "/x", "status": "running", "attempt": NaN}',
    ]
    answers = feed(session, out, b"\n".join(bad) + b"\n")
    assert len(answers) == len(bad) and all("error" in a for a in answers)
    assert [a["id"] for a in answers][3:5] == [7, 8]
    # a line past the cap is dropped while it arrives and answered once it ends
    assert feed(session, out, b"x" * (MAX_LINE_BYTES + 10)) == []
    assert len(session._buf) == 0
    assert "longer than" in feed(session, out, b"yyy\n")[0]["error"]
    for i in range(MAX_WATCHES):
        req = {
            "id": i,
            "cmd": "watch",
            "run_dir": f"{tmp_path}/{i}",
            "status": "running",
            "attempt": 1,
        }
        feed(session, out, json.dumps(req).encode() + b"\n")
    over = {"id": -1, "cmd": "watch", "run_dir": f"{tmp_path}/x", "status": "running", "attempt": 1}
    assert "already watching" in feed(session, out, json.dumps(over).encode() + b"\n")[0]["error"]
    assert feed(session, out, b'{"id": 10, "cmd": "ping"}\n') == [
        {"id": 10, "answer": {"ok": True}}
    ]
    session.poll(0.0, 0.0)  # every watched dir is missing: each told once, then forgotten
    events = [json.loads(line) for line in out.getvalue().splitlines() if "event" in line]
    assert len(events) == MAX_WATCHES and not session.watches


def test_a_busy_session_does_not_beat_and_an_idle_one_does() -> None:
    # any line proves the session alive: beats only fill a silence of heartbeat_s (at 5,000
    # runs the beats of busy sessions cost the watcher as much as its checks)
    s = SessionProc(heartbeat_s=2.0)
    try:
        for req_id in range(1, 81):  # a request every 50 ms for 4 s: never 2 s of silence
            s.send({"id": req_id, "cmd": "no-such-command"})
            time.sleep(0.05)
        seen = [json.loads(s.lines.get(timeout=CEILING_S)) for _ in range(80)]
        assert [doc.get("id") for doc in seen] == list(range(1, 81))  # answers, no beat
        assert "heartbeat" in s.next("heartbeat")  # then silence: it beats
    finally:
        assert s.close() == 0
