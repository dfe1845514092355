"""The `sleepwatch` script refuses to start when another distribution's package shadows one of
ours (issue 15, item 9): supervisord's `supervisor`, a stray `migrations`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.start import OUR_PACKAGES, foreign_packages

ROOT = Path(__file__).resolve().parents[2]

# supervisord's own supervisor/__init__.py is one comment line; a Django-style app ships an
# empty migrations/__init__.py.
SUPERVISORD_INIT = "# this is a package\n"


def test_every_package_of_this_checkout_carries_the_mark() -> None:
    assert foreign_packages() == []
    assert set(OUR_PACKAGES) == {"core", "bot", "supervisor", "migrations"}


def test_the_script_refuses_to_start_when_supervisord_shadows_our_supervisor(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "site"
    (shadow / "supervisor").mkdir(parents=True)
    (shadow / "supervisor" / "__init__.py").write_text(SUPERVISORD_INIT)
    (shadow / "migrations").mkdir()
    (shadow / "migrations" / "__init__.py").write_text("")
    # The shadowing packages come first on the path, as a later `pip install` into the same
    # site-packages would leave them; core and bot are still ours.
    script = (
        "import sys; "
        f"sys.path[:0] = [{str(shadow)!r}, {str(ROOT)!r}]; "
        "from bot.start import main; "
        "code = main(['runs']); "
        "assert 'bot.app' not in sys.modules and 'core.cli' not in sys.modules; "
        "sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith("sleepwatch: refusing to start")
    assert f"`supervisor` is not sleepwatch's (it comes from {shadow}" in message
    assert f"`migrations` is not sleepwatch's (it comes from {shadow}" in message
    assert "`core`" not in message and "`bot`" not in message
    assert "virtual environment" in message
