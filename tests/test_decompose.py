"""benchmarks/decompose.py splits SoRA minus LoRA into the budget's cost and SoRA's allocation at that budget; it
pairs runs by seed only on one device, and counts a LoRA r=4 only at LoRA r=8's scale. Synthetic results stand in
for saved runs."""

from types import SimpleNamespace

from benchmark_scripts import load_script


def run(method, seed, score, r=8, keep=None, params=480_000, where="cpu", alpha=None):
    config = {"task": "stsb", "method": method, "seed": seed, "r": r, "keep": keep,
              "lora_alpha": 2 * r if alpha is None else alpha, "precision": "bf16"}
    return SimpleNamespace(config=config, score=score, params_after_prune=params, environment={"device": where})


def test_the_differences_add_up_and_pair_only_like_with_like():
    decompose = load_script("decompose")
    results = []
    for seed, base in ((0, 86.0), (21, 87.0), (42, 88.5)):
        results += [run("lora", seed, base), run("lora", seed, base - 1.0, r=4, params=312_000),
                    run("sora", seed, base - 0.5, keep=0.5, params=312_000), run("sora", seed, base, keep=1.0)]
    results += [run("lora", 81, 90.0, r=4, params=312_000, where="cuda: NVIDIA H200"),  # no CPU LoRA r=8 to pair with
                run("lora", 81, 80.0), run("lora", 100, 50.0, r=4, alpha=16)]          # scale 4: not the variant
    text = decompose.table(results)
    assert "| stsb | SoRA keep 0.5 − LoRA r=8 | the record's SoRA minus LoRA | -0.50, no spread | 3 |" in text
    assert "| stsb | LoRA r=4 − LoRA r=8 | halving LoRA's rank (the budget) | -1.00, no spread | 3 |" in text
    assert "| SoRA's ranks against uniform ones at about its size | +0.50, no spread |" in text
    assert "| stsb | SoRA keep 1.0 − LoRA r=8 | the gates alone (every rank kept) | +0.00, no spread | 3 |" in text
    assert "| stsb | LoRA r=4 | 0, 21, 42, 81 |" in text and "| 65.0% |" in text
    assert "| mrpc | SoRA keep 0.5 − LoRA r=8 | the record's SoRA minus LoRA | fewer than two pairs | 0 |" in text
