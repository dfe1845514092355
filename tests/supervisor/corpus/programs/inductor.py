"""torch.compile (inductor, CPU) of a tiny model: needs a working C++ compiler."""

import torch

model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
compiled = torch.compile(model)
print("step 0/100 compiling", flush=True)
print(compiled(torch.randn(4, 8)).sum())
