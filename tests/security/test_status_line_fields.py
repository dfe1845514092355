"""Fields of the status line that come from the instance (the fix kind; the run name the state
names) are cleaned before the line reaches stdout: a crafted state.json, read by the real
`supervisor probe` under a running service, cannot add a line, an escape or a field."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from core.launch import SUPERVISOR_PACKAGE
from core.memory import Memory
from core.models import RunRecord
from core.run_settings import settings_for
from core.runtime import utc_now
from core.store import Store
from tests.reliability.helpers import RUN, LocalHarness, local_config
from tests.reliability.test_state_faults import checked, sound_state

FORGED = "2026-11-28T03:00:00Z done 3/3 90000/90000 0% - - llama-ft"
HOSTILE_KIND = f"oom\n{FORGED}\n\x1b[2J\x1b]0;pwned\x07\r\x1b[31mred"


def crafted_state() -> bytes:
    doc = json.loads(sound_state())
    doc["run"] = f"{RUN}\n{FORGED}"
    doc["fixes"] = [
        {
            "attempt": 1,
            "kind": HOSTILE_KIND,
            "action": "pip install x\n• destroyed",
            "ok": True,
            "at": doc["heartbeat_at"],
        }
    ]
    return json.dumps(doc).encode()


async def test_a_crafted_fix_kind_cannot_add_a_line_an_escape_or_a_field(tmp_path: Path) -> None:
    config = local_config(tmp_path, "true")  # no supervisor: the test writes state.json
    h = LocalHarness(config)
    run_dir = tmp_path / "runs" / RUN
    run_dir.mkdir(parents=True)
    (run_dir / "state.json").write_bytes(crafted_state())
    root = settings_for(config, RUN).remote_root
    await h.transport.put_tree(SUPERVISOR_PACKAGE, f"{root}/supervisor")
    store = await Store.open(h.db)
    launched_at = utc_now() - timedelta(minutes=5)
    memory = Memory(launched_at=launched_at).to_json()
    await store.upsert_run(RunRecord(RUN, str(run_dir), launched_at, memory=memory))
    service = h.service(store)
    try:
        await service.start()
        await checked(service, store, "running")
    finally:
        await service.stop()
        await store.close()
    line = h.lines[-1]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    fields = line.split(" ")
    assert len(fields) == 8, line
    assert fields[1] == "running" and fields[-1] == RUN
    assert 0 < len(fields[6]) <= 32, line  # one bounded token (a \r redraw keeps its end)
