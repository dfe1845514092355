"""Ordinary bugs in a trainer: the supervisor must call them `error`, not something fixable."""

import sys

how = sys.argv[1]
print("step 12/500 loss=0.9312", flush=True)
if how == "shape":
    import torch

    torch.nn.Linear(16, 8)(torch.zeros(4, 32))
elif how == "cuda_unavailable":
    import torch

    torch.zeros(2).cuda()
elif how == "file":
    open("data/train.jsonl").read()
elif how == "key":
    batch = {"input_ids": [1, 2, 3]}
    print(batch["labels"])
elif how == "nan":
    import math

    loss = float("nan")
    assert not math.isnan(loss), "loss is nan"
elif how == "printed_module_error":
    # A dataset row that happens to contain an error text, then a different, real failure.
    print("sample 41: 'ModuleNotFoundError: No module named \\'flash_attn\\'' (from a bug report)")
    print("sample 42: 'CUDA out of memory. Tried to allocate 2.00 GiB' (from a forum post)")
    raise ValueError("label 7 is out of range for 5 classes")
elif how == "cannot_import_name":
    from transformers import AutoModelForMagic  # noqa: F401
elif how == "recursion":

    def f(n):
        return f(n + 1)

    f(0)
