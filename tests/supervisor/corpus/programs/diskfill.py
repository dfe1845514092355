"""Writes to a directory on a full filesystem, the way trainers save (argv: how, out_dir)."""

import os
import sys

how, out = sys.argv[1], sys.argv[2]
print("step 50/100 loss=0.8123", flush=True)
print("saving checkpoint to {}".format(os.path.basename(out.rstrip("/"))), flush=True)
if how == "torch":
    import torch

    torch.save({"w": torch.zeros(1024, 1024)}, os.path.join(out, "ckpt.pt"))
elif how == "torch_legacy":
    import torch

    torch.save(
        {"w": torch.zeros(1024, 1024)},
        os.path.join(out, "ckpt.pt"),
        _use_new_zipfile_serialization=False,
    )
elif how == "numpy":
    import numpy as np

    np.save(os.path.join(out, "emb.npy"), np.zeros((1024, 1024), dtype=np.float32))
elif how == "python":
    with open(os.path.join(out, "data.bin"), "wb") as fh:
        for _ in range(64):
            fh.write(b"\0" * 1024 * 1024)
elif how == "json":
    import json

    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump({"rows": list(range(1_000_000))}, fh)
elif how == "safetensors":
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1024, 1024)}, os.path.join(out, "model.safetensors"))
elif how == "hf":
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=30000,
    )
    BertModel(cfg).save_pretrained(out)
print("saved", flush=True)
