"""The HF Trainer on a tiny randomly initialised model (built from a config: no hub download).

python hf_trainer.py [--max-steps N] [--early-stop] [--eval-steps N] [--fail-at N]
"""

import argparse
import os

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

parser = argparse.ArgumentParser()
parser.add_argument("--max-steps", type=int, default=40)
parser.add_argument("--eval-steps", type=int, default=10)
parser.add_argument("--early-stop", action="store_true")
parser.add_argument("--fail-at", type=int, default=0)
parser.add_argument("--datasets-map", action="store_true", help="rows through datasets' map")
args = parser.parse_args()
torch.manual_seed(0)


class Rows(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 100, (n, 16), generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.y[i]}


class FailAt(TrainerCallback):
    def on_step_end(self, a, state, control, **kw):
        if args.fail_at and state.global_step == args.fail_at:
            raise RuntimeError("loss is nan at step %d" % state.global_step)


config = BertConfig(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=2,
)
model = BertForSequenceClassification(config)
callbacks = [FailAt()]
if args.early_stop:
    callbacks.append(EarlyStoppingCallback(early_stopping_patience=2))
training = TrainingArguments(
    output_dir=os.path.join(os.getcwd(), "out"),
    max_steps=args.max_steps,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    eval_strategy="steps",
    eval_steps=args.eval_steps,
    save_strategy="steps" if args.early_stop else "no",
    save_steps=args.eval_steps,
    load_best_model_at_end=args.early_stop,
    metric_for_best_model="eval_loss",
    greater_is_better=False,
    learning_rate=5e-2 if args.early_stop else 1e-3,
    logging_steps=5,
    report_to=[],
    use_cpu=True,
    disable_tqdm=False,
    seed=0,
)
train = Rows(2000, 1)
if args.datasets_map:
    # The usual preprocessing: a `datasets` map over the rows draws its own bar (3000 rows).
    from datasets import Dataset

    ids, labels = train.x.tolist(), train.y.tolist()
    rows = Dataset.from_dict({"input_ids": ids + ids[:1000], "labels": labels + labels[:1000]})
    train = rows.map(lambda row: {"input_ids": row["input_ids"][::-1]}).with_format("torch")
trainer = Trainer(
    model=model,
    args=training,
    train_dataset=train,
    eval_dataset=Rows(48, 2),
    callbacks=callbacks,
)
trainer.train()
