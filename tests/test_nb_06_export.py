"""Twin of notebooks/06_prune_merge_export.ipynb on a tiny checkpoint: LoRA and SoRA trained with run_glue;
pruning keeps the outputs and stores fewer values; merging keeps the outputs and gives back exactly the base
model (module types, parameter count, no adapter); PEFT export refuses unpruned SoRA and reloads pruned SoRA
identically; save_adapter / load_adapter round-trips all three forms; the cost table is consistent to the
parameter and to the byte.
"""

import copy
import json

import pytest
import torch
from keyword_fixture import write_keyword_sst2
from peft import PeftModel
from transformers import AutoModelForSequenceClassification

import soralab
from soralab.experiments.costs import file_cost, interleaved_latency
from soralab.experiments.models import load_classifier, save_tiny_checkpoint
from soralab.experiments.train import run_glue

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add contention

R = 8
FAST = dict(max_seq_length=32, per_device_train_batch_size=8, per_device_eval_batch_size=32, num_train_epochs=3,
            learning_rate=1e-2, r=R, progress=False)


def same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # as in the notebook


@pytest.fixture(scope="module")
def nb(tmp_path_factory):
    """The notebook's chain, built once: trained LoRA / SoRA, pruned and merged copies, saved files."""
    root = tmp_path_factory.mktemp("nb06")
    dev = write_keyword_sst2(root / "glue")["validation"]
    ckpt = save_tiny_checkpoint(root / "bert")
    kw = dict(model_name_or_path=ckpt, data_dir=str(root / "glue"), **FAST)
    res = {"LoRA": run_glue("sst2", "lora", **kw), "SoRA": run_glue("sst2", "sora", xi=1.0, **kw)}
    base, tokenizer = load_classifier(ckpt)
    batch = tokenizer([sentence for sentence, _ in dev[:16]], padding=True, return_tensors="pt")
    models = {"LoRA": res["LoRA"].model.eval(), "SoRA": res["SoRA"].model.eval()}
    report = soralab.gate_report(models["SoRA"])
    models["pruned SoRA"] = soralab.prune(copy.deepcopy(models["SoRA"]))
    models["merged SoRA"] = soralab.merge(copy.deepcopy(models["pruned SoRA"]))
    with torch.no_grad():
        logits = {name: m(**batch).logits for name, m in models.items()}
    files = {name: soralab.save_adapter(models[name], root / name.replace(" ", "_")) / "soralab_adapter.safetensors"
             for name in ("LoRA", "SoRA", "pruned SoRA")}
    models["merged SoRA"].save_pretrained(root / "merged")
    files["merged SoRA"] = root / "merged" / "model.safetensors"
    return dict(root=root, ckpt=ckpt, res=res, base=base, batch=batch, models=models, report=report,
                logits=logits, files=files)


def test_some_gates_died_and_the_adapters_matter(nb):
    assert 0 < nb["report"].active_rank < nb["report"].r_max
    sora = copy.deepcopy(nb["models"]["SoRA"])
    with torch.no_grad():
        for _, m in soralab.adapter_modules(sora):
            m.lora_B.zero_()
        without = sora(**nb["batch"]).logits
    # the identity checks below use atol=1e-5; the adapters move the logits a hundred times more than that
    assert (without - nb["logits"]["SoRA"]).abs().max() > 1e-3


def test_prune_keeps_outputs_and_stores_fewer(nb):
    pruned, res = nb["models"]["pruned SoRA"], nb["res"]["SoRA"]
    same(nb["logits"]["pruned SoRA"], nb["logits"]["SoRA"])
    assert not list(soralab.adapter_modules(pruned, soralab.SoRALinear))
    assert soralab.count_trainable(pruned) == res.params_after_prune < res.trainable_params


def test_merge_gives_back_the_base_model(nb):
    merged, base = nb["models"]["merged SoRA"], nb["base"]
    same(nb["logits"]["merged SoRA"], nb["logits"]["SoRA"])
    assert not list(soralab.adapter_modules(merged))
    assert {n: type(m) for n, m in merged.named_modules()} == {n: type(m) for n, m in base.named_modules()}
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in base.parameters())
    assert not hasattr(merged, "soralab_config")
    reloaded = AutoModelForSequenceClassification.from_pretrained(nb["root"] / "merged").eval()
    with torch.no_grad():
        same(reloaded(**nb["batch"]).logits, nb["logits"]["SoRA"])


def test_peft_export_refuses_unpruned_and_reloads_pruned(nb, tmp_path):
    with pytest.raises(ValueError, match="prune"):
        soralab.export_peft(nb["models"]["SoRA"], tmp_path / "refused")
    peft_dir = soralab.export_peft(nb["models"]["pruned SoRA"], tmp_path / "peft")
    rank_pattern = json.loads((peft_dir / "adapter_config.json").read_text())["rank_pattern"]
    live = {name: rank for name, rank in nb["report"].ranks().items() if rank}  # the unpruned model's live ranks
    assert rank_pattern == soralab.gate_report(nb["models"]["pruned SoRA"]).ranks() == live
    peft_model = PeftModel.from_pretrained(copy.deepcopy(nb["base"]), peft_dir).eval()
    with torch.no_grad():
        same(peft_model(**nb["batch"]).logits, nb["logits"]["pruned SoRA"])


@pytest.mark.parametrize("name", ["LoRA", "SoRA", "pruned SoRA"])
def test_save_load_round_trip(nb, name):
    loaded = soralab.load_adapter(copy.deepcopy(nb["base"]), nb["files"][name].parent).eval()
    with torch.no_grad():
        same(loaded(**nb["batch"]).logits, nb["logits"][name])
    assert soralab.count_trainable(loaded) == soralab.count_trainable(nb["models"][name])


def test_cost_table_is_consistent(nb):
    models, res, report = nb["models"], nb["res"], nb["report"]
    n_base = sum(p.numel() for p in nb["base"].parameters())
    stored = {name: file_cost(path).values for name, path in nb["files"].items()}
    n_adapters = len(report.rows)
    assert stored["LoRA"] == res["LoRA"].trainable_params == soralab.count_trainable(models["LoRA"])
    assert stored["SoRA"] == res["SoRA"].trainable_params
    assert stored["SoRA"] - stored["LoRA"] == R * n_adapters  # one gate entry per rank
    assert stored["pruned SoRA"] == res["SoRA"].params_after_prune
    assert stored["pruned SoRA"] == stored["SoRA"] - report.params + report.params_after_prune
    assert stored["pruned SoRA"] < stored["LoRA"] < stored["SoRA"]
    assert stored["merged SoRA"] == n_base
    for name in ("LoRA", "SoRA", "pruned SoRA"):
        assert sum(p.numel() for p in models[name].parameters()) == n_base + soralab.gate_report(models[name]).params
    layers = [len(list(soralab.adapter_modules(m))) for m in models.values()]
    assert layers == [n_adapters, n_adapters, sum(v > 0 for v in report.ranks().values()), 0]
    for path in nb["files"].values():
        c = file_cost(path)
        assert c.bytes == path.stat().st_size and c.payload_bytes == 4 * c.values


def test_latency_is_measured_for_every_form(nb):
    lat = interleaved_latency(nb["models"], nb["batch"], repeats=3)
    assert list(lat) == ["LoRA", "SoRA", "pruned SoRA", "merged SoRA"]
    assert all(len(v.times_ms) == 3 and v.median > 0 for v in lat.values())
