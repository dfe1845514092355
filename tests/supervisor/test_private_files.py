"""On the instance, the run's files are the owner's only (0600 in 0700 folders) and the trainer
never holds the instance's API key: the real supervisor (started as a daemon, like launch does,
into a run folder an upload left 0755) with a real trainer that prints its environment."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.supervisor.conftest import Run, cli

PRINT_ENV = """
import json, os
print("ENV " + json.dumps(sorted(os.environ)), flush=True)
print("step 1/1 loss=0.1", flush=True)
"""


def supervisor_env() -> dict[str, str]:
    return {**os.environ, "CONTAINER_API_KEY": "instance-key-must-stay-put", "CONTAINER_ID": "7"}


def test_run_files_are_0600_in_0700_folders_and_the_trainer_has_no_container_api_key(
    run: Run, tmp_path: Path
) -> None:
    run.run_dir.mkdir(mode=0o755)
    os.chmod(run.run_dir, 0o755)  # as an SFTP upload of RUN.json leaves it
    run.configure(PRINT_ENV)
    old_umask = os.umask(0o022)
    try:
        done = cli("start", "--config", str(run.config_path), env=supervisor_env())
    finally:
        os.umask(old_umask)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run.wait_terminal()["status"] == "done"

    env_line = next(line for line in run.log(1).decode().splitlines() if line.startswith("ENV "))
    names = json.loads(env_line.removeprefix("ENV "))
    assert "CONTAINER_API_KEY" not in names
    assert "CONTAINER_ID" in names  # only the key is withheld
    assert "SLEEPWATCH_ATTEMPT" in names

    folders = [run.run_dir, run.run_dir / "attempts"]
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = [p for p in run.run_dir.rglob("*") if p.is_file() and p.name != "RUN.json"]
    names_found = {p.name for p in files}
    assert {"state.json", "1.log"} <= names_found, names_found
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
