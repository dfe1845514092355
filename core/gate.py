"""Run-first gate: a few hard checks of an instance against what the run needs. Pure.

Units. Vast reports `gpu_ram` and `cpu_ram` in MB that are in fact MiB (an RTX 4090 shows
24564), so memory is compared in GiB = MB / 1024. `disk_space` is in GB and so are the
disk needs. Every row prints both the figure and the need with its unit.

Called by core.launch.plan_launch with the provider's InstanceInfo before a launch; `sleepwatch
gate` prints its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from core.errors import ConfigError
from core.models import InstanceInfo

Method = Literal["full", "lora", "qlora", "inference"]

BYTES_PER_PARAM: dict[str, float] = {
    "full": 18.0,  # Adam, mixed precision: bf16 weights+grads, fp32 master+2 moments (16-18)
    "lora": 2.0,  # bf16 frozen weights; adapters and their optimizer state are small
    "qlora": 0.6,  # 4-bit weights plus quantization constants
    "inference": 2.0,  # bf16 weights
}
ACTIVATION_HEADROOM = 1.2
"""Multiplies the weight/optimizer bytes for activations, CUDA context and fragmentation."""
DISK_CHECKPOINTS_KEPT = 2
DISK_HEADROOM = 1.1
"""Disk need = checkpoint × 2 (the old one stays until the new one is written) + 10 %."""
_GIB = 2**30


class Verdict(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class GateSpec:
    """What the run needs. `vram_gb` (GiB, all GPUs together) wins over the estimate from
    `params_b` (billions of parameters) and `method`. `checkpoint_gb` is one checkpoint on
    disk in GB; unknown, it is taken as the weights in bf16 (2 GB per billion parameters)."""

    vram_gb: float | None = None
    params_b: float | None = None
    method: Method = "full"
    min_cpu_ram_gb: float | None = None
    checkpoint_gb: float | None = None
    min_reliability: float = 0.9
    min_cuda: float | None = None

    def __post_init__(self) -> None:
        if self.method not in get_args(Method):
            allowed = ", ".join(get_args(Method))
            raise ConfigError(f"gate method {self.method!r} is not one of {allowed}")
        for key in ("vram_gb", "params_b", "min_cpu_ram_gb", "checkpoint_gb", "min_cuda"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"gate {key} must not be negative (got {value})")
        if not 0.0 <= self.min_reliability <= 1.0:
            raise ConfigError(f"gate min_reliability must be in 0..1 (got {self.min_reliability})")


@dataclass(frozen=True, slots=True)
class GateRow:
    check: str
    figure: str
    need: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class GateReport:
    instance_id: str
    rows: tuple[GateRow, ...]

    @property
    def passed(self) -> bool:
        return all(row.verdict is not Verdict.FAIL for row in self.rows)

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(row.check for row in self.rows if row.verdict is Verdict.FAIL)

    def row(self, check: str) -> GateRow:
        return next(r for r in self.rows if r.check == check)

    def render(self) -> str:
        """A fixed-width table, then one line with the outcome."""
        table = [("check", "instance", "need", "verdict")]
        table += [(r.check, r.figure, r.need, r.verdict.value) for r in self.rows]
        widths = [max(len(cells[i]) for cells in table) for i in range(3)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3]
            for cells in table
        ]
        if self.passed:
            lines.append(f"gate passed for instance {self.instance_id}")
        else:
            failed = ", ".join(self.failed_checks)
            lines.append(f"gate FAILED for instance {self.instance_id}: {failed}")
        return "\n".join(lines)


def estimate_vram_gb(params_b: float, method: Method) -> float:
    """GPU memory likely needed, in GiB, all GPUs together:

        params_b × 1e9 × BYTES_PER_PARAM[method] × ACTIVATION_HEADROOM / 2**30

    with bytes per parameter full 18 (Adam in mixed precision, the cautious end of 16-18),
    lora 2, qlora 0.6, inference 2, and a headroom of 1.2. A 7B LoRA needs about 15.6 GiB,
    a 7B full fine-tune about 141 GiB.
    """
    return params_b * 1e9 * BYTES_PER_PARAM[method] * ACTIVATION_HEADROOM / _GIB


def run_gate(spec: GateSpec, instance: InstanceInfo) -> GateReport:
    rows = (
        _vram_row(spec, instance),
        _cpu_ram_row(spec, instance),
        _disk_row(spec, instance),
        _reliability_row(spec, instance),
        _cuda_row(spec, instance),
    )
    return GateReport(instance_id=instance.id, rows=rows)


def _judge(
    check: str, figure: float | None, shown: str, need: float | None, need_shown: str
) -> GateRow:
    """A row for `figure >= need`; skip when either side is unknown."""
    if need is None:
        return GateRow(check, shown, "-", Verdict.SKIP)
    if figure is None:
        return GateRow(check, "unknown", need_shown, Verdict.SKIP)
    verdict = Verdict.OK if figure >= need else Verdict.FAIL
    return GateRow(check, shown, need_shown, verdict)


def _vram_row(spec: GateSpec, inst: InstanceInfo) -> GateRow:
    total = None if inst.gpu_ram_mb is None else inst.gpu_ram_mb * inst.num_gpus / 1024
    shown = "unknown"
    if inst.gpu_ram_mb is not None and total is not None:
        name = f" {inst.gpu_name}" if inst.gpu_name else ""
        shown = f"{total:.1f} GiB ({inst.num_gpus}x{name} {inst.gpu_ram_mb:.0f} MB)"
    if spec.vram_gb is not None:
        need: float | None = spec.vram_gb
        need_shown = f">= {spec.vram_gb:.1f} GiB (given)"
    elif spec.params_b is not None:
        need = estimate_vram_gb(spec.params_b, spec.method)
        need_shown = f">= {need:.1f} GiB ({spec.method}, {spec.params_b:g}B params)"
    else:
        need, need_shown = None, "-"
    return _judge("VRAM", total, shown, need, need_shown)


def _cpu_ram_row(spec: GateSpec, inst: InstanceInfo) -> GateRow:
    ram = None if inst.cpu_ram_mb is None else inst.cpu_ram_mb / 1024
    shown = "unknown" if ram is None else f"{ram:.1f} GiB ({inst.cpu_ram_mb:.0f} MB)"
    if spec.min_cpu_ram_gb is not None:
        need: float | None = spec.min_cpu_ram_gb
        need_shown = f">= {spec.min_cpu_ram_gb:.1f} GiB (given)"
    elif spec.params_b is not None:
        # Loading a checkpoint passes the bf16 weights through host memory at least once.
        need = spec.params_b * 1e9 * 2 / _GIB
        need_shown = f">= {need:.1f} GiB (bf16 weights)"
    else:
        need, need_shown = None, "-"
    return _judge("CPU RAM", ram, shown, need, need_shown)


def _disk_row(spec: GateSpec, inst: InstanceInfo) -> GateRow:
    disk = inst.disk_space_gb
    shown = "unknown" if disk is None else f"{disk:.1f} GB"
    checkpoint = spec.checkpoint_gb
    basis = "checkpoint"
    if checkpoint is None and spec.params_b is not None:
        checkpoint, basis = spec.params_b * 2, "bf16 ckpt"
    if checkpoint is None:
        return _judge("disk", disk, shown, None, "-")
    need = checkpoint * DISK_CHECKPOINTS_KEPT * DISK_HEADROOM
    need_shown = f">= {need:.1f} GB (2x {checkpoint:g} GB {basis} +10%)"
    return _judge("disk", disk, shown, need, need_shown)


def _reliability_row(spec: GateSpec, inst: InstanceInfo) -> GateRow:
    rel = inst.reliability
    shown = "unknown" if rel is None else f"{rel:.3f}"
    return _judge("reliability", rel, shown, spec.min_reliability, f">= {spec.min_reliability:g}")


def _cuda_row(spec: GateSpec, inst: InstanceInfo) -> GateRow:
    cuda = inst.cuda_max_good
    shown = "unknown" if cuda is None else f"{cuda:g}"
    need_shown = "-" if spec.min_cuda is None else f">= {spec.min_cuda:g}"
    return _judge("CUDA", cuda, shown, spec.min_cuda, need_shown)
