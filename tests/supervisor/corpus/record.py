"""Record the failure corpus: run real programs the way the supervisor runs a trainer
(`/bin/sh -c COMMAND`, stdout and stderr into one file) and keep what they printed.

Not a test and not a project dependency. Run it as root on a Linux machine with a throwaway
virtualenv holding the recording tools (torch CPU, numpy, transformers, accelerate, lightning,
keras, deepspeed, tqdm, requests, setuptools, ninja), e.g.:

    python3 -m venv /tmp/rec-venv
    /tmp/rec-venv/bin/pip install torch==2.13.0 numpy transformers accelerate lightning keras \
        tqdm requests setuptools wheel ninja deepspeed
    python3 tests/supervisor/corpus/record.py --venv /tmp/rec-venv [CASE_ID ...]

It needs root for a tmpfs (a real small full filesystem) and a memory cgroup (a real OOM kill).
Network failures come from badserver.py on 127.0.0.1 and from a name under `.invalid`; nothing
else is contacted. Each log is trimmed (head and tail, cut at line breaks) and machine paths are
replaced by neutral ones, both deterministically, then logs/<id>.log and manifest.json are
written. The expected fields of each case are the truth the corpus test holds the supervisor to.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from cases import CASES, Case

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")
LOGS = os.path.join(HERE, "logs")
MANIFEST = os.path.join(HERE, "manifest.json")
PORT = 18765
HEAD_BYTES, TAIL_BYTES = 6 << 10, 24 << 10
CGROUP = "/sys/fs/cgroup/memory/sleepwatch-corpus"
# What "hiding the compiler" hides: every name a build may look up on PATH.
HIDDEN = {
    "cc": [
        "gcc",
        "cc",
        "c++",
        "g++",
        "cpp",
        "x86_64-linux-gnu-gcc",
        "x86_64-linux-gnu-g++",
        "x86_64-linux-gnu-gcc-12",
        "x86_64-linux-gnu-g++-12",
        "gcc-12",
        "g++-12",
        "clang",
        "clang++",
    ],
    "cxx": ["c++", "g++", "x86_64-linux-gnu-g++", "x86_64-linux-gnu-g++-12", "g++-12", "clang++"],
    "ninja": ["ninja"],
    "cmake": ["cmake"],
    "make": ["make", "gmake"],
}


@dataclass
class Recorded:
    case: Case
    exit_code: int
    output: bytes
    notes: list[str] = field(default_factory=list)


def shadow_bin(workdir: str, hide: list[str]) -> str:
    """A directory of links to every program in /usr/bin except the hidden ones."""
    names = set()
    for group in hide:
        names.update(HIDDEN[group])
    path = os.path.join(workdir, ".bin")
    os.makedirs(path)
    for name in os.listdir("/usr/bin"):
        if name not in names and not name.startswith(("x86_64-linux-gnu-g", "gcc-", "g++-")):
            os.symlink(os.path.join("/usr/bin", name), os.path.join(path, name))
    return path


def environment(case: Case, venv: str, workdir: str) -> dict[str, str]:
    bindirs = [] if "ninja" in case.hide else [os.path.join(venv, "bin")]
    bindirs.append(shadow_bin(workdir, case.hide) if case.hide else "/usr/local/bin:/usr/bin:/bin")
    env = {
        "PATH": ":".join(bindirs),
        "HOME": os.path.join(workdir, ".home"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_CONFIG_FILE": os.devnull,  # this machine's pip.conf (local mirrors) stays out
        "PY": os.path.join(venv, "bin", "python"),
        "PORT": str(PORT),
    }
    os.makedirs(env["HOME"])
    env.update(case.env)
    return env


def prepare(case: Case, workdir: str) -> list[str]:
    """Copy the programs, write the case's files, mount what it needs. Returns mounts."""
    for name in os.listdir(PROGRAMS):
        src = os.path.join(PROGRAMS, name)
        dst = os.path.join(workdir, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    for name, text in case.files.items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
        if name.endswith(".sh"):
            os.chmod(path, 0o755)
    mounts = []
    if case.full_disk:
        target = os.path.join(workdir, case.full_disk)
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", target], check=True)
        mounts.append(target)
    return mounts


def default_signals() -> None:
    # A recorder started in the background inherits SIGINT ignored; a trainer would not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def into_cgroup() -> None:
    default_signals()
    with open(os.path.join(CGROUP, "cgroup.procs"), "w") as fh:
        fh.write(str(os.getpid()))


def run_case(case: Case, venv: str) -> Recorded:
    workdir = tempfile.mkdtemp(prefix="swcorpus-")
    mounts = prepare(case, workdir)
    env = environment(case, venv, workdir)
    preexec = default_signals
    if case.cgroup_mb:
        os.makedirs(CGROUP, exist_ok=True)
        with open(os.path.join(CGROUP, "memory.limit_in_bytes"), "w") as fh:
            fh.write(str(case.cgroup_mb << 20))
        preexec = into_cgroup
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", case.command],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
        try:
            output, _ = proc.communicate(timeout=case.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            raise SystemExit(f"case {case.id} did not end in {case.timeout_s} s") from None
        notes = []
        if case.cgroup_mb:
            notes.append(kernel_oom_note())
        return Recorded(case, proc.returncode, clean(output, workdir, venv), notes)
    finally:
        for target in mounts:
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def kernel_oom_note() -> str:
    done = subprocess.run(["dmesg"], capture_output=True, text=True, check=False)
    hits = [line for line in done.stdout.splitlines() if "Killed process" in line]
    return "kernel: " + re.sub(r"^\[[ \d.]+\]\s*", "", hits[-1]) if hits else "no kernel trace"


def clean(output: bytes, workdir: str, venv: str) -> bytes:
    """Neutral paths for this machine's, then a bounded size (head and tail at line breaks)."""
    real_venv = os.path.realpath(venv)
    base = os.path.realpath(sys.base_prefix)
    pairs = [
        (os.path.realpath(workdir), "/workspace"),
        (workdir, "/workspace"),
        (real_venv, "/opt/venv"),
        (venv, "/opt/venv"),
        (base, "/usr/local"),
        (HERE, "/corpus"),
    ]
    for old, new in pairs:
        output = output.replace(old.encode(), new.encode())
    output = re.sub(rb"swcorpus-[A-Za-z0-9_]+", b"workspace", output)
    output = re.sub(rb"/tmp/tmp[A-Za-z0-9_]{6,}", b"/tmp/tmpXXXXXX", output)
    if len(output) <= HEAD_BYTES + TAIL_BYTES:
        return output
    # a tqdm bar is one long line of "\r" redraws: "\r" is a line break for the cut as well
    head = output[:HEAD_BYTES]
    head = head[: max(head.rfind(b"\n"), head.rfind(b"\r")) + 1] or head
    tail = output[-TAIL_BYTES:]
    cut = re.search(rb"[\r\n]", tail)
    tail = tail[cut.end() :] if cut else tail
    dropped = len(output) - len(head) - len(tail)
    return head + b"[record.py: %d bytes trimmed]\n" % dropped + tail


def manifest_row(rec: Recorded) -> dict[str, Any]:
    case = rec.case
    row: dict[str, Any] = {
        "id": case.id,
        "log": f"logs/{case.id}.log",
        "exit_code": rec.exit_code,
        "how": case.how,
        "command": case.command,
        "expect": case.expect,
    }
    if case.run_json:
        row["run_json"] = case.run_json
    if case.replay_files:
        row["replay_files"] = case.replay_files
    if rec.notes:
        row["notes"] = rec.notes
    return row


def start_server() -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, os.path.join(PROGRAMS, "badserver.py"), str(PORT)])
    time.sleep(0.5)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", required=True)
    parser.add_argument(
        "--expect-only",
        action="store_true",
        help="rewrite each row's expectation and description from cases.py; run nothing",
    )
    parser.add_argument("ids", nargs="*")
    args = parser.parse_args(argv)
    os.makedirs(LOGS, exist_ok=True)
    rows = {}
    if os.path.exists(MANIFEST):
        with open(MANIFEST) as fh:
            rows = {row["id"]: row for row in json.load(fh)["cases"]}
    chosen = [c for c in CASES if not args.ids or c.id in args.ids]
    if args.expect_only:
        for case in chosen:
            if case.id in rows:
                rows[case.id].update(expect=case.expect, how=case.how)
        return write_manifest(rows, previous_with())
    server = start_server()
    try:
        for case in chosen:
            started = time.monotonic()
            rec = run_case(case, args.venv)
            with open(os.path.join(LOGS, case.id + ".log"), "wb") as fh:
                fh.write(rec.output)
            rows[case.id] = manifest_row(rec)
            print(
                "%-28s exit %4d  %6d bytes  %5.1f s"
                % (case.id, rec.exit_code, len(rec.output), time.monotonic() - started),
                flush=True,
            )
    finally:
        server.terminate()
        if os.path.isdir(CGROUP):
            os.rmdir(CGROUP)
    return write_manifest(rows, recorded_with(args.venv))


def previous_with() -> dict[str, str]:
    with open(MANIFEST) as fh:
        return json.load(fh).get("recorded_with", {})


def write_manifest(rows: dict[str, dict[str, Any]], versions: dict[str, str]) -> int:
    """CPU cases in cases.py's order, then any GPU cases (record_gpu.py) as they were."""
    order = {c.id: i for i, c in enumerate(CASES)}
    cpu = sorted((r for r in rows.values() if r["id"] in order), key=lambda r: order[r["id"]])
    gpu = [r for r in rows.values() if r["id"].startswith("gpu_")]
    with open(MANIFEST, "w") as fh:
        json.dump({"recorded_with": versions, "cases": cpu + gpu}, fh, indent=1)
        fh.write("\n")
    return 0


def recorded_with(venv: str) -> dict[str, str]:
    """Versions of the tools the logs came from, so a re-recording can say what changed."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "names = ['torch', 'numpy', 'transformers', 'accelerate', 'lightning', 'keras', 'tqdm',"
        " 'pip', 'setuptools', 'huggingface_hub', 'requests', 'deepspeed', 'datasets']\n"
        "out = {'python': sys.version.split()[0]}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [os.path.join(venv, "bin", "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    raise SystemExit(main())
