"""Does the checkpoint's own pooling help? A held-out check of a mean-pooling head (the recipe search's third round).

all-MiniLM-L6-v2 was trained as a sentence embedder that averages its token vectors. soralab's classifier,
transformers' ``BertForSequenceClassification``, reads BERT's pooler instead: a dense layer and tanh over the first
token ([CLS]), a path that training never used. This script swaps the pooler for a masked mean over the tokens,
with the pooler's dense layer and tanh after it (``mean+dense``) or without them (``mean``). It then trains LoRA
with the recipe on the same held-out split as ``benchmarks/recipes.py`` (seed 7; the dev set is never loaded).
The [CLS] rows of the table are that search's runs, read from ``runs/recipes``.

The swap lives here, not in the package: it is an experiment, and it did not earn a place in the recipe
(``recipes_results.md``, third round). It wraps ``soralab.experiments.train.load_classifier`` for this process only.

Resumable (each run's result.json is reused), about 25 minutes on 2 CPU cores:

    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/pooling.py        # writes runs/pooling/
    python benchmarks/pooling.py --table      # the table in benchmarks/recipes_results.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import soralab.experiments.train as train
from soralab.experiments.run_config import CHECKPOINT_DROPOUT

SEED = 7  # the recipe search's held-out split
POOLINGS = ("mean", "mean+dense")
RATES = {"rte": (1e-3, 2e-3), "mrpc": (1e-3,)}  # the grid's 1e-3 and each task's recipe rate
METRIC = {"rte": "accuracy", "mrpc": "f1"}


class MeanPooler(nn.Module):
    """Masked mean of the last hidden states, optionally followed by the old pooler's dense layer and tanh.

    ``mask`` is set before every forward by the hook ``use_mean_pooling`` puts on the encoder."""

    def __init__(self, dense: nn.Linear, activation: nn.Module, use_dense: bool):
        super().__init__()
        self.dense, self.activation, self.use_dense = dense, activation, use_dense
        self.mask: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (batch, tokens, hidden) -> (batch, hidden)
        if self.mask is None:
            raise RuntimeError("MeanPooler called without a mask: the encoder's hook did not run")
        m = self.mask.unsqueeze(-1).to(hidden.dtype)
        x = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return self.activation(self.dense(x)) if self.use_dense else x


def use_mean_pooling(model: nn.Module, use_dense: bool) -> None:
    """Replace ``model.bert.pooler`` by a ``MeanPooler``; a forward pre-hook hands it each batch's attention mask."""
    bert = model.bert
    bert.pooler = MeanPooler(bert.pooler.dense, bert.pooler.activation, use_dense)

    def hand_mask(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        module.pooler.mask = mask if mask is not None else torch.ones(ids.shape, device=ids.device)

    bert.register_forward_pre_hook(hand_mask, with_kwargs=True)


def run(root: Path, task: str, pooling: str, lr: float) -> None:
    load = train.load_classifier

    def load_mean_pooled(*args, **kwargs):
        model, tokenizer = load(*args, **kwargs)
        use_mean_pooling(model, use_dense=pooling == "mean+dense")
        return model, tokenizer

    train.load_classifier = load_mean_pooled
    try:
        train.run_glue(task, "lora", learning_rate=lr, split_protocol="holdout", seed=SEED, progress=False,
                       output_dir=folder(root, task, pooling, lr), **CHECKPOINT_DROPOUT)
    finally:
        train.load_classifier = load


def folder(root: Path, task: str, pooling: str, lr: float) -> Path:
    return root / task / pooling / f"lr={lr:g}"


def scores(path: Path, task: str) -> list[float] | None:
    if not path.is_file():
        return None
    history = json.loads(path.read_text())["history"]
    return [100 * h[f"eval_validation_{METRIC[task]}"] for h in history]


def table(root: Path, recipes: Path) -> str:
    lines = ["| task | pooling | lr | held-out score per epoch | best |", "|---|---|---:|---|---:|"]
    for task, rates in RATES.items():
        for lr in rates:
            rows = [("[CLS] (the recipe's)", recipes / task / "lora" / f"lr={lr:g}_head=same" / "result.json")]
            rows += [(p, folder(root, task, p, lr) / "result.json") for p in POOLINGS]
            for name, path in rows:
                s = scores(path, task)
                cells = ("not run", "") if s is None else (" / ".join(f"{v:.1f}" for v in s), f"{max(s):.1f}")
                lines.append(f"| {task} ({METRIC[task]}) | {name} | {lr:g} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("runs/pooling"))
    ap.add_argument("--recipes", type=Path, default=Path("runs/recipes"), help="benchmarks/recipes.py's runs")
    ap.add_argument("--table", action="store_true", help="print the table from finished runs, train nothing")
    a = ap.parse_args()
    if not a.table:
        for task, rates in RATES.items():
            for lr in rates:
                for pooling in POOLINGS:
                    run(a.root, task, pooling, lr)  # reuses a finished run
                    print(task, pooling, f"lr={lr:g}", "done", flush=True)
    print(table(a.root, a.recipes))


if __name__ == "__main__":
    main()
