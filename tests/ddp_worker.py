"""Run by tests/test_ddp.py under ``torch.distributed.run`` with two CPU processes (gloo backend).

Trains SoRA (keep 0.5) through ``run_glue`` (Trainer + accelerate handle the process group) and writes this
rank's gates to ``<out>/gates_rank<k>.safetensors``.
"""

import os
import sys
import warnings

import torch.distributed as dist
from safetensors.torch import save_file

import soralab
from soralab.experiments.train import run_glue

out, model_path, data_dir = sys.argv[1:4]
# KeepCallback warns when its schedule was sized for other than the Trainer's steps (two processes: half as many)
warnings.filterwarnings("error", message="the keep schedule was sized")
result = run_glue("sst2", "sora", model_name_or_path=model_path, data_dir=data_dir, num_train_epochs=2, keep=0.5,
                  learning_rate=1e-2, max_seq_length=32, per_device_train_batch_size=4, progress=False, device="cpu",
                  output_dir=os.path.join(out, "run"))
assert dist.is_initialized() and dist.get_world_size() == 2, "expected a 2-process group"
assert dist.get_backend() == "gloo"
assert [round(row["epoch"]) for row in result.history] == [1, 2], ("one evaluation per epoch", result.history)
gates = {name: m.gate.detach().clone() for name, m in soralab.adapter_modules(result.model, soralab.SoRALinear)}
save_file(gates, os.path.join(out, f"gates_rank{os.environ['RANK']}.safetensors"))
