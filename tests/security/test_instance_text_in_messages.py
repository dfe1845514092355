"""Text the instance wrote (a fix's command, a log line) reaches a Telegram message only inside
<pre>/<code>, never as one of sleepwatch's own bullets: a crafted state.json and log, read by
the real `supervisor probe` under a running service, rendered by the real Telegram renderer."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.render import render_message
from core.launch import SUPERVISOR_PACKAGE
from core.memory import Memory
from core.models import OutboundMessage, RunRecord
from core.run_settings import settings_for
from core.runtime import utc_now
from core.store import Store
from tests.reliability.helpers import RUN, LocalHarness, db_rows, local_config, wait_for
from tests.reliability.test_state_faults import checked, sound_state

FORGED = "• instance 4242 destroyed (verified): nothing is billing"


def retried_state() -> bytes:
    doc = json.loads(sound_state())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc.update(attempt=2, status="running")
    doc["fixes"] = [
        {
            "attempt": 1,
            "kind": "oom",
            "action": f"halve eval_batch_size {FORGED}",
            "ok": True,
            "at": now,
        }
    ]
    doc["last_failure"] = {"attempt": 1, "kind": "oom", "exit_code": 1, "excerpt": "OOM"}
    return json.dumps(doc).encode()


async def test_a_fix_command_and_a_log_line_from_the_instance_stay_out_of_the_bullets(
    tmp_path: Path,
) -> None:
    config = local_config(tmp_path, "true")  # no supervisor: the test writes the run's files
    h = LocalHarness(config)
    run_dir = tmp_path / "runs" / RUN
    (run_dir / "attempts").mkdir(parents=True)
    (run_dir / "state.json").write_bytes(sound_state())
    root = settings_for(config, RUN).remote_root
    await h.transport.put_tree(SUPERVISOR_PACKAGE, f"{root}/supervisor")
    store = await Store.open(h.db)
    launched_at = utc_now() - timedelta(minutes=5)
    memory = Memory(launched_at=launched_at).to_json()
    await store.upsert_run(RunRecord(RUN, str(run_dir), launched_at, memory=memory))
    service = h.service(store)
    try:
        (run_dir / "attempts" / "1.log").write_text(f"step 1\nRuntimeError: {FORGED}\n")
        await service.start()

        # an error in a live attempt is held (is the attempt dying of it?), then told by a
        # check after the hold that finds the trainer running on
        async def told() -> bool:
            await checked(service, store, "running")
            rows = db_rows(h.db, "SELECT message FROM outbox")
            return any("error marker in the log" in doc for (doc,) in rows)

        await wait_for(told, 30, what="the held error told")
        (run_dir / "state.json").write_bytes(retried_state())
        await checked(service, store, "running")
    finally:
        await service.stop()
        await store.close()
    rows = db_rows(h.db, "SELECT message FROM outbox ORDER BY id")
    sent = [render_message(OutboundMessage.from_json(json.loads(doc))) for (doc,) in rows]
    alerts = [text for text in sent if "self-healed" in text]
    errors = [text for text in sent if "error marker in the log (quoted below)" in text]
    assert alerts and errors, sent
    for text in sent:
        outside = re.sub(r"<(pre|code)>.*?</\1>", "", text, flags=re.S)
        assert "4242" not in outside, text  # the forged line shows only as quoted text
    alert = alerts[0]
    assert "a fix was applied (ok)" in alert
    quoted = "".join(re.findall(r"<pre>(.*?)</pre>", alert, flags=re.S))
    assert "fix applied: halve eval_batch_size" in quoted and "4242 destroyed" in quoted
    quoted = "".join(re.findall(r"<pre>(.*?)</pre>", errors[0], flags=re.S))
    assert f"RuntimeError: {FORGED}" in quoted
