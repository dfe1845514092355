"""The corpus cases: what record.py runs, and what the supervisor must read from each log.

`command` runs under `/bin/sh -c` in a fresh directory holding a copy of programs/ and the
case's `files`, with PATH = the recording venv's bin + /usr/bin (or /usr/bin minus the `hide`
groups). `expect` is the supervisor's verdict when the log is replayed with fixes off and
max_attempts 2: status, outcome, failure kind (None for exit 0), step and total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    id: str
    command: str
    expect: dict[str, Any]
    how: str
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    hide: list[str] = field(default_factory=list)
    full_disk: str | None = None  # a 1 MiB tmpfs mounted at this subdirectory
    cgroup_mb: int = 0  # run in a memory cgroup with this limit
    run_json: dict[str, Any] = field(default_factory=dict)  # extra RUN.json keys for the replay
    replay_files: dict[str, str] = field(default_factory=dict)  # files the replay's cwd needs
    timeout_s: float = 600


def failed(
    kind: str, step: int | None = None, total: int | None = None, outcome: str = "unfixable"
) -> dict[str, Any]:
    return {"status": "failed", "outcome": outcome, "kind": kind, "step": step, "total": total}


def done(outcome: str, step: int | None, total: int | None) -> dict[str, Any]:
    return {"status": "done", "outcome": outcome, "kind": None, "step": step, "total": total}


ULIMIT = "ulimit -v 6000000; "  # 6 GB of address space: torch imports, big allocations fail
BASH_WRAPPER = "#!/bin/bash\nset -e\necho 'launching'\npython signals.py %s\necho 'finished'\n"
PIP_URL = "python -m pip install --retries 1 --timeout 5 "
PIP_LOCAL = PIP_URL + "--index-url "

CASES: list[Case] = [
    # ---- missing modules ---------------------------------------------------------------------
    Case(
        "mm_cv2",
        "python train.py",
        failed("missing_module"),
        "import cv2 with OpenCV not installed (a known distribution: opencv-python)",
        files={"train.py": "import torch\nimport cv2\n\nprint(cv2.__version__)\n"},
    ),
    Case(
        "mm_einops_requirements",
        "python train.py",
        failed("missing_module"),
        "import einops, not installed; listed in the user's requirements.txt",
        files={"train.py": "import einops\n", "requirements.txt": "einops==0.8.0\n"},
        replay_files={"requirements.txt": "einops==0.8.0\n"},
    ),
    Case(
        "mm_typo_torchvison",
        "python train.py",
        failed("missing_module"),
        "a typo in the user's import: torchvison (never pip-installed)",
        files={"train.py": "import torch\nimport torchvison\n"},
    ),
    Case(
        "mm_users_own_module",
        "python train.py",
        failed("missing_module"),
        "the user's own package lacks the submodule imported (pip cannot fix it)",
        files={"train.py": "from mymodels.layers import Block\n", "mymodels/__init__.py": ""},
        replay_files={"mymodels/__init__.py": ""},
    ),
    Case(
        "mm_python_m",
        "python -m trainer_pkg.main",
        failed("missing_module"),
        "python -m of a package that is not there (no quotes around the name)",
    ),
    Case(
        "mm_inside_library",
        "python train.py",
        failed("missing_module"),
        "a library imports an optional dependency that is missing (transformers -> timm)",
        files={
            "train.py": "from transformers import TimmWrapperConfig, TimmWrapperModel\n"
            "TimmWrapperModel(TimmWrapperConfig())\n"
        },
    ),
    Case(
        "err_printed_module_text",
        "python errors.py printed_module_error",
        failed("error", 12, 500),
        "dataset rows print 'No module named' and 'CUDA out of memory'; the real error differs",
    ),
    Case(
        "err_cannot_import_name",
        "python errors.py cannot_import_name",
        failed("error", 12, 500),
        "ImportError: cannot import name (a version mismatch, not a missing module)",
    ),
    # ---- missing build tools -----------------------------------------------------------------
    Case(
        "bt_pip_gcc",
        "cd cext && python -m pip install --no-build-isolation .",
        failed("missing_build_tool"),
        "pip builds a C extension with gcc hidden from PATH",
        hide=["cc"],
    ),
    Case(
        "bt_setuptools_gcc",
        "cd cext && python setup.py build_ext --inplace",
        failed("missing_build_tool"),
        "setup.py build_ext with gcc hidden from PATH",
        hide=["cc"],
    ),
    Case(
        "bt_pip_gxx",
        "cd cppext && python -m pip install --no-build-isolation .",
        failed("missing_build_tool"),
        "pip builds a C++ extension with g++/c++ hidden from PATH",
        hide=["cxx"],
    ),
    Case(
        "bt_cpp_extension_cxx",
        "python cpp_ext.py",
        failed("missing_build_tool", 0, 100),
        "torch.utils.cpp_extension.load_inline with c++ hidden (ninja present)",
        hide=["cxx"],
    ),
    Case(
        "bt_cpp_extension_ninja",
        "$PY cpp_ext.py",
        failed("missing_build_tool", 0, 100),
        "torch.utils.cpp_extension.load_inline with ninja hidden",
        hide=["ninja"],
    ),
    Case(
        "bt_inductor",
        "python inductor.py",
        failed("missing_build_tool", 0, 100),
        "torch.compile (inductor on CPU) with every C/C++ compiler hidden",
        hide=["cc"],
    ),
    Case(
        "bt_cmake",
        "mkdir -p build && cd build && cmake ../cmakeproj && make && cd .. && python train.py",
        failed("missing_build_tool"),
        "the user's command builds kernels with cmake, which is not installed",
        hide=["cmake"],
        files={"train.py": "print('step 1/10')\n"},
    ),
    Case(
        "bt_make",
        "make -C cmakeproj && python train.py",
        failed("missing_build_tool"),
        "the user's command runs make, which is not installed",
        hide=["make"],
        files={"train.py": "print('step 1/10')\n"},
    ),
    Case(
        "bt_python_h",
        "gcc -shared -fPIC -o fastops.so cext/fastops.c && python train.py",
        failed("missing_build_tool"),
        "gcc compiles an extension without the Python include dir: Python.h not found",
        files={"train.py": "print('step 1/10')\n"},
    ),
    Case(
        "bt_cmake_from_python",
        "python train.py",
        failed("missing_build_tool"),
        "a build script calls cmake through subprocess; cmake is not installed",
        hide=["cmake"],
        files={
            "train.py": "import subprocess\nprint('configuring kernels', flush=True)\n"
            "subprocess.check_call(['cmake', '-S', 'cmakeproj', '-B', 'build'])\n"
        },
    ),
    # ---- host memory -------------------------------------------------------------------------
    Case(
        "ho_torch_alloc",
        ULIMIT + "python memhog.py torch",
        failed("host_oom", 3, 100),
        "torch.empty of 64 GiB under ulimit -v (DefaultCPUAllocator)",
    ),
    Case(
        "ho_numpy_alloc",
        ULIMIT + "python memhog.py numpy",
        failed("host_oom", 3, 100),
        "np.zeros of 64 GiB under ulimit -v (_ArrayMemoryError)",
    ),
    Case(
        "ho_bytearray",
        ULIMIT + "python memhog.py bytes",
        failed("host_oom", 3, 100),
        "bytearray of 48 GiB under ulimit -v (bare MemoryError)",
    ),
    Case(
        "ho_list",
        ULIMIT + "python memhog.py list",
        failed("host_oom", 3, 100),
        "a Python list of 8 G floats under ulimit -v (bare MemoryError)",
    ),
    Case(
        "ho_cgroup_kill",
        "python memhog.py grow",
        failed("host_oom", 3, 100),
        "memory grows past a 300 MiB memory cgroup: the kernel OOM killer sends SIGKILL",
        cgroup_mb=300,
    ),
    Case(
        "ho_cgroup_kill_wrapped",
        "bash run.sh",
        failed("host_oom", 3, 100),
        "the same OOM kill inside a bash wrapper script (bash reports it, exit 137)",
        cgroup_mb=300,
        files={"run.sh": "#!/bin/bash\npython memhog.py grow\n"},
    ),
    Case(
        "ho_dataloader_worker",
        "python train.py",
        failed("host_oom", 2, 100),
        "a DataLoader worker is SIGKILLed (as the OOM killer does) while the loop runs",
        files={
            "train.py": "import os, signal, time, torch\n"
            "class D(torch.utils.data.Dataset):\n"
            "    def __len__(self): return 1000\n"
            "    def __getitem__(self, i): return torch.zeros(4)\n"
            "loader = torch.utils.data.DataLoader(D(), batch_size=10, num_workers=2)\n"
            "batches = iter(loader)\n"
            "for step in range(1, 101):\n"
            "    next(batches)\n"
            "    print('step %d/100' % step, flush=True)\n"
            "    if step == 2:  # what the kernel OOM killer does to a worker\n"
            "        os.kill(batches._workers[0].pid, signal.SIGKILL)\n"
            "        time.sleep(0.5)\n"
        },
    ),
    # ---- disk full ---------------------------------------------------------------------------
    Case(
        "df_python_write",
        "python diskfill.py python ckpt",
        failed("disk_full", 50, 100),
        "plain file writes into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_torch_save",
        "python diskfill.py torch ckpt",
        failed("disk_full", 50, 100),
        "torch.save (zip format) into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_torch_save_legacy",
        "python diskfill.py torch_legacy ckpt",
        failed("disk_full", 50, 100),
        "torch.save (legacy format) into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_numpy_save",
        "python diskfill.py numpy ckpt",
        failed("disk_full", 50, 100),
        "np.save into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_json_dump",
        "python diskfill.py json ckpt",
        failed("disk_full", 50, 100),
        "json.dump of metrics into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_safetensors",
        "python diskfill.py safetensors ckpt",
        failed("disk_full", 50, 100),
        "safetensors save_file into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_hf_save_pretrained",
        "python diskfill.py hf ckpt",
        failed("disk_full", 50, 100),
        "transformers save_pretrained into a full 1 MiB tmpfs",
        full_disk="ckpt",
    ),
    Case(
        "df_shell_cp",
        "python plain_loop.py --total 5 && dd if=/dev/zero of=ckpt/big.bin bs=1M count=4",
        failed("disk_full", 5, 5),
        "dd copies a file into a full 1 MiB tmpfs after training",
        full_disk="ckpt",
    ),
    # ---- signals and timeouts ----------------------------------------------------------------
    Case(
        "sig_term_self",
        "python signals.py SIGTERM",
        failed("signal", 7, 100),
        "SIGTERM (as a preemption sends), seen through sh -c as 143",
    ),
    Case(
        "sig_term_wrapped",
        "bash run.sh",
        failed("signal", 7, 100),
        "SIGTERM inside a bash wrapper script",
        files={"run.sh": BASH_WRAPPER % "SIGTERM"},
    ),
    Case(
        "sig_segv",
        "python signals.py segv",
        failed("signal", 7, 100),
        "a segfault in native code (ctypes NULL read), through sh -c: 139",
    ),
    Case(
        "sig_segv_faulthandler",
        "python -X faulthandler signals.py segv",
        failed("signal", 7, 100),
        "the same segfault with Python's faulthandler on",
    ),
    Case(
        "sig_segv_wrapped",
        "bash run.sh",
        failed("signal", 7, 100),
        "a segfault inside a bash wrapper script",
        files={"run.sh": BASH_WRAPPER % "segv"},
    ),
    Case(
        "sig_abort",
        "python signals.py abort",
        failed("signal", 7, 100),
        "abort() (SIGABRT, as a failed C++ assertion does): 134",
    ),
    Case(
        "sig_int",
        "python signals.py SIGINT",
        failed("signal", 7, 100),
        "SIGINT: Python's KeyboardInterrupt traceback, then exit 130",
    ),
    Case(
        "sig_bus",
        "python signals.py SIGBUS",
        failed("signal", 7, 100),
        "SIGBUS (as a truncated memory-mapped file gives): 135",
    ),
    Case(
        "sig_kill_external",
        "timeout -s KILL 3 python signals.py wait",
        failed("host_oom", 7, 100),
        "SIGKILL from outside (timeout -s KILL): 137, no trace",
    ),
    Case(
        "timeout_124",
        "timeout 3 python signals.py wait",
        failed("signal", 7, 100),
        "the user's own `timeout 3` wrapper ends the trainer: exit 124",
    ),
    # ---- transient network failures (127.0.0.1 and .invalid only) ----------------------------
    Case(
        "tr_pip_index_500",
        PIP_LOCAL + "http://127.0.0.1:$PORT/500/simple einops",
        failed("error"),
        "pip install against a local index answering 500: pip prints only 'from versions: "
        "none', the same as for a package that does not exist, so it cannot be told apart",
    ),
    Case(
        "tr_pip_url_503",
        PIP_URL + "http://127.0.0.1:$PORT/503/einops-0.8.0-py3-none-any.whl",
        failed("transient", outcome="budget_exhausted"),
        "pip install of a wheel URL on a local server answering 503",
    ),
    Case(
        "tr_pip_url_500",
        PIP_URL + "http://127.0.0.1:$PORT/500/einops-0.8.0-py3-none-any.whl",
        failed("transient", outcome="budget_exhausted"),
        "pip install of a wheel URL on a local server answering 500",
    ),
    Case(
        "tr_pip_reset",
        PIP_LOCAL + "http://127.0.0.1:$PORT/reset/simple einops",
        failed("transient", outcome="budget_exhausted"),
        "pip install against a local index that resets the connection",
    ),
    Case(
        "tr_pip_dns",
        PIP_LOCAL + "http://pypi-mirror.sleepwatch.invalid/simple "
        "--trusted-host pypi-mirror.sleepwatch.invalid einops",
        failed("transient", outcome="budget_exhausted"),
        "pip install against an index whose name does not resolve",
    ),
    Case(
        "tr_hub_500",
        "python netfail.py hub_file x",
        failed("transient", 0, 1000, "budget_exhausted"),
        "hf_hub_download against a local hub answering 500",
        env={"HF_ENDPOINT": "http://127.0.0.1:18765/500"},
    ),
    Case(
        "tr_hub_502_config",
        "python netfail.py hub_config x",
        failed("transient", 0, 1000, "budget_exhausted"),
        "AutoConfig.from_pretrained against a local hub answering 502",
        env={"HF_ENDPOINT": "http://127.0.0.1:18765/502"},
    ),
    Case(
        "tr_hub_reset",
        "python netfail.py hub_snapshot x",
        failed("transient", 0, 1000, "budget_exhausted"),
        "snapshot_download against a local hub that resets the connection",
        env={"HF_ENDPOINT": "http://127.0.0.1:18765/reset"},
    ),
    Case(
        "tr_hub_dns",
        "python netfail.py hub_config x",
        failed("transient", 0, 1000, "budget_exhausted"),
        "AutoConfig.from_pretrained against a hub name that does not resolve",
        env={"HF_ENDPOINT": "http://hub.sleepwatch.invalid"},
    ),
    Case(
        "tr_requests_reset",
        "python netfail.py requests http://127.0.0.1:$PORT/reset",
        failed("transient", 0, 1000, "budget_exhausted"),
        "requests.get of a data shard; the server resets the connection",
    ),
    Case(
        "tr_requests_503",
        "python netfail.py requests http://127.0.0.1:$PORT/503",
        failed("transient", 0, 1000, "budget_exhausted"),
        "requests.get of a data shard answered 503, raise_for_status",
    ),
    Case(
        "tr_urllib_dns",
        "python netfail.py urllib http://data.sleepwatch.invalid",
        failed("transient", 0, 1000, "budget_exhausted"),
        "urllib.request of a data shard from a name that does not resolve",
    ),
    Case(
        "tr_torch_hub_500",
        "python netfail.py torch_hub http://127.0.0.1:$PORT/500",
        failed("transient", 0, 1000, "budget_exhausted"),
        "torch.hub.download_url_to_file answered 500",
    ),
    # ---- progress and early stop (exit 0) ----------------------------------------------------
    Case(
        "pg_plain_steps",
        "python plain_loop.py --total 60",
        done("completed", 60, 60),
        "a plain loop printing step N/M to the end",
    ),
    Case(
        "pg_plain_every_5",
        "python plain_loop.py --total 60 --every 5",
        done("completed", 60, 60),
        "a plain loop printing step N/M every fifth step (a trainer that logs every N steps)",
    ),
    Case(
        "pg_plain_epoch_short",
        "python plain_loop.py --unit epoch --total 50 --stop-at 4",
        done("ended_short", 4, 50),
        "a plain loop printing epoch N/M breaks at 4/50, silently",
    ),
    Case(
        "pg_plain_epoch_says_stop",
        "python plain_loop.py --unit epoch --total 50 --stop-at 9 --say-stop",
        done("early_stopped", 9, 50),
        "a plain loop stops at epoch 9/50 and says early stopping",
    ),
    Case(
        "pg_tqdm_complete",
        "python tqdm_loop.py 300",
        done("completed", 300, 300),
        "a tqdm bar on stderr (\\r redraws) to the end",
    ),
    Case(
        "pg_tqdm_short",
        "python tqdm_loop.py 300 0 120",
        done("ended_short", 119, 300),
        "a tqdm loop that breaks at 120/300 (its bar shows 119) and exits 0 saying nothing",
    ),
    Case(
        "pg_tqdm_crash",
        "python tqdm_loop.py 300 77",
        failed("error", 76, 300),
        "a tqdm loop that raises at 77/300 (its bar shows 76; the error message says step 77)",
    ),
    Case(
        "pg_plain_flood",
        "python plain_loop.py --total 5000",
        done("completed", 5000, 5000),
        "a plain loop printing step N/M loss=... at every step, flat out: many lines a read",
    ),
    Case(
        "pg_tqdm_flood",
        "python tqdm_loop.py 5000",
        done("completed", 5000, 5000),
        "a tqdm bar redrawn at each of 5,000 steps (mininterval=0): many redraws a read",
    ),
    Case(
        "pg_user_regex",
        "python user_regex.py",
        done("completed", 40, 40),
        "a custom progress format read through the user's progress_regex",
        run_json={"progress_regex": r"it=(?P<step>\d+) of (?P<total>\d+)"},
    ),
    Case(
        "pg_hf_trainer_complete",
        "python hf_trainer.py --max-steps 40 --eval-steps 10",
        done("completed", 40, 40),
        "the HF Trainer on a tiny random BERT to max_steps, evaluating every 10 steps",
    ),
    Case(
        "pg_hf_trainer_crash",
        "python hf_trainer.py --max-steps 40 --fail-at 23",
        failed("error", 22, 40),
        "the HF Trainer raising in a callback at step 23/40 (its bar shows 22/40)",
    ),
    Case(
        "pg_hf_datasets_map_early_stop",
        "python hf_trainer.py --max-steps 100 --eval-steps 5 --early-stop --datasets-map",
        done("ended_short", 20, 100),
        "datasets' map draws a 3000-row bar before the HF Trainer's 100-step bar; "
        "EarlyStoppingCallback stops at 20/100",
    ),
    Case(
        "es_hf_early_stopping",
        "python hf_trainer.py --max-steps 100 --eval-steps 5 --early-stop",
        done("ended_short", 15, 100),
        "HF EarlyStoppingCallback(patience 2) stops the Trainer at 15/100; it prints nothing",
    ),
    Case(
        "pg_lightning_complete",
        "python lightning_fit.py complete",
        done("completed", 2, 2),
        "Lightning fit for 3 epochs; its rich bar counts epochs from 0: Epoch 2/2",
    ),
    Case(
        "pg_lightning_crash",
        "python lightning_fit.py crash",
        failed("error", 2, 19),
        "Lightning training_step raises at global step 17: bar Epoch 2/19",
    ),
    Case(
        "es_lightning_verbose",
        "python lightning_fit.py early_verbose",
        done("early_stopped", 2, 19),
        "Lightning EarlyStopping(verbose=True) stops fit and says so",
    ),
    Case(
        "es_lightning_quiet",
        "python lightning_fit.py early_quiet",
        done("ended_short", 2, 19),
        "Lightning EarlyStopping(verbose=False) stops fit at Epoch 2/19 and says nothing",
    ),
    Case(
        "pg_keras_complete",
        "python keras_fit.py full",
        done("completed", 5, 5),
        "Keras 3 (torch backend) fit for 5 epochs",
        env={"KERAS_BACKEND": "torch"},
    ),
    Case(
        "es_keras_early",
        "python keras_fit.py early",
        done("early_stopped", 3, 50),
        "Keras EarlyStopping(verbose=1) prints 'Epoch N: early stopping'",
        env={"KERAS_BACKEND": "torch"},
    ),
    Case(
        "pg_accelerate_launch",
        "accelerate launch --cpu --num_processes 1 accel_loop.py",
        done("completed", 60, 60),
        "accelerate launch of a custom loop with accelerate's tqdm",
    ),
    Case(
        "pg_deepspeed",
        "python ds_loop.py",
        done("completed", 50, None),
        "a DeepSpeed engine (CPU accelerator, gloo) for 50 steps; its INFO log says step=N",
        env={"DS_ACCELERATOR": "cpu"},
    ),
    Case(
        "pg_exit0_no_progress",
        "python train.py",
        done("completed", None, None),
        "a script that prints no progress at all and exits 0",
        files={"train.py": "print('wrote predictions.csv')\n"},
    ),
    # ---- ordinary errors ---------------------------------------------------------------------
    Case(
        "err_shape_mismatch",
        "python errors.py shape",
        failed("error", 12, 500),
        "torch: mat1 and mat2 shapes cannot be multiplied",
    ),
    Case(
        "err_cuda_unavailable",
        "python errors.py cuda_unavailable",
        failed("error", 12, 500),
        "torch CPU build asked for CUDA (not a GPU fault: a code or image problem)",
    ),
    Case(
        "err_file_not_found",
        "python errors.py file",
        failed("error", 12, 500),
        "the dataset file is missing",
    ),
    Case(
        "err_key_error", "python errors.py key", failed("error", 12, 500), "a KeyError in the batch"
    ),
    Case(
        "err_nan_assert",
        "python errors.py nan",
        failed("error", 12, 500),
        "an assertion on a nan loss",
    ),
    Case(
        "err_recursion",
        "python errors.py recursion",
        failed("error", 12, 500),
        "RecursionError in the user's code",
    ),
    Case(
        "err_argparse",
        "python plain_loop.py --epochs 3",
        failed("error"),
        "argparse rejects an unknown flag: exit 2",
    ),
    Case(
        "err_command_not_found",
        "trian.py --lr 3e-4",
        failed("error"),
        "a typo in the command itself: sh says not found, exit 127",
    ),
]
