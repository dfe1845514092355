"""Record the CUDA cases of the corpus. Needs a machine with an NVIDIA GPU and a CUDA build of
torch in the recording venv; nothing here runs on a CPU-only machine, and the corpus holds
no CUDA log until this script has been run on one (none are typed by hand).

    python3 tests/supervisor/corpus/record_gpu.py --venv /path/to/venv-with-cuda-torch

Writes logs/gpu_*.log and their manifest rows next to the CPU cases (record.py's machinery).
NCCL watchdog timeouts need two GPUs (two ranks on one GPU are refused by NCCL): the
`gpu_nccl_watchdog` case is skipped on a single-GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cases import Case, failed  # noqa: E402
from record import LOGS, MANIFEST, manifest_row, run_case  # noqa: E402

NCCL_HANG = (
    "import os, datetime, torch, torch.distributed as dist\n"
    "dist.init_process_group('nccl', timeout=datetime.timedelta(seconds=20))\n"
    "rank = dist.get_rank(); torch.cuda.set_device(rank)\n"
    "print('step 1/100 rank', rank, flush=True)\n"
    "t = torch.ones(1, device='cuda')\n"
    "if rank == 0:\n"
    "    dist.all_reduce(t); torch.cuda.synchronize()\n"
    "else:\n"
    "    import time; time.sleep(120)\n"
)

GPU_CASES = [
    Case(
        "gpu_oom",
        "python cuda_fail.py oom",
        failed("oom", 5, 100),
        "torch.empty of twice the GPU's memory: torch.OutOfMemoryError",
    ),
    Case(
        "gpu_oom_fragmented",
        "python cuda_fail.py oom_fragmented",
        failed("oom", 5, 100),
        "1 GiB blocks until the GPU is full",
    ),
    Case(
        "gpu_cublas_alloc",
        "python cuda_fail.py cublas_alloc",
        failed("oom", 5, 100),
        "the first fp16 matmul with 8 MiB left: cuBLAS cannot allocate its workspace",
    ),
    Case(
        "gpu_device_assert",
        "python cuda_fail.py device_assert",
        failed("gpu_fault", 5, 100),
        "an Embedding index out of range: device-side assert triggered",
    ),
    Case(
        "gpu_cross_entropy_assert",
        "python cuda_fail.py cross_entropy_assert",
        failed("gpu_fault", 5, 100),
        "a label out of range in cross_entropy on the GPU",
    ),
    Case(
        "gpu_illegal_access",
        "python cuda_fail.py illegal_access",
        failed("gpu_fault", 5, 100),
        "a CUDA kernel writing far out of bounds: an illegal memory access",
    ),
    Case(
        "gpu_nccl_watchdog",
        "torchrun --nproc_per_node 2 nccl_hang.py",
        failed("gpu_fault", 1, 100),
        "rank 1 never joins an all_reduce: the NCCL watchdog fires",
        files={"nccl_hang.py": NCCL_HANG},
    ),
]


def gpu_count(venv: str) -> int:
    code = "import torch; print(torch.cuda.device_count())"
    done = subprocess.run(
        [os.path.join(venv, "bin", "python"), "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.strip() or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", required=True)
    args = parser.parse_args()
    count = gpu_count(args.venv)
    if count < 1:
        raise SystemExit(f"no CUDA GPU visible to {args.venv}: nothing recorded")
    with open(MANIFEST) as fh:
        manifest = json.load(fh)
    rows = {row["id"]: row for row in manifest["cases"]}
    for case in GPU_CASES:
        if case.id == "gpu_nccl_watchdog" and count < 2:
            print("%-28s skipped (needs 2 GPUs)" % case.id)
            continue
        rec = run_case(case, args.venv)
        with open(os.path.join(LOGS, case.id + ".log"), "wb") as fh:
            fh.write(rec.output)
        rows[case.id] = manifest_row(rec)
        print("%-28s exit %4d  %6d bytes" % (case.id, rec.exit_code, len(rec.output)))
    manifest["cases"] = list(rows.values())
    with open(MANIFEST, "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
