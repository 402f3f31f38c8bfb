"""Property-based tests (hypothesis): option validation and parsing, and adapter round trips over random shapes,
ranks and dead-gate patterns (save -> load, prune, export -> PEFT: same outputs, every file loadable)."""

from __future__ import annotations

import copy
import itertools
import math
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peft import PeftModel
from torch import nn
from transformers.pytorch_utils import Conv1D

import soralab
from soralab.errors import UsageError
from soralab.experiments.run_config import METHOD_ONLY
from soralab.experiments.sweep import parse_set
from soralab.experiments.train import GlueConfig

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What a valid value of each numeric run option is, written out here independently of soralab.experiments.validate.
INT_OPTIONS = {"max_seq_length": 1, "per_device_train_batch_size": 1, "per_device_eval_batch_size": 1, "seed": 0,
               "r": 1, "num_basis": 1, "evals_per_epoch": 1, "max_train_samples": 1, "max_eval_samples": 1}
FLOAT_OPTIONS = {  # name: (lowest allowed, lowest included?, highest excluded)
    "num_train_epochs": (0, False, math.inf), "learning_rate": (0, False, math.inf),
    "weight_decay": (0, True, math.inf), "max_grad_norm": (0, True, math.inf), "warmup_ratio": (0, True, 1),
    "lora_alpha": (0, False, math.inf), "lora_dropout": (0, True, 1), "xi": (0, True, math.inf),
    "gate_lr": (0, True, math.inf), "gate_l1_loss": (0, True, math.inf),
}


def valid(name, value) -> bool:
    if name in INT_OPTIONS:
        return isinstance(value, int) and value >= INT_OPTIONS[name] and (name != "seed" or value < 2**32)
    low, closed, high = FLOAT_OPTIONS[name]
    return math.isfinite(value) and (value >= low if closed else value > low) and value < high


numbers = st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 0.0, -0.0, 1, 1.0, 0.999, 1e-12, -1e-12, math.nan, math.inf, -math.inf,
                                     2**32 - 1, 2**32]))


@FAST
@given(name=st.sampled_from(sorted(INT_OPTIONS) + sorted(FLOAT_OPTIONS)), value=numbers)
def test_a_run_option_is_accepted_exactly_when_valid(name, value):
    method = METHOD_ONLY.get(name, "sora")  # a method that uses the option (num_basis: NOLA's)
    if valid(name, value):
        assert getattr(GlueConfig(task="rte", method=method, **{name: value}), name) == value
    else:
        with pytest.raises(UsageError, match=rf"^{name} must be"):
            GlueConfig(task="rte", method=method, **{name: value})


def _text(value) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return repr(value) if isinstance(value, float) else str(value)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.0123456789", min_size=1, max_size=12)
typed_values = st.one_of(
    st.tuples(st.sampled_from(sorted(INT_OPTIONS)), st.integers(1, 10**9)),
    st.tuples(st.sampled_from(sorted(FLOAT_OPTIONS)), st.floats(0, 0.99, exclude_max=True)),
    st.tuples(st.just("torch_compile"), st.booleans()),
    st.tuples(st.just("target_modules"), st.lists(names, min_size=1, max_size=4)),
    st.tuples(st.sampled_from(["prox", "split_protocol", "device"]), names),
)


@FAST
@given(option=typed_values)
def test_set_values_read_back_as_the_value_written(option):
    """``--set name=<text of v>`` gives v itself, of the field's type (the string 'False' is not truthy)."""
    name, value = option
    parsed = parse_set([f"{name}={_text(value)}"])[name]
    assert parsed == value and type(parsed) is type(value)


# ------------------------------------------------------------------------------------------- adapter round trips


@st.composite
def adapted_models(draw):
    """A small MLP of Linear (or GPT-2 Conv1D) layers with adapters of random method, rank and dead gates."""
    method = draw(st.sampled_from(["lora", "sora", "nola"]))
    conv = draw(st.booleans())
    dims = draw(st.lists(st.integers(1, 9), min_size=3, max_size=4))
    r = draw(st.integers(1, 6))
    save_head = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    layers = []
    torch.manual_seed(seed)
    for d_in, d_out in itertools.pairwise(dims):
        layers += [Conv1D(d_out, d_in) if conv else nn.Linear(d_in, d_out), nn.Tanh()]
    for layer in layers[::2]:
        if conv:
            nn.init.normal_(layer.weight, std=0.5)
    base = nn.Sequential(*layers[:-1]).eval()
    names = [str(i) for i in range(0, len(base), 2)]
    targets, head = (names[:-1], [names[-1]]) if save_head and len(names) > 1 else (names, [])
    cls = {"lora": soralab.LoRAConfig, "sora": soralab.SoRAConfig, "nola": soralab.NOLAConfig}[method]
    extra = dict(num_basis_A=3, num_basis_B=4, seed=seed) if method == "nola" else {}
    widths = [min(dims[k], dims[k + 1]) for k in range(len(dims) - 1) if str(2 * k) in targets]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = soralab.inject(copy.deepcopy(base), cls(r=r, lora_alpha=draw(st.sampled_from([1.0, 8.0])),
                                                         target_modules=targets, modules_to_save=head, **extra))
    assert any("is larger than the smaller dimension" in str(w.message) for w in caught) == (r > min(widths))
    dead = draw(st.lists(st.lists(st.booleans(), min_size=r, max_size=r), min_size=len(targets),
                         max_size=len(targets)))
    with torch.no_grad():
        for (_, m), dead_ranks in zip(soralab.adapter_modules(model), dead, strict=True):
            for p in m.parameters(recurse=False):
                p.normal_()
            if method == "sora":
                m.gate[torch.tensor(dead_ranks)] = 0.0
        for name in head:
            for p in model.get_submodule(name).parameters():
                p.add_(torch.randn_like(p))
    x = torch.randn(3, dims[0], generator=torch.Generator().manual_seed(seed))
    return method, base, model.eval(), x


def fresh(base):
    return copy.deepcopy(base)


@FAST
@given(case=adapted_models())
def test_save_then_load_gives_identical_outputs(case):
    _, base, model, x = case
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        folder = soralab.save_adapter(model, Path(tmp) / "adapter")
        soralab.save_adapter(model, folder)  # saving over an earlier save is fine too
        loaded = soralab.load_adapter(fresh(base), folder).eval()
        assert torch.equal(loaded(x), model(x))
        assert soralab.count_trainable(loaded) == soralab.count_trainable(model)


@FAST
@given(case=adapted_models())
def test_prune_save_and_export_keep_outputs(case):
    method, base, model, x = case
    with torch.no_grad():
        before = model(x)
        report = soralab.gate_report(model)
        soralab.prune(model)
        after = model(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert sum(m.r for _, m in soralab.adapter_modules(model)) == report.active_rank  # dead ranks are gone
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        folder = soralab.save_adapter(model, Path(tmp) / "pruned")
        assert torch.equal(soralab.load_adapter(fresh(base), folder).eval()(x), after)
        if not any(True for _ in soralab.adapter_modules(model)):  # every rank of every module dead
            assert method == "sora" and report.active_rank == 0
            with pytest.raises(UsageError, match="no adapter layers left to export"):
                soralab.export_peft(model, Path(tmp) / "peft")
            return
        peft_dir = soralab.export_peft(model, Path(tmp) / "peft")
        peft_model = PeftModel.from_pretrained(fresh(base), peft_dir).eval()
        torch.testing.assert_close(peft_model(x), after, rtol=1e-4, atol=1e-5)
