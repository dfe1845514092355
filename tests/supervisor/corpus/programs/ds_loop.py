"""A DeepSpeed engine (CPU accelerator, gloo) on a tiny model; DeepSpeed logs its own steps."""

import os

import deepspeed
import torch
from deepspeed.utils.logging import set_log_level_from_string

set_log_level_from_string("info")  # DeepSpeed logs at WARNING unless asked: step lines are INFO

os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29531")
os.environ.setdefault("RANK", "0")
os.environ.setdefault("LOCAL_RANK", "0")
os.environ.setdefault("WORLD_SIZE", "1")
deepspeed.init_distributed(dist_backend="gloo")
model = torch.nn.Linear(8, 1)
config = {
    "train_batch_size": 8,
    "steps_per_print": 10,
    "optimizer": {"type": "SGD", "params": {"lr": 0.01}},
}
engine, _, _, _ = deepspeed.initialize(
    model=model, model_parameters=model.parameters(), config=config
)
for _ in range(50):
    x, y = torch.randn(8, 8), torch.randn(8, 1)
    loss = torch.nn.functional.mse_loss(engine(x), y)
    engine.backward(loss)
    engine.step()
print("done at global step %d" % engine.global_steps, flush=True)
