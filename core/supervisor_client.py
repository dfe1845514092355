"""The one client of the remote supervisor: every `python -m supervisor` command line is built
here and every answer (probe, tail, ctl, wait, start, ack) is read here (issue 11).

The instance is untrusted input. An answer is read with a byte cap while it arrives (the
transports stop reading past it), found after ANSWER_MARK (so a login banner, a `.bashrc`
echo or `pyenv init` noise printed first is skipped), refused when nested deeper than
MAX_DEPTH (no RecursionError anywhere downstream), and validated into typed models with
bounded numbers. Whatever goes wrong while reading becomes a ProtocolError with a message a
human can act on; an unreachable host stays a TransportError.

With a SessionHub (core/supervisor_session.py), probe, ctl, ack and wait go as requests on
the host's long-lived `supervisor session` and are read the same way; whenever the hub has no
session to offer, the same call goes by exec as before (the fallback). Long operations
(manifest, start) always go by exec.

The command line runs the UPLOADED package, never a `supervisor` package that happens to sit
in the login directory or on the instance's own sys.path: `python -I` (no cwd, no PYTHONPATH,
no user site on sys.path), then the upload root put first on sys.path explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from core.config import Config
from core.errors import ProtocolError
from core.metric_history import MetricHistory
from core.models import ExecResult
from core.outputs import MAX_FILES, ManifestAnswer
from core.ports import Transport
from core.protocol import (
    Count,
    Pid,
    ProbeSnapshot,
    ShortText,
    SupervisorState,
    probe_from_doc,
)
from core.run_settings import settings_for
from core.supervisor_answer import ANSWER_MARK as ANSWER_MARK
from core.supervisor_answer import read_answer as read_answer
from core.supervisor_answer import validated as _validated
from core.supervisor_session import SessionHub
from core.text import clean_line

MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a probe's 64 KiB of log, escaped, plus state and tail
PROBE_LOG_BYTES = 65536
# `python -I -c BOOT ROOT ARGS...`: ROOT is popped off argv and put first on sys.path, any
# `supervisor` already imported (a .pth file) is forgotten, then the package runs as __main__.
_BOOT = (
    "import sys,runpy;sys.path.insert(0,sys.argv.pop(1));sys.modules.pop('supervisor',None);"
    "runpy.run_module('supervisor',run_name='__main__',alter_sys=True)"
)


def supervisor_argv(python: str, root: str, args: Sequence[str]) -> list[str]:
    """argv running the supervisor package uploaded under `root` with the remote python.
    Every element is quoted by shlex.join on the way out, so odd paths are safe."""
    return [python, "-I", "-c", _BOOT, root, *args]


class SupervisorExited(ProtocolError):
    """The supervisor command exited non-zero without a readable answer (python missing, a
    crash before answering). Callers treat it like an unreachable supervisor."""

    def __init__(self, what: str, result: ExecResult) -> None:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = clean_line(lines[-1])[:200] if lines else ""
        super().__init__(f"{what} exited {result.exit_status}: {detail}")
        self.exit_status = result.exit_status


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class CtlAnswer(_Answer):
    ok: bool
    message: ShortText = ""


class StartAnswer(_Answer):
    ok: bool
    pid: Pid | None = None
    message: ShortText = ""


class AckAnswer(_Answer):
    ok: bool
    matches: bool = False
    message: ShortText = ""


class _WaitState(_Answer):
    status: Annotated[str, Field(max_length=40)] = "unknown"
    attempt: Count | None = 0
    last_output_at: Any = None  # compared, never parsed (bounded below): odd is not fatal


class _WaitDoc(_Answer):
    reason: Annotated[str, Field(max_length=40)]
    state: _WaitState | None = None


@dataclass(frozen=True, slots=True)
class WaitAnswer:
    reason: str  # changed | quiet | timeout | missing (an open vocabulary)
    status: str
    attempt: int
    spoke_at: str | None = None  # the trainer's last output as written: a new value = it spoke


@dataclass(frozen=True, slots=True)
class SupervisorClient:
    """The supervisor of one run, reached through `transport`. Methods raise TransportError
    (unreachable), SupervisorExited, or ProtocolError (an answer that cannot be trusted)."""

    transport: Transport
    python: str
    root: str
    exec_timeout_s: float
    max_answer_bytes: int = MAX_ANSWER_BYTES
    sessions: SessionHub | None = None

    def argv(self, args: Sequence[str]) -> list[str]:
        return supervisor_argv(self.python, self.root, ["--framed", *args])

    async def probe(
        self, run_dir: str, *, attempt: int, offset: int, ack: str | None = None
    ) -> ProbeSnapshot:
        args = ["probe", "--run-dir", run_dir, "--attempt", str(attempt)]
        args += ["--offset", str(offset), "--max-bytes", str(PROBE_LOG_BYTES)]
        req: dict[str, Any] = {"run_dir": run_dir, "attempt": attempt, "offset": offset}
        req["max_bytes"] = PROBE_LOG_BYTES
        if ack:
            args += ["--ack", ack]
            req["ack"] = ack
        return probe_from_doc(await self._ask("probe", req, args, self.exec_timeout_s))

    async def metrics(self, run_dir: str, *, timeout_s: float) -> MetricHistory | None:
        """The run's metric history (for its chart); None when it has none."""
        doc = await self._bare_probe(run_dir, 0, timeout_s, metrics=True)
        return probe_from_doc(doc).metrics

    async def tail(self, run_dir: str, lines: int, *, timeout_s: float) -> tuple[str, ...]:
        return probe_from_doc(await self._bare_probe(run_dir, lines, timeout_s)).tail

    async def ctl(self, run_dir: str, command: str) -> CtlAnswer:
        req = {"run_dir": run_dir, "command": command}
        args = ["ctl", "--run-dir", run_dir, command]
        doc = await self._ask("ctl", req, args, self.exec_timeout_s, repeatable=False)
        return _validated(CtlAnswer, doc, "ctl")

    async def start(self, config_path: str, *, timeout_s: float) -> StartAnswer:
        doc = await self._call("start", ["start", "--config", config_path], timeout_s)
        return _validated(StartAnswer, doc, "start")

    async def wait(
        self, run_dir: str, *, status: str, attempt: int, quiet_s: float | None, timeout_s: float
    ) -> WaitAnswer:
        args = ["wait", "--run-dir", run_dir, "--status", status]
        args += ["--attempt", str(attempt), "--timeout", f"{timeout_s:g}"]
        if quiet_s is not None:
            args += ["--quiet", f"{quiet_s:g}"]
        answer = await self._watch(run_dir, status, attempt, quiet_s, timeout_s)
        if answer is None:
            answer = await self._call("wait", args, timeout_s + 30, lasting=True)
        doc = _validated(_WaitDoc, answer, "wait")
        state = doc.state or _WaitState()
        spoke = None if state.last_output_at is None else str(state.last_output_at)[:40]
        return WaitAnswer(doc.reason, state.status, state.attempt or 0, spoke)

    async def ack(
        self, run_dir: str, *, watcher: str, status: str, attempt: int, ended_at: datetime | None
    ) -> AckAnswer:
        """Phase two of the dead-man handshake: this terminal state is in the watcher's store."""
        ended = ended_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ended_at else "-"
        args = ["ack", "--run-dir", run_dir, "--watcher", watcher, "--status", status]
        args += ["--attempt", str(attempt), "--ended-at", ended]
        req = {"run_dir": run_dir, "watcher": watcher, "status": status, "attempt": attempt}
        doc = await self._ask("ack", {**req, "ended_at": ended}, args, self.exec_timeout_s)
        return _validated(AckAnswer, doc, "ack")

    async def manifest(
        self, run_dir: str, paths: Sequence[str], *, timeout_s: float
    ) -> ManifestAnswer:
        """Size and SHA-256 of each file `paths` name (hashing on the instance takes time)."""
        args = ["manifest", "--run-dir", run_dir, "--max-files", str(MAX_FILES)]
        args += [f"--path={path}" for path in paths]  # `=`: a path may start with "-"
        doc = await self._call("manifest", args, timeout_s, lasting=True)
        return _validated(ManifestAnswer, doc, "manifest")

    async def state(self, run_dir: str, *, timeout_s: float) -> SupervisorState | None:
        """state.json alone (no log bytes, no tail); None when it cannot be read."""
        return probe_from_doc(await self._bare_probe(run_dir, 0, timeout_s)).state

    async def _bare_probe(
        self, run_dir: str, lines: int, timeout_s: float, *, metrics: bool = False
    ) -> dict[str, Any]:
        """A probe without log bytes: `lines` of tail, and the metric history if asked."""
        args = ["probe", "--run-dir", run_dir, "--max-bytes", "0", "--tail-lines", str(lines)]
        req: dict[str, Any] = {"run_dir": run_dir, "max_bytes": 0, "tail_lines": lines}
        if metrics:
            args.append("--metrics")
            req["metrics"] = True
        return await self._ask("probe", req, args, timeout_s)

    def session_argv(self, heartbeat_s: float) -> list[str]:
        return self.argv(["session", "--heartbeat", f"{heartbeat_s:g}"])

    async def _ask(
        self,
        what: str,
        req: dict[str, Any],
        args: list[str],
        timeout_s: float,
        *,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """On the host's session when there is one, else (or when it fails) by exec; a
        command that is not `repeatable` is never sent again by exec once it went out."""
        hub = self.sessions
        if hub is not None:
            argv = self.session_argv(hub.heartbeat_s)
            doc = await hub.ask(self.transport, argv, what, req, timeout_s, repeatable=repeatable)
            if doc is not None:
                return doc
        return await self._call(what, args, timeout_s)

    async def _watch(
        self, run_dir: str, status: str, attempt: int, quiet_s: float | None, timeout_s: float
    ) -> dict[str, Any] | None:
        """A wait as a watch on the host's session: the pushed event as `wait` answers it, or
        None when there is no session (the caller waits by exec)."""
        hub = self.sessions
        if hub is None:
            return None
        req = {"run_dir": run_dir, "status": status, "attempt": attempt, "quiet_s": quiet_s}
        argv = self.session_argv(hub.heartbeat_s)
        event = await hub.watch(self.transport, argv, req, timeout_s)
        if event is None:
            return None
        return {"reason": event.get("event"), "state": event.get("state")}

    async def _call(
        self, what: str, args: list[str], timeout_s: float, *, lasting: bool = False
    ) -> dict[str, Any]:
        result = await self.transport.run(
            self.argv(args),
            timeout_s=timeout_s,
            max_output_bytes=self.max_answer_bytes,
            lasting=lasting,
        )
        if result.overflow:
            raise ProtocolError(
                f"{what} answered more than {self.max_answer_bytes} bytes: refused unread"
            )
        try:
            return read_answer(result.stdout, what)
        except ProtocolError:
            if result.exit_status != 0:
                raise SupervisorExited(what, result) from None
            raise


def client_for(
    config: Config, run: str, transport: Transport, sessions: SessionHub | None = None
) -> SupervisorClient:
    """The client of `run`'s supervisor, where its package was uploaded."""
    settings = settings_for(config, run)
    return SupervisorClient(
        transport, settings.python, settings.remote_root, config.ssh.exec_timeout, sessions=sessions
    )


__all__ = [
    "ANSWER_MARK",
    "AckAnswer",
    "CtlAnswer",
    "StartAnswer",
    "SupervisorClient",
    "SupervisorExited",
    "WaitAnswer",
    "client_for",
    "read_answer",
    "supervisor_argv",
]
