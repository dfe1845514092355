"""The instance API the dead-man switch calls from the instance itself (Vast.ai's instance
API with the instance-scoped key the container gets): find the credentials, DELETE the
instance, and read it back until it is gone twice in a row. urllib only, bounded reads.

Called only by supervisor.deadman.DeadManSwitch.fire, when the switch fires.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple

PROC1_ENVIRON = "/proc/1/environ"


def credentials(
    environ: Mapping[str, str], proc_environ: str = PROC1_ENVIRON
) -> Tuple[Optional[str], Optional[str]]:
    """CONTAINER_ID and CONTAINER_API_KEY from the environment, else from PID 1's (an SSH
    session on a Vast instance does not inherit the container's variables)."""
    found = {k: environ.get(k) for k in ("CONTAINER_ID", "CONTAINER_API_KEY")}
    if not all(found.values()):
        try:
            with open(proc_environ, "rb") as fh:
                pairs = fh.read().split(b"\0")
        except OSError:
            pairs = []
        for pair in pairs:
            name, _, value = pair.decode("utf-8", "replace").partition("=")
            if name in found and not found[name]:
                found[name] = value
    return found["CONTAINER_ID"], found["CONTAINER_API_KEY"]


RETRY_AFTER_CAP_S = 300.0
GONE_READS = 2  # reads in a row that must say "gone" after a DELETE
VERIFY_POLLS = 6


def retry_after_s(value: Optional[str], cap_s: float = RETRY_AFTER_CAP_S) -> Optional[float]:
    """A Retry-After header in seconds, clamped to [0, cap_s]; None when absent or not a finite
    number (nan, inf, an HTTP-date, garbage): the caller's own backoff applies then."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap_s)


@dataclass
class DestroyResult:
    ok: bool
    http_status: Optional[int]
    tries: int
    message: str


@dataclass
class _Answer:
    status: Optional[int]  # None: no answer (network error)
    doc: Any  # the JSON body, or None when it was not JSON
    retry_after: Optional[float]
    error: str = ""


def _call(
    method: str, url: str, api_key: str, timeout_s: float, max_bytes: int = 1 << 20
) -> _Answer:
    import urllib.error  # imported here: urllib costs `probe` start-up time it never needs
    import urllib.request

    # api_base is checked to be http(s) when the config is loaded.
    request = urllib.request.Request(url, method=method)  # noqa: S310
    request.add_header("Authorization", "Bearer " + api_key)
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status, headers, raw = response.status, response.headers, response.read(max_bytes)
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _Answer(None, None, None, "network error: %s" % getattr(exc, "reason", exc))
    try:
        doc = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, RecursionError):
        doc = None
    return _Answer(status, doc, retry_after_s(headers.get("Retry-After") if headers else None))


def _gone(answer: _Answer) -> Optional[bool]:
    """True: the provider clearly says gone (404, or an explicit empty `instances`); False: it
    shows the instance; None: unreadable or failed, which is neither."""
    if answer.status == 404:
        return True
    if answer.status != 200 or not isinstance(answer.doc, dict) or "instances" not in answer.doc:
        return None
    instances = answer.doc["instances"]
    if instances in (None, {}, []):
        return True
    return False if isinstance(instances, (dict, list)) else None


def _verify_gone(
    url: str, api_key: str, sleep: Callable[[float], None], interval_s: float, timeout_s: float
) -> bool:
    in_a_row = 0
    for poll in range(VERIFY_POLLS):
        if poll:
            sleep(interval_s)
        in_a_row = in_a_row + 1 if _gone(_call("GET", url, api_key, timeout_s)) else 0
        if in_a_row >= GONE_READS:
            return True
    return False


def destroy_instance(
    api_base: str,
    instance_id: str,
    api_key: str,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 30.0,
) -> DestroyResult:
    """DELETE the instance, then read it back until it is gone twice in a row. Only a 2xx
    whose body says success (or a 404) counts as accepted: HTTP 200 `{"success": false}`, an
    HTML page or no body is retried like a 429 or 5xx, waiting the server's Retry-After
    (clamped) or a doubling backoff. `ok` only once the reads said gone."""
    url = "%s/api/v0/instances/%s/" % (api_base.rstrip("/"), instance_id)
    status: Optional[int] = None
    message = ""
    for attempt in range(1, retries + 1):
        answer = _call("DELETE", url, api_key, timeout_s)
        status = answer.status
        accepted = status == 404 or (
            status is not None
            and 200 <= status < 300
            and isinstance(answer.doc, dict)
            and answer.doc.get("success") is True
        )
        if accepted:
            if _verify_gone(url, api_key, sleep, backoff_s, timeout_s):
                message = "instance destroyed (verified: gone twice in a row)"
                return DestroyResult(True, status, attempt, message)
            message = "DELETE accepted but the instance is still there: NOT destroyed"
        elif status is not None and status != 429 and 300 <= status < 500:
            return DestroyResult(False, status, attempt, "HTTP %d: NOT destroyed" % status)
        elif status is None:
            message = "%s: NOT destroyed" % answer.error
        else:
            message = "HTTP %d, no clear success: NOT destroyed" % status
        if attempt < retries:
            wait = answer.retry_after
            sleep(backoff_s * 2 ** (attempt - 1) if wait is None else wait)
    return DestroyResult(False, status, retries, message)
