"""One attempt's trainer: spawned behind the guard in its own process group, output to a log.

Used by supervisor.attempt (one Trainer per attempt) and supervisor.runner (trainer_env, the
environment a fix runs in).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Optional, Union

from .fsutil import open_private

GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard.py")


def render_command(command: str, knobs: Mapping[str, float]) -> str:
    """Replace `{knob}` placeholders of declared knobs only; other braces stay as written."""

    def value(found: "re.Match[str]") -> str:
        number = knobs[found.group(1)]
        return str(int(number)) if float(number).is_integer() else str(number)

    if not knobs:
        return command
    names = "|".join(re.escape(n) for n in knobs)
    return re.sub(r"\{(%s)\}" % names, value, command)


PRIVATE_ENV = frozenset({"CONTAINER_API_KEY"})


def trainer_env(
    base: Mapping[str, str],
    extra: Mapping[str, str],
    knobs: Mapping[str, float],
    attempt: int,
    run_dir: str,
) -> Dict[str, str]:
    # The instance's own API key (the dead-man switch's) is the supervisor's, never the
    # trainer's: user code and its dependencies would otherwise hold a key that destroys it.
    env = {k: v for k, v in base.items() if k not in PRIVATE_ENV}
    env.setdefault("PYTHONUNBUFFERED", "1")  # progress must reach the log as it happens
    env.update(extra)
    for name, number in knobs.items():
        env[name.upper()] = str(int(number)) if float(number).is_integer() else str(number)
    env["SLEEPWATCH_ATTEMPT"] = str(attempt)
    env["SLEEPWATCH_RUN_DIR"] = run_dir
    return env


class Trainer:
    """The guard leads the process group, so `pgid == pid` of the guard. `command` is a shell
    line (the trainer's) or an argument list run as it is (the collect command)."""

    def __init__(
        self,
        command: Union[str, List[str]],
        env: Dict[str, str],
        cwd: str,
        log_path: str,
        grace_s: float,
    ) -> None:
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        self.grace_s = grace_s
        read_fd, self._lifeline = os.pipe()
        with os.fdopen(open_private(log_path, os.O_WRONLY | os.O_APPEND), "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        GUARD,
                        str(read_fd),
                        str(grace_s),
                        "--",
                        *argv,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    pass_fds=(read_fd,),
                )
            finally:
                os.close(read_fd)
        self.pid = self._proc.pid
        self._kill_at: Optional[float] = None

    def poll(self) -> Optional[int]:
        code = self._proc.poll()
        if code is None and self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._signal_group(signal.SIGKILL)
            self._kill_at = None
        return code

    def terminate(self) -> None:
        """TERM the group now, KILL it after the grace (done by `poll`)."""
        if self._kill_at is None:
            self._signal_group(signal.SIGTERM)
            self._kill_at = time.monotonic() + self.grace_s

    def finish(self) -> None:
        """After the guard exited: end what is left of the group and drop the lifeline."""
        if self._group_alive():
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + min(self.grace_s, 5.0)
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            self._signal_group(signal.SIGKILL)
        os.close(self._lifeline)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
