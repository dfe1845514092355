"""The first step of pulling a run's outputs: ask the instance's supervisor for the manifest
of the configured paths (sizes and SHA-256s), keep the files that pass the path checks, and
say what was left out and why. Called by core.collect.Collector before it pulls (core/pull.py).
"""

from __future__ import annotations

from core.collect_report import pending
from core.config import CollectConfig, Config
from core.errors import ProtocolError, TransportError
from core.models import RunRecord
from core.outputs import Collected, CollectResult, ManifestAnswer, ManifestFile, checked_files
from core.ports import Transport
from core.supervisor_client import client_for
from core.text import clean_line


async def list_outputs(
    config: Config,
    record: RunRecord,
    transport: Transport,
    spec: CollectConfig,
    left_s: float,
) -> tuple[ManifestAnswer, list[ManifestFile], list[str]] | CollectResult:
    """The manifest of the run's outputs and the files to pull, with what was left out and
    why; or the result when the instance cannot list them."""
    client = client_for(config, record.name, transport)
    try:
        answer = await client.manifest(record.run_dir, spec.paths, timeout_s=left_s)
    except TransportError as exc:
        return pending(f"listing the outputs failed ({exc})", left_s)
    except ProtocolError as exc:
        why = f"the instance's list of outputs cannot be used ({exc})"
        return CollectResult(Collected.FAILED, "NOT collected: bad manifest", None, (why,))
    if not answer.ok:
        why = f"the supervisor refused to list the outputs: {clean_line(answer.message)[:300]}"
        return CollectResult(Collected.FAILED, "NOT collected", None, (why,))
    files, problems = checked_files(answer, spec.paths)
    if answer.truncated:
        problems.append(f"more than {len(files)} files: the rest were not listed")
    problems += [
        f"{clean_line(s.path)[:200]}: skipped ({clean_line(s.why)})" for s in answer.skipped
    ]
    return answer, files, problems
