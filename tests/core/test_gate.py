"""The run-first gate: pure, realistic Vast figures (MB for memory, GB for disk)."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.gate import GateSpec, Verdict, estimate_vram_gb, run_gate
from core.models import InstanceInfo, InstanceState

RTX_4090 = InstanceInfo(
    id="123",
    state=InstanceState.RUNNING,
    gpu_name="RTX 4090",
    num_gpus=1,
    gpu_ram_mb=24564,
    cpu_ram_mb=64000,
    disk_space_gb=100.0,
    reliability=0.995,
    cuda_max_good=12.4,
    dph_total=0.41,
)


def test_vram_estimates_follow_the_documented_formula() -> None:
    assert estimate_vram_gb(7, "full") == pytest.approx(7e9 * 18 * 1.2 / 2**30)
    assert estimate_vram_gb(7, "lora") == pytest.approx(15.65, abs=0.01)
    assert estimate_vram_gb(7, "qlora") == pytest.approx(4.69, abs=0.01)
    assert estimate_vram_gb(7, "inference") == estimate_vram_gb(7, "lora")


def test_a_7b_lora_fits_an_rtx_4090() -> None:
    report = run_gate(GateSpec(params_b=7, method="lora"), RTX_4090)
    assert report.passed
    vram = report.row("VRAM")
    assert vram.verdict is Verdict.OK
    assert vram.figure == "24.0 GiB (1x RTX 4090 24564 MB)"  # MB per GPU -> GiB
    assert vram.need == ">= 15.6 GiB (lora, 7B params)"
    assert report.row("CPU RAM").figure == "62.5 GiB (64000 MB)"
    assert report.row("disk").figure == "100.0 GB"
    assert report.row("reliability").verdict is Verdict.OK
    assert report.row("CUDA").verdict is Verdict.SKIP


def test_a_7b_full_fine_tune_is_refused_on_one_4090_with_the_vram_row() -> None:
    report = run_gate(GateSpec(params_b=7, method="full"), RTX_4090)
    assert not report.passed
    assert report.failed_checks == ("VRAM",)
    assert report.row("VRAM").need == ">= 140.8 GiB (full, 7B params)"


def test_vram_counts_every_gpu() -> None:
    eight = InstanceInfo(id="8", state=InstanceState.RUNNING, num_gpus=8, gpu_ram_mb=81559)
    report = run_gate(GateSpec(params_b=7, method="full"), eight)
    assert report.row("VRAM").verdict is Verdict.OK
    assert report.row("VRAM").figure.startswith("637.2 GiB (8x 81559 MB)")


def test_a_given_vram_need_wins_over_the_estimate() -> None:
    report = run_gate(GateSpec(vram_gb=30, params_b=1, method="qlora"), RTX_4090)
    assert report.row("VRAM").verdict is Verdict.FAIL
    assert report.row("VRAM").need == ">= 30.0 GiB (given)"


def test_cpu_ram_disk_reliability_and_cuda_refuse_with_their_own_rows() -> None:
    weak = InstanceInfo(
        id="77", state=InstanceState.RUNNING, gpu_ram_mb=24564, cpu_ram_mb=16000,
        disk_space_gb=40.0, reliability=0.85, cuda_max_good=11.8,
    )  # fmt: skip
    spec = GateSpec(params_b=1, method="lora", min_cpu_ram_gb=32, checkpoint_gb=20, min_cuda=12.1)
    report = run_gate(spec, weak)
    assert report.failed_checks == ("CPU RAM", "disk", "reliability", "CUDA")
    assert report.row("CPU RAM").figure == "15.6 GiB (16000 MB)"
    assert report.row("CPU RAM").need == ">= 32.0 GiB (given)"
    assert report.row("disk").need == ">= 44.0 GB (2x 20 GB checkpoint +10%)"
    assert report.row("reliability").figure == "0.850"
    assert report.row("CUDA").need == ">= 12.1"


def test_cpu_ram_and_disk_needs_default_to_the_bf16_weights() -> None:
    report = run_gate(GateSpec(params_b=70, method="qlora"), RTX_4090)
    assert report.row("CPU RAM").need == ">= 130.4 GiB (bf16 weights)"
    assert report.row("CPU RAM").verdict is Verdict.FAIL
    assert report.row("disk").need == ">= 308.0 GB (2x 140 GB bf16 ckpt +10%)"
    assert report.row("disk").verdict is Verdict.FAIL


def test_with_nothing_declared_only_reliability_is_checked() -> None:
    report = run_gate(GateSpec(), RTX_4090)
    verdicts = {row.check: row.verdict for row in report.rows}
    assert verdicts == {
        "VRAM": Verdict.SKIP, "CPU RAM": Verdict.SKIP, "disk": Verdict.SKIP,
        "reliability": Verdict.OK, "CUDA": Verdict.SKIP,
    }  # fmt: skip
    assert report.passed


def test_unknown_instance_figures_are_skipped_not_guessed() -> None:
    bare = InstanceInfo(id="1", state=InstanceState.RUNNING)
    report = run_gate(GateSpec(params_b=7, method="lora"), bare)
    assert report.row("VRAM").figure == "unknown"
    assert report.row("VRAM").verdict is Verdict.SKIP
    assert report.passed


def test_render_prints_a_table_and_the_outcome() -> None:
    text = run_gate(GateSpec(params_b=7, method="full"), RTX_4090).render()
    lines = text.splitlines()
    assert lines[0].split() == ["check", "instance", "need", "verdict"]
    assert len(lines) == 7
    header_verdict_col = lines[0].index("verdict")
    assert all(line[header_verdict_col:].strip() in {"ok", "FAIL", "skip"} for line in lines[1:6])
    assert lines[1].startswith("VRAM") and lines[1].endswith("FAIL")
    assert lines[-1] == "gate FAILED for instance 123: VRAM"
    passed = run_gate(GateSpec(params_b=7, method="lora"), RTX_4090).render()
    assert passed.splitlines()[-1] == "gate passed for instance 123"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"method": "dpo"}, "method"), ({"params_b": -1}, "params_b"),
     ({"min_reliability": 1.5}, "min_reliability")],
)  # fmt: skip
def test_a_bad_spec_is_refused_naming_the_key(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        GateSpec(**kwargs)  # type: ignore[arg-type]
