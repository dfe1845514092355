"""Host key policy for the SSH adapter: trust-on-first-use pins, or a user's known_hosts.

Pins live in a sleepwatch-managed file in OpenSSH known_hosts format (`[host]:port type key`,
plain `host` for port 22), matched exactly per host:port: Vast.ai serves many instances on
one proxy host under different ports, so a port-less fallback would confuse them.

Used by core.ssh_pool for every connect (connect_verified).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from core.errors import HostKeyMismatch, TransportError


def pin_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


_Keys = list[asyncssh.SSHKey]


@dataclass(slots=True)
class KeyCheck:
    """One connection attempt's view of the host key: what we trusted, what the host showed.

    `lookup` is given to asyncssh as its `known_hosts` callable (it is called with the real
    peer address); `accept_unknown` is asked by the client when the presented key is not
    among the trusted ones.
    """

    trusted: _Keys
    tofu: bool
    known_hosts: Path | None = None
    presented: asyncssh.SSHKey | None = field(default=None)
    _ca_keys: _Keys = field(default_factory=list)
    _revoked: _Keys = field(default_factory=list)

    def lookup(self, host: str, addr: str, port: int | None) -> tuple[_Keys, _Keys, _Keys]:
        if self.known_hosts is not None and self.known_hosts.is_file():
            matched = asyncssh.read_known_hosts(str(self.known_hosts)).match(host, addr, port)
            self.trusted, self._ca_keys, self._revoked = (list(m) for m in matched[:3])
        return list(self.trusted), list(self._ca_keys), list(self._revoked)

    def accept_unknown(self, key: asyncssh.SSHKey) -> bool:
        self.presented = key
        # A pinned host showing another key is a mismatch; only an unpinned host is trusted.
        return self.tofu and not self.trusted


class HostKeyPolicy:
    """Either TOFU pins in `pin_file`, or (when `known_hosts` is given) that file only."""

    def __init__(self, pin_file: Path, known_hosts: Path | None = None) -> None:
        self.pin_file = pin_file
        self.known_hosts = known_hosts

    @property
    def tofu(self) -> bool:
        return self.known_hosts is None

    def check_for(self, host: str, port: int) -> KeyCheck:
        if self.known_hosts is not None:
            return KeyCheck([], tofu=False, known_hosts=self.known_hosts)
        return KeyCheck(self.pinned(host, port), tofu=True)

    def pinned(self, host: str, port: int) -> _Keys:
        name = pin_name(host, port)
        keys: _Keys = []
        for line in _read_lines(self.pin_file):
            parts = line.split()
            if len(parts) >= 3 and parts[0] == name:
                keys.append(asyncssh.import_public_key(f"{parts[1]} {parts[2]}"))
        return keys

    def pin(self, host: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Append a pin unless one exists. Returns False when a different key is already
        pinned (another connection pinned it first): the caller treats that as a mismatch."""
        existing = self.pinned(host, port)
        if existing:
            return key in existing
        self.pin_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = f"{pin_name(host, port)} {key.export_public_key().decode().strip()}\n"
        fd = os.open(self.pin_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


class _Client(asyncssh.SSHClient):
    def __init__(self, check: KeyCheck) -> None:
        self._check = check

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self._check.accept_unknown(key)


async def connect_verified(
    policy: HostKeyPolicy, label: str, host: str, port: int, **options: object
) -> asyncssh.SSHClientConnection:
    """asyncssh.connect with the host key checked by `policy`; a first-seen key is pinned
    (TOFU) once the connection is up. Raises HostKeyMismatch for a changed key and a permanent
    TransportError for a host missing from a user's known_hosts; other asyncssh errors pass."""
    try:
        check = policy.check_for(host, port)
        conn = await asyncssh.connect(
            host,
            port,
            known_hosts=check.lookup,
            # Offer every key type, so a host whose key changed type still reaches our check
            # (and is reported as a mismatch) instead of failing key exchange.
            server_host_key_algs="default",
            client_factory=lambda: _Client(check),
            **options,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise _refusal(policy, label, check.presented, check.trusted) from exc
    except ValueError as exc:  # asyncssh's KeyImportError: a corrupt key or known_hosts file
        raise TransportError(label, f"unreadable key material: {exc}", permanent=True) from exc
    if check.presented is not None and policy.tofu:
        try:
            pinned = policy.pin(host, port, check.presented)
        except OSError as exc:
            conn.close()
            reason = f"cannot pin host key in {policy.pin_file}: {exc}"
            raise TransportError(label, reason, permanent=True) from exc
        # Another connection to this host:port may have pinned a different key meanwhile.
        if not pinned:
            conn.close()
            raise _refusal(policy, label, check.presented, policy.pinned(host, port))
    return conn


def _refusal(
    policy: HostKeyPolicy, label: str, presented: asyncssh.SSHKey | None, trusted: _Keys
) -> TransportError:
    shown = fingerprint(presented) if presented else "a revoked or unreadable key"
    if trusted:
        known = ", ".join(fingerprint(k) for k in trusted)
        return HostKeyMismatch(label, f"host key changed: presented {shown}, expected {known}")
    return TransportError(
        label, f"host key {shown} is not in {policy.known_hosts}; refusing", permanent=True
    )
