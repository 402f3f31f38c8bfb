"""Recount AdaLoRA's ``params_after_prune`` in results saved before 2026-11-29, when it was AdaLoRA's trainable
count (every module at its initial rank 12, with AdaLoRA's vector E).

``run_glue`` now counts AdaLoRA at the ranks its allocator left (``soralab.experiments.methods.pruned_params``):
each module as a plain LoRA of its final rank, plus the head. A saved result keeps those ranks (``active_ranks``),
so the count needs no training. For each AdaLoRA ``result.json`` under the folders given, this script rebuilds
the run's model at its initial ranks from the run's own configuration (``prepare``, as ``run_glue`` does), checks
that it trains exactly the ``trainable_params`` the result recorded, and counts it at the saved ranks with the
function ``run_glue`` uses. Only ``params_after_prune`` changes; each file is rewritten atomically. Running it
again changes nothing.

    python benchmarks/recount_adalora.py benchmarks/records/quality_v3 runs/quality-v3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from soralab.errors import UsageError
from soralab.experiments import glue
from soralab.experiments.methods import prepare, pruned_params
from soralab.experiments.models import HEADS, TARGETS, load_classifier, model_family
from soralab.experiments.results import dumps
from soralab.experiments.run_config import RESULT_NAME
from soralab.files import atomic_write_text
from soralab.layers import count_trainable


def recount(path: Path, saved: dict, models: dict) -> tuple[int, int]:
    """(old, new) ``params_after_prune`` of one AdaLoRA result (``saved``, read from ``path``); the file is rewritten
    when they differ."""
    c = saved["config"]
    key = (c["model_name_or_path"], glue.get_task(c["task"]).num_labels, c["r"], tuple(c["target_modules"] or ()))
    if key not in models:
        model, _ = load_classifier(c["model_name_or_path"], num_labels=key[1])
        family = model_family(model)
        models[key] = prepare(model, "adalora", r=c["r"], lora_alpha=c["lora_alpha"], lora_dropout=c["lora_dropout"],
                              target_modules=c["target_modules"] or TARGETS[family], heads=HEADS[family],
                              total_steps=1000)  # the schedule's length does not change any count
    model = models[key]
    if count_trainable(model) != saved["trainable_params"]:
        raise UsageError(f"{path}: the rebuilt model trains {count_trainable(model):,} parameters, the result "
                         f"recorded {saved['trainable_params']:,}; it was not made by this model and config")
    old, new = saved["params_after_prune"], pruned_params(model, saved["active_ranks"])
    if new != old:
        saved["params_after_prune"] = new
        atomic_write_text(path, dumps(saved))  # as run_glue writes it
    return old, new


def main(folders: list[str]) -> None:
    models: dict = {}
    for folder in folders:
        found = {p: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).rglob(RESULT_NAME))}
        found = {p: saved for p, saved in found.items() if saved["config"]["method"] == "adalora"}
        if not found:
            raise UsageError(f"no AdaLoRA {RESULT_NAME} under {folder!r}; give a record folder such as "
                             f"benchmarks/records/quality_v3")
        for p, saved in found.items():
            old, new = recount(p, saved, models)
            print(f"{p}: {old:,} -> {new:,}" if new != old else f"{p}: {new:,} (unchanged)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="folders holding AdaLoRA result.json files (searched below)")
    main(parser.parse_args().folders)
