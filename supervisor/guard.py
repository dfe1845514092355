"""Trainer guard: leads the trainer's process group and ends it when the supervisor dies.

Run as a script (`python -I -S guard.py READ_FD GRACE_S -- ARGV...`), never imported by the
trainer. The supervisor holds the write end of a pipe whose read end is READ_FD; when the
supervisor dies for any reason, SIGKILL included, the pipe reads EOF and the guard terminates
the whole group (TERM, then KILL after GRACE_S). Otherwise the guard exits the way the trainer
did (same exit code, or the same signal), so the supervisor sees the trainer's own status.

Spawned by supervisor.trainer for each attempt.
"""

import os
import select
import signal
import subprocess
import sys
import time


def _ignore(signum, frame):
    # A Python handler, not SIG_IGN: SIG_IGN would be inherited by the trainer across exec.
    pass


def _end_group(child, grace_s):
    try:
        os.killpg(0, signal.SIGTERM)
    except OSError:
        pass
    deadline = time.monotonic() + grace_s
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(0, signal.SIGKILL)


def _exit_like(code):
    if code >= 0:
        os._exit(code)
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    os._exit(128 - code)


def main(argv):
    parent_fd, grace_s, command = int(argv[1]), float(argv[2]), argv[4:]
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGHUP, _ignore)
    try:
        child = subprocess.Popen(command, close_fds=True)
    except OSError as exc:
        sys.stderr.write("sleepwatch guard: cannot start the trainer: %s\n" % exc)
        os._exit(127)
    while True:
        code = child.poll()
        if code is not None:
            _exit_like(code)
        readable, _, _ = select.select([parent_fd, wake_r], [], [], 5.0)
        if wake_r in readable:
            os.read(wake_r, 512)
        if parent_fd in readable and os.read(parent_fd, 1) == b"":
            sys.stderr.write("sleepwatch guard: supervisor gone, ending the trainer group\n")
            sys.stderr.flush()
            _end_group(child, grace_s)


if __name__ == "__main__":
    main(sys.argv)
