"""Replay one recorded log as a trainer: its bytes to stdout, then its recorded exit code.

`python replay.py LOG EXIT_CODE`. The recorder captured stdout and stderr into one stream,
as the supervisor does, so writing the bytes back to stdout reproduces the attempt log byte
for byte. The exit code is the one the supervisor saw through `/bin/sh -c`; a shell's 128+N
(a signal) is given back as the same code, and the replay prints nothing of its own.
"""

import os
import sys

CHUNK = 4096


def main() -> None:
    path, code = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as fh:
        data = fh.read()
    out = sys.stdout.buffer
    # Chunks at line breaks, flushed one by one, as a trainer's output arrives.
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + CHUNK) + 1 or min(len(data), start + CHUNK)
        out.write(data[start:end])
        out.flush()
        start = end
    if code < 0:
        import signal

        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


if __name__ == "__main__":
    main()
