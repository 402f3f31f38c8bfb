"""Run by tests/test_ddp.py under ``torch.distributed.run`` with two CPU processes (gloo backend).

Trains SoRA through ``run_glue`` (Trainer + accelerate handle the process group) and writes this
rank's gates to ``<out>/gates_rank<k>.safetensors``.
"""

import os
import sys

import torch.distributed as dist
from safetensors.torch import save_file

import soralab
from soralab.experiments.train import run_glue

out, model_path, data_dir = sys.argv[1:4]
result = run_glue("sst2", "sora", model_name_or_path=model_path, data_dir=data_dir, num_train_epochs=2, xi=20.0,
                  max_seq_length=32, per_device_train_batch_size=4, progress=False, device="cpu",
                  output_dir=os.path.join(out, "run"))
assert dist.is_initialized() and dist.get_world_size() == 2, "expected a 2-process group"
assert dist.get_backend() == "gloo"
gates = {name: m.gate.detach().clone() for name, m in soralab.adapter_modules(result.model, soralab.SoRALinear)}
save_file(gates, os.path.join(out, f"gates_rank{os.environ['RANK']}.safetensors"))
