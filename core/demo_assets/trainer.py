"""A small stand-in for a real training script, used by `sleepwatch demo`.

It prints progress as tqdm does (carriage-return redraws) and loss dicts as HuggingFace's
Trainer does, and it fails the way real trainers fail: a CUDA OOM at evaluation, a crash with a
real traceback, a silent hang, a missing module. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

OOM_TEXT = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
    "capacity of 79.25 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process "
    "has 78.18 GiB memory in use. Of the allocated memory 74.50 GiB is allocated by PyTorch, and "
    "2.61 GiB is reserved by PyTorch but unallocated."
)


def bar(step: int, total: int, rate: float) -> str:
    done = int(20 * step / total)
    fill = "#" * done + " " * (20 - done)
    return f"\rtrain: {100 * step // total:3d}%|{fill}| {step}/{total} [{rate:.2f}it/s]"


def evaluate(eval_batch_size: int, scenario: str) -> None:
    print(f"\n***** Running evaluation (eval_batch_size={eval_batch_size}) *****", flush=True)
    if scenario == "oom" and eval_batch_size > 32:
        print("Traceback (most recent call last):", file=sys.stderr)
        print('  File "train.py", line 88, in evaluate', file=sys.stderr)
        print("    logits = model(**batch).logits", file=sys.stderr)
        print(OOM_TEXT, file=sys.stderr, flush=True)
        sys.exit(1)
    print("{'eval_loss': 0.912, 'eval_accuracy': 0.71}", flush=True)


def save_checkpoint(name: str, step: int, loss: float) -> None:
    """What a trainer leaves behind: a weights file and its metrics (the demo collects them)."""
    os.makedirs(name, exist_ok=True)
    with open(os.path.join(name, "model.bin"), "wb") as fh:
        fh.write(os.urandom(64 * 1024) * 4)  # 256 KB of "weights"
    with open("metrics.json", "w") as fh:
        fh.write(f'{{"step": {step}, "loss": {loss:.4f}}}\n')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="healthy")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--step-s", type=float, default=0.1)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--marker-dir", default=".")
    args = parser.parse_args()
    if args.scenario == "missing-module":
        import sleepwatch_demo_dep  # type: ignore[import-not-found]  # noqa: F401  (pip fix installs it)
    stall_marker = os.path.join(args.marker_dir, "stalled-once")
    loss = 2.5
    for step in range(1, args.steps + 1):
        time.sleep(args.step_s)
        loss *= 0.95
        sys.stdout.write(bar(step, args.steps, 1 / args.step_s))
        sys.stdout.flush()
        if step % 10 == 0:
            print(
                f"\n{{'loss': {loss:.4f}, 'learning_rate': 5e-05, "
                f"'epoch': {step / args.steps:.2f}}}",
                flush=True,
            )
        if step == 10:
            save_checkpoint("checkpoint-10", step, loss)
        if step == args.steps // 2:
            evaluate(args.eval_batch_size, args.scenario)
        if args.scenario == "crash" and step == 8:
            raise RuntimeError("loss is NaN at step 8: check the learning rate and fp16 scaling")
        if args.scenario == "stall" and step == 10 and not os.path.exists(stall_marker):
            open(stall_marker, "w").close()
            time.sleep(3600)  # a hung NCCL collective, say: no output, GPU idle
    save_checkpoint("checkpoint-final", args.steps, loss)
    print("\nTraining completed. {'train_runtime': 3.1, 'train_loss': 0.61}", flush=True)


if __name__ == "__main__":
    main()
