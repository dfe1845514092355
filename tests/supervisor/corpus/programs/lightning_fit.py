"""Lightning on a tiny model: fit to the end, EarlyStopping (verbose or quiet), or a crash."""

import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping

how = sys.argv[1]
torch.manual_seed(0)


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 1)

    def training_step(self, batch, i):
        x, y = batch
        if how == "crash" and self.global_step == 17:
            raise RuntimeError("Expected all tensors to be on the same device")
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        # Validation loss that gets worse every epoch, so EarlyStopping fires.
        self.log("val_loss", 1.0 + self.current_epoch * 0.1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
loader = torch.utils.data.DataLoader(data, batch_size=8)
callbacks = []
if how in ("early_verbose", "early_quiet"):
    callbacks.append(EarlyStopping("val_loss", patience=2, verbose=how == "early_verbose"))
trainer = L.Trainer(
    max_epochs=20 if how != "complete" else 3,
    callbacks=callbacks,
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    enable_model_summary=False,
)
trainer.fit(Tiny(), loader, loader)
