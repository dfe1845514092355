"""SSH host keys are verified: over a real sshd, the first check pins the host's key (in a file
only the user can read); after the host key changes, Watcher.check stops checking that run,
alerts in plain words, makes no further connection and never re-pins the new key."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING

from bot.render import render_message
from core.local import LocalTransport
from core.runtime import utc_now
from core.store import Store
from core.supervisor_client import supervisor_argv
from core.watcher import Watcher
from tests.e2e.test_watch_ssh import Harness, launched, make_config, provider_for
from tests.security.telegram_html import assert_telegram_html

if TYPE_CHECKING:
    from tests.fixtures.sshd import SshdServer

RUN = "llama-ft"


async def test_a_changed_host_key_stops_the_checks_of_that_run_and_alerts(
    tmp_path: Path, sshd: SshdServer
) -> None:
    config = make_config(tmp_path, sshd, steps=400)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    record = await launched(h, store)
    watcher = Watcher(store, config, h.transport_for, h.provider_for, utc_now, emit=h.lines.append)
    try:
        assert await watcher.check(RUN) is not None
        pins = tmp_path / "state" / "known_hosts"
        assert stat.S_IMODE(pins.stat().st_mode) == 0o600
        pinned = pins.read_text()
        old_fingerprint = sshd.host_key_fingerprint()

        sshd.regenerate_host_key()  # same address and port, another key: a MITM, or a new box
        # The pooled connection may not have noticed the restart yet: that check only finds
        # the host unreachable. The next connection meets the new key.
        intervals = [await watcher.check(RUN) for _ in range(3)]
        assert None in intervals, intervals
        assert intervals.index(None) <= 1, intervals

        stopped = await store.get_run(RUN)
        assert stopped is not None and not stopped.live and stopped.next_check_at is None
        assert stopped.status == "host_key_changed"
        alerts = await store.open_alerts(RUN)
        assert set(alerts) == {"host_key"}
        reason = alerts["host_key"].message
        assert "host key changed" in reason
        assert sshd.host_key_fingerprint() in reason and old_fingerprint in reason
        pending = await store.pending(utc_now())
        (item,) = [i for i in pending if "host key" in " ".join(i.message.reasons)]
        text = render_message(item.message)
        assert_telegram_html(text)
        assert "host key changed" in text
        assert h.lines[-1].split()[1] == "unreachable"

        connections = sshd.log_text().count("Connection from")
        assert await watcher.check(RUN) is None  # no more checks for that run...
        assert sshd.log_text().count("Connection from") == connections  # ...not even a connect
        assert pins.read_text() == pinned  # the new key was not trusted on the quiet
    finally:
        await h.pool.close()
        await stop_supervisor(config.watcher.remote_root, record.run_dir)
        await store.close()


async def stop_supervisor(root: str, run_dir: str) -> None:
    """The host is this machine: stop the supervisor without SSH, which now refuses it."""
    argv = supervisor_argv("python3", root, ["ctl", "--run-dir", run_dir, "stop"])
    await LocalTransport().run(argv, timeout_s=30)
