"""What Vast says about an instance, in sleepwatch's words, pure: the fields read from its
instance JSON (units as Vast gives them), its `actual_status` values mapped to InstanceState,
what a Vast instance id looks like, and its console URL.

Used by core.providers.vast (the HTTP client, which re-exports these names) and by the
provider registry through it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from core.models import InstanceInfo, InstanceState

_INSTANCE_ID = re.compile(r"[0-9]{1,12}")
CONSOLE_URL = "https://cloud.vast.ai/instances/"

# Vast's actual_status values. "unknown" there means the host stopped reporting: lost.
_STATES: dict[str | None, InstanceState] = {
    None: InstanceState.LOADING,
    "created": InstanceState.LOADING,
    "loading": InstanceState.LOADING,
    "scheduling": InstanceState.LOADING,
    "running": InstanceState.RUNNING,
    "stopped": InstanceState.STOPPED,
    "exited": InstanceState.LOST,
    "unknown": InstanceState.LOST,
    "offline": InstanceState.LOST,
    "destroyed": InstanceState.GONE,
    "deleted": InstanceState.GONE,
}


def vast_state(actual_status: str | None) -> InstanceState:
    """Vast's `actual_status` in provider-neutral terms; a status this version does not know
    is UNKNOWN (shown, never acted on)."""
    return _STATES.get(actual_status, InstanceState.UNKNOWN)


def id_problem(instance_id: str) -> str | None:
    """Why this is not a Vast instance id (Vast's ids are decimal numbers), or None."""
    if _INSTANCE_ID.fullmatch(instance_id):
        return None
    return "a Vast instance id is a number of 1 to 12 digits"


class VastInstance(BaseModel):
    """The fields sleepwatch reads from Vast's instance JSON (units as Vast gives them)."""

    model_config = ConfigDict(extra="ignore")

    actual_status: str | None = None
    intended_status: str | None = None
    cur_state: str | None = None
    status_msg: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    dph_total: float | None = None  # $/h
    gpu_name: str | None = None
    num_gpus: int | None = None
    gpu_ram: float | None = None  # MB, per GPU
    cpu_ram: float | None = None  # MB
    disk_space: float | None = None  # GB
    reliability2: float | None = None
    cuda_max_good: float | None = None
    gpu_util: float | None = None  # fraction 0..1
    label: str | None = None
    machine_id: int | None = None
    public_ipaddr: str | None = None

    def to_info(self, instance_id: str) -> InstanceInfo:
        extra = {
            k: v
            for k, v in (
                ("intended_status", self.intended_status),
                ("cur_state", self.cur_state),
                ("status_msg", self.status_msg),
                ("machine_id", self.machine_id),
                ("public_ipaddr", self.public_ipaddr),
            )
            if v is not None
        }
        return InstanceInfo(
            id=instance_id,
            state=vast_state(self.actual_status),
            status=self.actual_status,
            ssh_host=self.ssh_host,
            ssh_port=self.ssh_port,
            dph_total=self.dph_total,
            gpu_name=self.gpu_name,
            num_gpus=self.num_gpus if self.num_gpus is not None else 1,
            gpu_ram_mb=self.gpu_ram,
            cpu_ram_mb=self.cpu_ram,
            disk_space_gb=self.disk_space,
            reliability=self.reliability2,
            cuda_max_good=self.cuda_max_good,
            gpu_util_pct=None if self.gpu_util is None else 100.0 * self.gpu_util,
            label=self.label,
            extra=extra,
        )
