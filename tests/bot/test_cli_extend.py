"""`sleepwatch extend RUN DURATION` and chat's `/extend RUN DURATION` read the duration by one
rule (core.durations.EXTEND): a bad one is one clear line, exit 2, and the same words."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import main
from bot.commands import UsageError, parse_command


@pytest.mark.parametrize(
    "duration", ["garbage", "0", "30s", "8d", "10081", "1h30", "2h-", "٣h", ""]
)
def test_a_bad_duration_is_one_clear_line_and_the_same_as_in_chat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], duration: str
) -> None:
    config = tmp_path / "sleepwatch.toml"
    config.write_text(f'[watcher]\nstate_dir = "{tmp_path / "state"}"\n')
    with pytest.raises(UsageError) as chat:
        parse_command(f"/extend llama-ft {duration}" if duration else "/extend llama-ft x y")
    code = main(["--config", str(config), "extend", "llama-ft", duration])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sleepwatch: "), err
    if duration:
        assert err == f"sleepwatch: {chat.value}\n"
