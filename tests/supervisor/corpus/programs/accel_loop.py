"""A custom loop under `accelerate launch --cpu`, with accelerate's main-process tqdm."""

import torch
from accelerate import Accelerator
from accelerate.utils import tqdm

accelerator = Accelerator(cpu=True)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
data = torch.utils.data.TensorDataset(torch.randn(480, 8), torch.randn(480, 1))
loader = torch.utils.data.DataLoader(data, batch_size=8)
model, opt, loader = accelerator.prepare(model, opt, loader)
for x, y in tqdm(loader, main_process_only=True):
    loss = torch.nn.functional.mse_loss(model(x), y)
    accelerator.backward(loss)
    opt.step()
    opt.zero_grad()
accelerator.print(f"done: loss {loss.item():.4f}")
