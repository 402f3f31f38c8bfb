"""soralab.allocate: SoRA-found ranks scaled to a parameter budget, written as a pattern that PEFT's LoraConfig and
soralab's LoRAConfig both build, trained with the stock Trainer; the rounding rule checked on hand-made tables."""

from __future__ import annotations

import json
import math
import random
import re
from fractions import Fraction

import datasets
import pytest
import torch
from glue_fixtures import write_glue_fixture
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

import soralab
from soralab.cli import main as cli_main
from soralab.errors import MissingFileError, UsageError
from soralab.experiments.allocate import allocate
from soralab.experiments.models import HEADS, TARGETS, save_tiny_checkpoint, tiny_model
from soralab.experiments.results import dumps
from soralab.experiments.train import GlueConfig, run_glue
from soralab.patterns import (
    ModuleRank,
    budget_of,
    load_pattern,
    lora_config,
    lora_params,
    make_pattern,
    module_ranks,
    peft_config,
    ranks_with_shapes,
    scale_to_budget,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def table(*rows):
    return [ModuleRank(f"m{i}", k, i_, o) for i, (k, i_, o) in enumerate(rows)]


# ------------------------------------------------------------------------------------------ the rounding rule


def test_rounding_by_hand():
    """Budget r=2 on four modules of cost 20, 20, 20, 40: 200 params. Found 8, 4, 0, 2 -> t = 200/320 = 5/8,
    ideals 5, 2.5, 0, 1.25; floors cost 180, the 20 left go to the largest remainder (m1): 5, 3, 0, 1 = 200."""
    mods = table((8, 10, 10), (4, 10, 10), (0, 10, 10), (2, 20, 20))
    assert budget_of(mods, budget_rank=2) == 200
    ranks = scale_to_budget(mods, budget_rank=2)
    assert ranks == {"m0": 5, "m1": 3, "m2": 0, "m3": 1}
    assert lora_params(ranks, mods) == 200


def test_rounding_with_a_cap_leaves_budget_unspent_rather_than_exceed_it():
    """max_rank=4: m0 (ideal 5) is fixed at 4 (80 params); the other two share 120 by t = 120/160: 3 and 1.5.
    Floors 4, 3, 1 cost 180; m3's extra rank costs 40 > 20 left, so 20 stay unspent."""
    mods = table((8, 10, 10), (4, 10, 10), (0, 10, 10), (2, 20, 20))
    ranks = scale_to_budget(mods, budget_rank=2, max_rank=4)
    assert ranks == {"m0": 4, "m1": 3, "m2": 0, "m3": 1}
    assert lora_params(ranks, mods) == 180


def test_rank_never_exceeds_the_smaller_dimension():
    mods = table((8, 3, 50), (1, 50, 50))
    ranks = scale_to_budget(mods, budget_params=10_000)
    assert ranks["m0"] == 3  # capped at min(in, out)
    assert lora_params(ranks, mods) <= 10_000


def test_ties_go_to_the_larger_found_rank_then_the_name():
    # found 1 and 3, cost 10 each, budget 20: t = 1/2, ideals 0.5 and 1.5, floors cost 10, one more rank fits
    mods = table((1, 5, 5), (3, 5, 5))
    assert scale_to_budget(mods, budget_params=20) == {"m0": 0, "m1": 2}  # m1's remainder ties m0's; larger rank
    mods = [ModuleRank("b", 2, 5, 5), ModuleRank("a", 2, 5, 5)]
    assert scale_to_budget(mods, budget_params=10) == {"a": 1, "b": 0}  # equal everything: by name


def test_rule_holds_on_random_tables():
    """Checked against the rule as written, independently: every rank is floor or ceil of t * found (no caps hit
    here), the total never exceeds the budget, and every module left at its floor costs more than what is left."""
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 12)
        mods = [ModuleRank(f"m{i}", rng.choice([0, 0, 1, 2, 3, 5, 8]), rng.randint(8, 64), rng.randint(8, 64))
                for i in range(n)]
        if not any(m.rank for m in mods):
            continue
        budget = rng.randint(1, 6) * sum(m.cost for m in mods)
        t = Fraction(budget, sum(m.rank * m.cost for m in mods))
        if any(t * m.rank > min(m.in_features, m.out_features) for m in mods):
            continue  # caps are tested by hand above
        ranks = scale_to_budget(mods, budget_params=budget)
        left = budget - lora_params(ranks, mods)
        assert left >= 0
        for m in mods:
            ideal = t * m.rank
            assert ranks[m.name] in (math.floor(ideal), math.ceil(ideal))
            if ranks[m.name] < ideal:
                assert m.cost > left
        # the ceilings went to the largest remainders among modules of equal cost
        by_cost = {}
        for m in mods:
            by_cost.setdefault(m.cost, []).append(m)
        for group in by_cost.values():
            up = [t * m.rank - math.floor(t * m.rank) for m in group if ranks[m.name] > t * m.rank]
            down = [t * m.rank - math.floor(t * m.rank) for m in group if ranks[m.name] < t * m.rank]
            assert not up or not down or min(up) >= max(down)


@pytest.mark.parametrize("kwargs, match", [
    (dict(budget_rank=0), r"budget_rank must be a positive integer"),
    (dict(budget_rank=True), r"budget_rank must be a positive integer"),
    (dict(budget_rank=2.5), r"budget_rank must be a positive integer"),
    (dict(budget_params=-1), r"budget_params must be a positive integer"),
    (dict(budget_rank=4, budget_params=100), r"budget_rank or as budget_params, not both"),
    (dict(budget_rank=4, max_rank=0), r"max_rank must be a positive integer"),
    (dict(budget_params=19), r"budget of 19 LoRA parameters gives no module a whole rank .* needs 20"),
])
def test_bad_budgets_are_refused(kwargs, match):
    with pytest.raises(UsageError, match=match):
        scale_to_budget(table((2, 10, 10), (0, 10, 10)), **kwargs)


def test_all_dead_is_refused():
    with pytest.raises(UsageError, match=r"every found rank is 0"):
        scale_to_budget(table((0, 10, 10)), budget_rank=4)


# ------------------------------------------------------------------------------ the pattern and rank 0


def test_rank_zero_modules_are_dropped_and_listed():
    mods = table((8, 10, 10), (0, 10, 10), (1, 10, 10))  # m1 found dead; m2's share rounds to 0
    ranks = scale_to_budget(mods, budget_params=100)  # t = 100/180: ideals 4.44, 0, 0.56; floors 4 (80), +1 to m2
    assert ranks == {"m0": 4, "m1": 0, "m2": 1}
    ranks = scale_to_budget(mods, budget_params=95)  # 15 left after floors: m2's rank (20) does not fit
    assert ranks == {"m0": 4, "m1": 0, "m2": 0}
    p = make_pattern(mods, ranks, scaling=2.0, budget_params=95)
    assert p["target_modules"] == ["m0"] and p["rank_pattern"] == {"m0": 4} and p["alpha_pattern"] == {"m0": 8.0}
    assert p["dropped_modules"] == ["m1", "m2"] and "r=0" in p["dropped_rule"]
    assert p["params"] == 80 and p["found_ranks"] == {"m0": 8, "m1": 0, "m2": 1}
    assert p["r"] == 4 and p["lora_alpha"] == 8.0


# ------------------------------------------------------------------------------ reading ranks from a model


def trained_sora():
    model = soralab.inject(tiny_model("bert"), soralab.SoRAConfig(r=4, lora_alpha=8, target_modules=TARGETS["bert"],
                                                                 modules_to_save=HEADS["bert"]))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, (_, m) in enumerate(soralab.adapter_modules(model)):
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g))
            m.gate[: i % 5] = 0.0  # module i keeps 4 - (i % 5) ranks: some keep 4, one keeps 0 (i = 4, 9)
    return model


def test_module_ranks_by_layer_type_same_before_and_after_pruning():
    model = trained_sora()
    before = module_ranks(model)
    assert [m.rank for m in before] == [max(0, 4 - i % 5) for i in range(12)]
    assert {(m.in_features, m.out_features) for m in before} == {(32, 32), (32, 37), (37, 32)}
    soralab.prune(model)
    assert module_ranks(model) == before  # the dead modules are plain nn.Linear again, still counted as 0
    names = [m.name for m in before]
    assert ranks_with_shapes({m.name: m.rank for m in before}, tiny_model("bert")) == before
    assert all("base_layer" not in n for n in names)


def test_module_ranks_needs_soralab_adapters():
    with pytest.raises(ValueError, match="no soralab adapters"):
        module_ranks(tiny_model("bert"))
    with pytest.raises(UsageError, match="no module 'bert.nope'"):
        ranks_with_shapes({"bert.nope": 2}, tiny_model("bert"))


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    """A pattern from the trained SoRA above at the budget of uniform r=2, as a JSON file."""
    mods = module_ranks(trained_sora())
    ranks = scale_to_budget(mods, budget_rank=2)
    p = make_pattern(mods, ranks, scaling=2.0, budget_params=budget_of(mods, 2), budget_rank=2,
                     modules_to_save=HEADS["bert"])
    path = tmp_path_factory.mktemp("pattern") / "pattern.json"
    path.write_text(json.dumps(p))
    assert len(set(p["rank_pattern"].values())) > 1, "the test needs differing ranks"
    assert p["dropped_modules"], "the test needs a dropped module"
    return path


def lora_layers(model):
    return {n.removeprefix("base_model.model."): m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def test_pattern_trains_in_peft_with_the_stock_trainer(pattern, tmp_path):
    """The JSON goes into peft.LoraConfig; every module gets its rank and alpha/rank = 2; dropped ones stay plain;
    the stock Trainer moves the adapters and the head."""
    from transformers import Trainer, TrainingArguments

    p = load_pattern(pattern)
    config = LoraConfig(**{k: p[k] for k in ("r", "lora_alpha", "target_modules", "rank_pattern", "alpha_pattern",
                                             "modules_to_save")})
    assert config.to_dict()["rank_pattern"] == peft_config(pattern).to_dict()["rank_pattern"]
    model = get_peft_model(tiny_model("bert"), config)
    layers = lora_layers(model)
    assert set(layers) == set(p["target_modules"])
    for name, layer in layers.items():
        assert layer.r["default"] == p["rank_pattern"][name]
        assert layer.lora_A["default"].weight.shape[0] == p["rank_pattern"][name]
        assert layer.scaling["default"] == pytest.approx(2.0)
    for name in p["dropped_modules"]:
        assert type(model.get_base_model().get_submodule(name)) is torch.nn.Linear
    adapters = sum(p_.numel() for n, p_ in model.named_parameters() if "lora_" in n)
    assert adapters == p["params"]

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 99, (16, 9), generator=g)
    data = datasets.Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                                       "labels": torch.randint(0, 2, (16,), generator=g).tolist()})
    before = {n: q.detach().clone() for n, q in model.named_parameters() if q.requires_grad}
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-2,
                             report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=data).train()
    moved = {n for n, q in model.named_parameters() if q.requires_grad and not torch.equal(q, before[n])}
    assert {n for n in moved if "lora_B" in n} and {n for n in moved if "classifier" in n}


def test_soralab_injection_builds_the_same_layers(pattern, tmp_path):
    p = load_pattern(pattern)
    model = soralab.inject(tiny_model("bert"), lora_config(pattern))
    assert {m.name: m.rank for m in module_ranks(model) if m.rank} == p["rank_pattern"]
    layers = dict(soralab.adapter_modules(model))
    assert set(layers) == set(p["target_modules"])
    assert all(m.scaling == pytest.approx(2.0) for m in layers.values())
    assert sum(q.numel() for m in layers.values() for q in m.parameters(recurse=False)) == p["params"]
    peft_model = get_peft_model(tiny_model("bert"), peft_config(pattern))
    head = sum(q.numel() for n, q in peft_model.named_parameters() if q.requires_grad and "lora_" not in n)
    assert soralab.count_trainable(model) == p["params"] + head  # adapters and head alike in both
    soralab.save_adapter(model, tmp_path / "a")  # the per-module layout saves and loads
    loaded = soralab.load_adapter(tiny_model("bert"), tmp_path / "a")
    assert {n: m.r for n, m in soralab.adapter_modules(loaded)} == p["rank_pattern"]


def test_rank_and_alpha_patterns_read_as_peft_reads_them():
    """Regex keys, first match wins, an alpha left out means lora_alpha / that rank: soralab and PEFT agree."""
    kw = dict(r=4, lora_alpha=8.0, target_modules=["query", "value"],
              rank_pattern={r"layer\.0\..*query": 2, "query": 6}, alpha_pattern={"value": 3.0})
    ours = soralab.inject(tiny_model("bert"), soralab.LoRAConfig(**kw))
    theirs = lora_layers(get_peft_model(tiny_model("bert"), LoraConfig(**kw)))
    got = {n: (m.r, m.scaling) for n, m in soralab.adapter_modules(ours)}
    assert got == {n: (m.r["default"], pytest.approx(m.scaling["default"])) for n, m in theirs.items()}
    assert got["bert.encoder.layer.0.attention.self.query"] == (2, 4.0)
    assert got["bert.encoder.layer.1.attention.self.query"] == (6, pytest.approx(8 / 6))
    assert got["bert.encoder.layer.1.attention.self.value"] == (4, 0.75)


@pytest.mark.parametrize("kw, error, match", [
    (dict(rank_pattern={"query": 0}), ValueError, r"positive integer ranks .* left out of target_modules"),
    (dict(alpha_pattern={"query": float("nan")}), ValueError, r"finite alphas > 0"),
    (dict(rank_pattern={"query(": 2}), ValueError, r"not a valid regular expression"),
    (dict(rank_pattern={"quary": 2}), UsageError, r"rank_pattern key\(s\) \['quary'\] match no module"),
])
def test_bad_patterns_are_refused(kw, error, match):
    with pytest.raises(error, match=match):
        soralab.inject(tiny_model("bert"), soralab.LoRAConfig(r=4, target_modules=["query"], **kw))


def test_load_pattern_names_the_problem(tmp_path, pattern):
    with pytest.raises(MissingFileError, match=r"does not exist .*`soralab allocate`"):
        load_pattern(tmp_path / "none.json")
    p = json.loads(pattern.read_text())
    for edit, match in [(lambda d: d.update(format="x"), "not a soralab rank pattern"),
                        (lambda d: d["rank_pattern"].popitem(), "'rank_pattern' must be an object with one entry"),
                        (lambda d: d.update(rank_pattern={k: 0 for k in d["rank_pattern"]}), "positive integer"),
                        (lambda d: d.update(target_modules=[]), "'target_modules' must be a non-empty list")]:
        d = json.loads(json.dumps(p))
        edit(d)
        (tmp_path / "bad.json").write_text(json.dumps(d))
        with pytest.raises(UsageError, match=match):
            load_pattern(tmp_path / "bad.json")


# ------------------------------------------------------------------------------ allocate end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("alloc")
    write_glue_fixture(root / "glue", "mrpc", n_train=32, n_dev=8)
    return dict(model_name_or_path=save_tiny_checkpoint(root / "bert"), data_dir=str(root / "glue"),
                max_seq_length=32, per_device_train_batch_size=8, per_device_eval_batch_size=16), root


@pytest.fixture(scope="module")
def found(tiny):
    opts, root = tiny
    out = root / "pattern.json"
    p = allocate("mrpc", budget_rank=2, output=out, output_dir=root / "find", xi=200.0, gate_init="randn", **opts)
    return p, out, root


def test_allocate_end_to_end(found, tiny):
    p, out, root = found
    assert json.loads(out.read_text()) == json.loads(dumps(p))  # strict JSON: a NaN score is null
    assert len(p["found_ranks"]) == 12 and set(p["shapes"]) == set(p["found_ranks"])
    assert p["params"] <= p["budget"]["budget_params"] == 2 * sum(i + o for i, o in p["shapes"].values())
    assert p["scaling"] == 2.0  # the finding run's lora_alpha / r = 16 / 8
    assert p["modules_to_save"] == HEADS["bert"]
    run = p["finding_run"]
    assert run["steps"] == 4 and run["wall_time_s"] > 0 and run["max_train_samples"] == 1000 and run["method"] == "sora"
    assert not run["reused"]
    found_live = {n for n, k in p["found_ranks"].items() if k}
    assert set(p["target_modules"]) <= found_live  # a module SoRA killed never comes back
    again = allocate("mrpc", budget_rank=2, output_dir=root / "find", xi=200.0, gate_init="randn", **tiny[0])
    assert again["finding_run"]["reused"] and again["rank_pattern"] == p["rank_pattern"]


def test_run_glue_trains_peft_lora_with_the_pattern(found, tiny):
    p, out, root = found
    res = run_glue("mrpc", "peft-lora", rank_pattern=str(out), progress=False, num_train_epochs=1, **tiny[0])
    assert res.active_ranks == p["rank_pattern"]
    # notebook 09's taught claim: the patterned LoRA trains no more than uniform LoRA at the budget rank (head and all)
    uniform = run_glue("mrpc", "peft-lora", r=2, lora_alpha=4, progress=False, num_train_epochs=1, **tiny[0])
    assert res.trainable_params <= uniform.trainable_params
    assert res.trainable_params - p["params"] == uniform.trainable_params - p["budget"]["budget_params"], "same head"
    with pytest.raises(UsageError, match=r"rank_pattern sets the modules and ranks of lora or peft-lora"):
        GlueConfig(task="mrpc", method="sora", rank_pattern=str(out))
    with pytest.raises(MissingFileError, match=r"does not exist"):
        GlueConfig(task="mrpc", method="lora", rank_pattern=str(root / "nope.json"))


def test_a_saved_run_is_not_reused_once_its_pattern_file_changed(found, tiny, tmp_path):
    """The config holds the pattern's path; the result also records a hash of the file, so a pattern rewritten in
    place (allocate run again into the same --output) trains again instead of returning the old score."""
    p, out, root = found
    pattern = tmp_path / "pattern.json"
    pattern.write_text(out.read_text())
    kw = dict(rank_pattern=str(pattern), progress=False, num_train_epochs=1, output_dir=tmp_path / "run", **tiny[0])
    first = run_glue("mrpc", "peft-lora", **kw)
    assert first.environment["rank_pattern"].startswith("blake2b:") and run_glue("mrpc", "peft-lora", **kw).reused
    changed = json.loads(out.read_text())
    name = next(n for n, r in changed["rank_pattern"].items() if r > 1)
    changed["rank_pattern"][name] -= 1
    pattern.write_text(json.dumps(changed))
    with pytest.raises(UsageError, match="another rank pattern"):
        run_glue("mrpc", "peft-lora", **kw)


def test_cli_allocate_reuses_the_finding_run(found, tiny, capsys):
    p, out, root = found
    opts = tiny[0]
    argv = ["allocate", "--task", "mrpc", "--budget-rank", "2", "--output", str(root / "cli.json"),
            "--output-dir", str(root / "find"), "--xi", "200", "--gate-init", "randn", "--no-progress",
            "--model-name-or-path", opts["model_name_or_path"], "--data-dir", opts["data_dir"],
            "--max-seq-length", "32", "--per-device-train-batch-size", "8", "--per-device-eval-batch-size", "16"]
    assert cli_main(argv) == 0
    assert json.loads((root / "cli.json").read_text())["rank_pattern"] == p["rank_pattern"]
    assert "written to" in capsys.readouterr().out


@pytest.mark.parametrize("extra, match", [
    (["--budget-rank", "0"], r"budget_rank must be a positive integer"),
    (["--budget-rank", "4", "--budget-params", "1000"], r"not both"),
    (["--method", "lora"], r"allocate finds ranks with sora or adalora"),
    (["--scaling", "0"], r"scaling \(alpha / r of every module\) must be a finite number > 0"),
    (["--max-rank", "-1"], r"max_rank must be a positive integer"),
])
def test_cli_allocate_bad_budget_is_one_line_exit_2(extra, match, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("soralab.experiments.allocate.run_glue", lambda *a, **k: pytest.fail("reached run_glue"))
    assert cli_main(["allocate", "--task", "mrpc", "--output", str(tmp_path / "p.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(match, err), err


def test_plot_rank_pattern(found):
    import matplotlib

    matplotlib.use("Agg")
    from soralab.teaching.plots import plot_rank_pattern

    fig = plot_rank_pattern(found[0])
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "live rank (non-zero gates)" in labels and "rank in the pattern" in labels
    assert "pattern at uniform r=2" in fig.axes[1].get_title()


def test_allocate_with_adalora_as_the_finder(tiny):
    """(d) of the experiment: AdaLoRA's final allocation (from PEFT's rank_pattern masks) scaled the same way."""
    opts, root = tiny
    p = allocate("mrpc", budget_rank=2, method="adalora", r=2, lora_alpha=4.0, scaling=2.0,
                 **{**opts, "per_device_train_batch_size": 2})
    assert p["finding_run"]["method"] == "adalora" and p["finding_run"]["steps"] == 16
    assert len(p["found_ranks"]) == 12 and p["params"] <= p["budget"]["budget_params"]
    assert set(p["found_ranks"].values()) <= set(range(4))  # init_r = 3 for target_r = 2
    assert all(a == 2.0 * p["rank_pattern"][n] for n, a in p["alpha_pattern"].items())


def test_cli_allocate_passes_only_what_was_given_and_none_means_all(monkeypatch, tmp_path, capsys):
    """allocate has defaults of its own (FIND_DEFAULTS): an option left out must not reach it as None, which would
    override them; `--max-train-samples none` must, to ask for the whole training set. Its help shows them."""
    seen = {}

    def fake(task, budget_rank, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr("soralab.experiments.allocate.allocate", fake)
    with pytest.raises(SystemExit):
        cli_main(["allocate", "--task", "mrpc", "--output", str(tmp_path / "p.json"), "--max-train-samples", "none",
                  "--learning-rate", "1e-3"])
    given = {k: v for k, v in seen.items() if k not in ("budget_params", "max_rank", "scaling", "output", "method",
                                                         "output_dir", "progress")}
    assert given == {"max_train_samples": None, "learning_rate": 1e-3} and seen["method"] == "sora"
    with pytest.raises(SystemExit):
        cli_main(["allocate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "sora or adalora (default: sora)" in help_text and "(default: 1000; none: all)" in help_text
    assert "--rank-pattern RANK_PATTERN" not in help_text, "allocate writes a pattern; its finding run takes none"
