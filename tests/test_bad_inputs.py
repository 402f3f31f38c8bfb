"""Bad inputs, one row each: the error type, and a message that names the offending option or file.

The rows follow issue 9 (numbers 1-10, then the "messages" list). Behaviours that are not errors (the right
result instead of a silent wrong one) are in test_hardening.py; properties over random inputs in
test_properties.py. Nothing here trains: every row must fail before training starts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from glue_fixtures import write_glue_fixture
from safetensors.torch import save_file

import soralab
from soralab.cli import main as cli_main
from soralab.errors import MissingFileError, NonFiniteError, UsageError
from soralab.experiments.methods import prepare
from soralab.experiments.models import save_tiny_checkpoint, tiny_model
from soralab.experiments.sweep import parse_grid, parse_set, report, sweep
from soralab.experiments.train import RESULT_NAME, GlueConfig, GlueResult, run_glue
from soralab.export import CONFIG_NAME, WEIGHTS_NAME

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    write_glue_fixture(root / "glue", "rte", n_train=16, n_dev=8)
    write_glue_fixture(root / "utf16", "rte", n_train=4, n_dev=4)
    train = root / "utf16" / "RTE" / "train.tsv"
    train.write_text(train.read_text(encoding="utf-8"), encoding="utf-16")
    return SimpleNamespace(model=save_tiny_checkpoint(root / "bert"), glue=str(root / "glue"),
                           utf16=str(root / "utf16"), utf16_file=train)


@pytest.fixture
def env(files, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started; the bad input should have been refused before")

    monkeypatch.setattr("transformers.Trainer.train", no_training)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    return SimpleNamespace(**vars(files), tmp=tmp_path, a_file=a_file,
                           run=dict(model_name_or_path=files.model, data_dir=files.glue, progress=False))


def sora(**kw):
    return soralab.inject(tiny_model("bert"), soralab.SoRAConfig(r=4, target_modules=["query", "value"], **kw))


def lora():
    return soralab.inject(tiny_model("bert"), soralab.LoRAConfig(r=4, target_modules=["query"],
                                                                  modules_to_save=["classifier"]))


def first_gate(model):
    return next(m for _, m in soralab.adapter_modules(model)).gate


def with_gate(value):
    model = sora()
    with torch.no_grad():
        first_gate(model)[1] = value
    return model


def nan_b(model):
    with torch.no_grad():
        next(m for _, m in soralab.adapter_modules(model)).lora_B[0, 0] = NAN
    return model


def saved_adapter(e) -> Path:
    return soralab.save_adapter(lora(), e.tmp / "adapter")


def broken_json(e, meta) -> Path:
    folder = saved_adapter(e)
    (folder / CONFIG_NAME).write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return folder


def edited_json(e, edit) -> Path:
    folder = saved_adapter(e)
    meta = json.loads((folder / CONFIG_NAME).read_text())
    edit(meta)
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    return folder


def nan_bytes(e) -> Path:
    """Corrupt the last 8 bytes of tensor data (the end of the file) into NaN (all-ones float32 bits)."""
    folder = saved_adapter(e)
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-8:] = b"\xff" * 8
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    return folder


def replaced_weights(e, content: bytes) -> Path:
    folder = saved_adapter(e)
    (folder / WEIGHTS_NAME).write_bytes(content)
    return folder


def load(folder):
    return soralab.load_adapter(tiny_model("bert"), folder)


def result_file(e, text: str) -> Path:
    (e.tmp / "run").mkdir()
    (e.tmp / "run" / RESULT_NAME).write_text(text)
    return e.tmp / "run" / RESULT_NAME


def in_message(path) -> str:
    return re.escape(str(path))


# (id, action(env), expected exception (or warning) type, regex the message must match: it names the option/file)
ROWS = [
    # 1. xi = nan / inf
    ("1 GlueConfig xi=nan", lambda e: GlueConfig(task="rte", xi=NAN), UsageError, r"xi must be a finite number"),
    ("1 GlueConfig xi=inf", lambda e: GlueConfig(task="rte", xi=INF), UsageError, r"xi must be a finite number"),
    ("1 sweep grid xi=nan", lambda e: sweep(["rte"], ["sora"], [1], e.tmp, grid=parse_grid(["xi=nan"]),
                                            progress=False, **{k: v for k, v in e.run.items() if k != "progress"}),
     UsageError, r"xi must be a finite number, got nan"),
    ("1 param_groups xi=inf", lambda e: soralab.param_groups(sora(), lr=1e-3, xi=INF), ValueError,
     r"xi must be >= 0 and finite"),
    ("1 ProximalAdamW xi=nan", lambda e: soralab.ProximalAdamW(soralab.param_groups(sora(), lr=1e-3), xi=NAN),
     ValueError, r"xi must be >= 0 and finite"),
    ("1 xi_values nan", lambda e: soralab.xi_values(NAN, 1.0, 3), ValueError, r"xi values must be >= 0"),
    # 2. xi that would be ignored, or land on weights that are not gates
    ("2 xi on a group of every parameter", lambda e: soralab.ProximalAdamW(sora().parameters(), lr=1e-3, xi=1000),
     ValueError, r"xi=1000 acts only on a parameter group named 'gates'"),
    ("2 xi given twice", lambda e: soralab.ProximalAdamW(soralab.param_groups(sora(), lr=1e-3, xi=0.0), xi=1000),
     ValueError, r"ProximalAdamW\(xi=1000\) conflicts with xi=0.0 set on the gates group"),
    ("2 xi on a hand-made non-gate group", lambda e: soralab.ProximalAdamW(
        [{"params": [next(m for _, m in soralab.adapter_modules(sora())).lora_A], "xi": 0.5}]),
     ValueError, r"xi=0.5 is set on parameter group 0, which is not the 'gates' group"),
    ("2 xi on a model without gates", lambda e: soralab.param_groups(lora(), lr=1e-3, xi=1.0), ValueError,
     r"xi=1.0 acts on SoRA gates, and this model has none"),
    # 3. --set / --grid typed by the option's field
    ("3 unknown --set name", lambda e: parse_set(["max_train_sample=10"]), UsageError,
     r"unknown option 'max_train_sample'; valid options: task, method, .*max_train_samples"),
    ("3 unknown --grid name", lambda e: parse_grid(["zeta=1,2"]), UsageError, r"unknown option 'zeta'"),
    ("3 bool that is not one", lambda e: parse_set(["torch_compile=Flase"]), UsageError,
     r"torch_compile takes true or false"),
    ("3 int option given a float", lambda e: parse_grid(["r=4,4.5"]), UsageError, r"r takes an integer, got '4.5'"),
    ("3 float option given text", lambda e: parse_grid(["xi=1,lots"]), UsageError, r"xi takes a number, got 'lots'"),
    ("3 --set seed", lambda e: sweep(["rte"], ["lora"], [1], e.tmp, progress=False, seed=3), UsageError,
     r"seed is set per run by the sweep; use --seeds"),
    ("3 malformed --set entry", lambda e: parse_set(["torch_compile"]), UsageError, r"options look like name=value"),
    # 4. a module both adapted and saved whole
    ("4 target is a saved module", lambda e: soralab.inject(tiny_model("bert"), soralab.LoRAConfig(
        target_modules=["query", "classifier"], modules_to_save=["classifier"])),
     UsageError, r"module 'classifier' is matched by target_modules and also kept whole by modules_to_save"),
    ("4 target inside a saved module", lambda e: soralab.inject(tiny_model("bert"), soralab.LoRAConfig(
        target_modules=["query"], modules_to_save=["attention"])),
     UsageError, r"query' .*kept whole by modules_to_save \(it is inside 'bert\.encoder\.layer\.0\.attention'\)"),
    ("4 PEFT method with a target that matches nothing", lambda e: prepare(
        tiny_model("bert"), "peft-lora", r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["qeury"],
        heads=["classifier"]), UsageError, r"no module matches target_modules=\['qeury'\]"),
    ("4 PEFT method with a head that matches nothing", lambda e: prepare(
        tiny_model("bert"), "adalora", r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query"],
        heads=["clasifier"], total_steps=100), UsageError, r"modules_to_save \['clasifier'\] match no module"),
    # 5. warmup_ratio is a ratio
    ("5 warmup_ratio=1", lambda e: GlueConfig(task="rte", warmup_ratio=1.0), UsageError,
     r"warmup_ratio must be a fraction of the training steps in \[0, 1\)"),
    ("5 warmup_ratio<0", lambda e: GlueConfig(task="rte", warmup_ratio=-0.1), UsageError, r"warmup_ratio must be"),
    # 7. NaN / inf in adapters
    ("7 gate_report of a NaN gate", lambda e: soralab.gate_report(with_gate(NAN)), NonFiniteError,
     r"gate_report: 1 tensor\(s\) hold NaN or infinity, first 'bert\.encoder\.layer\.0\.attention\.self\.query\.gate'"),
    ("7 prune of an inf gate", lambda e: soralab.prune(with_gate(INF)), NonFiniteError, r"prune: .*query\.gate"),
    ("7 save_adapter of a NaN B", lambda e: soralab.save_adapter(nan_b(lora()), e.tmp / "a"), NonFiniteError,
     r"save_adapter to .*/a: .*query\.lora_B"),
    ("7 export_peft of a NaN B", lambda e: soralab.export_peft(nan_b(lora()), e.tmp / "p"), NonFiniteError,
     r"export_peft to .*/p: .*query\.lora_B\.weight"),
    ("7 load_adapter of NaN bytes", lambda e: load(nan_bytes(e)), NonFiniteError,
     rf"{WEIGHTS_NAME}: 1 tensor\(s\) hold NaN or infinity"),
    # 9. save_model for a method with no soralab adapter to save
    ("9 save_model with full fine-tuning", lambda e: run_glue("rte", "full", output_dir=e.tmp, save_model=True,
                                                              **e.run),
     UsageError, r"save_model=True saves soralab adapters \(lora, sora, nola\); method 'full'"),
    ("9 save_model without output_dir", lambda e: run_glue("rte", "lora", save_model=True, **e.run), UsageError,
     r"save_model=True saves the adapter into output_dir/adapter; give an output_dir"),
    # 10. accepted nonsense
    ("10 lora_alpha=inf (adapter config)", lambda e: soralab.LoRAConfig(lora_alpha=INF), ValueError,
     r"lora_alpha must be > 0 and finite"),
    ("10 lora_alpha=inf (run option)", lambda e: GlueConfig(task="rte", lora_alpha=INF), UsageError,
     r"lora_alpha must be a finite number"),
    ("10 max_seq_length=0", lambda e: GlueConfig(task="rte", max_seq_length=0), UsageError,
     r"max_seq_length must be a positive number of tokens"),
    ("10 weight_decay=-1", lambda e: GlueConfig(task="rte", weight_decay=-1), UsageError, r"weight_decay must be >= 0"),
    ("10 param_groups weight_decay=-1", lambda e: soralab.param_groups(sora(), lr=1e-3, weight_decay=-1),
     ValueError, r"weight_decay must be >= 0"),
    ("10 r above the layer width", lambda e: soralab.inject(tiny_model("bert"), soralab.LoRAConfig(
        r=40, target_modules=["query"])), UserWarning, r"r=40 is larger than the smaller dimension of 2 targeted"),
    ("10 gate_lr<0 (run option)", lambda e: GlueConfig(task="rte", gate_lr=-1e-3), UsageError,
     r"gate_lr must be >= 0"),
    ("10 gate_lr<0 (param_groups)", lambda e: soralab.param_groups(sora(), lr=1e-3, gate_lr=-1e-3), ValueError,
     r"gate_lr must be >= 0 and finite"),
    # messages: result files
    ("truncated result.json", lambda e: GlueResult.from_json(result_file(e, '{"config": {"task": "rte"')),
     UsageError, r"run/result\.json is not valid JSON .*delete it, and a rerun of the sweep redoes that run"),
    ("empty result.json in report", lambda e: (result_file(e, ""), report(e.tmp)), UsageError,
     r"run/result\.json is not valid JSON"),
    ("result.json without a config", lambda e: GlueResult.from_json(result_file(e, '{"history": []}')),
     UsageError, r"run/result\.json is not a soralab result"),
    ("report of nothing", lambda e: report(e.tmp / "nowhere"), MissingFileError, r"no result\.json under .*nowhere"),
    # messages: adapter files
    ("adapter weights not safetensors", lambda e: load(replaced_weights(e, b"PK\x03\x04 a zip, not tensors")),
     UsageError, rf"{WEIGHTS_NAME} is not a readable safetensors file"),
    ("adapter weights truncated", lambda e: load(replaced_weights(e, (saved_adapter(e) / WEIGHTS_NAME)
                                                                  .read_bytes()[:40])),
     UsageError, rf"{WEIGHTS_NAME} is not a readable safetensors file"),
    ("adapter weights of int dtype", lambda e: load(edited_weights_int(e)), UsageError,
     r"wrong shape or dtype .*torch\.int32"),
    ("adapter json not JSON", lambda e: load(broken_json(e, "{not json")), UsageError,
     rf"{CONFIG_NAME}: not valid JSON"),
    ("adapter json a list", lambda e: load(broken_json(e, [1, 2])), UsageError,
     rf"{CONFIG_NAME}: expected a JSON object, found a JSON list"),
    ("adapter json without config", lambda e: load(edited_json(e, lambda m: m.pop("config"))), UsageError,
     rf"{CONFIG_NAME}: 'config' is missing or not a JSON object"),
    ("adapter json without modules", lambda e: load(edited_json(e, lambda m: m.pop("modules"))), UsageError,
     rf"{CONFIG_NAME}: 'modules' is missing"),
    ("adapter json without r", lambda e: load(edited_json(e, lambda m: [s.pop("r") for s in m["modules"].values()])),
     UsageError, rf"{CONFIG_NAME}: modules\['.*query'\]\['r'\] must be a positive integer, got None"),
    ("adapter json r as text", lambda e: load(edited_json(e, lambda m: [s.update(r="4")
                                                                        for s in m["modules"].values()])),
     UsageError, r"\['r'\] must be a positive integer, got '4'"),
    ("adapter json r=0", lambda e: load(edited_json(e, lambda m: [s.update(r=0) for s in m["modules"].values()])),
     UsageError, r"\['r'\] must be a positive integer, got 0"),
    ("adapter json unknown layer type", lambda e: load(edited_json(e, lambda m: [s.update(type="DoRALinear")
                                                                                 for s in m["modules"].values()])),
     UsageError, r"has type 'DoRALinear'; a lora adapter's layers are LoRALinear"),
    ("adapter json future version", lambda e: load(edited_json(e, lambda m: m.update(version=2))), UsageError,
     r"format version 2 by a newer soralab; this soralab reads up to version 1"),
    ("adapter json unknown method", lambda e: load(edited_json(e, lambda m: m["config"].update(method="dora"))),
     UsageError, r"bad 'config': unknown adapter method 'dora'"),
    ("adapter json unknown option", lambda e: load(edited_json(e, lambda m: m["config"].update(rank=3))),
     UsageError, rf"{CONFIG_NAME}: bad 'config': .*rank"),
    ("adapter json not an adapter", lambda e: load(edited_json(e, lambda m: m.update(format="peft"))), UsageError,
     r"not a soralab adapter config"),
    # messages: options validated up front
    ("max_train_samples=2.5", lambda e: GlueConfig(task="rte", max_train_samples=2.5), UsageError,
     r"max_train_samples must be an integer, got 2\.5"),
    ("data_dir as a Path", lambda e: GlueConfig(task="rte", data_dir=Path(e.glue)), UsageError,
     r"data_dir must be a string \(write str\(data_dir\)\), got PosixPath"),
    ("load_glue max_train_samples=2.5",
     lambda e: soralab.experiments.glue.load_glue("rte", e.glue, max_train_samples=2.5),
     UsageError, r"max_train_samples must be a positive integer or None, got 2\.5"),
    ("model path that does not exist", lambda e: run_glue("rte", "lora", **{**e.run, "model_name_or_path":
                                                                            str(e.tmp / "no_model")}),
     MissingFileError, r"model_name_or_path '.*no_model' does not exist"),
    ("model folder without config.json", lambda e: run_glue("rte", "lora", **{**e.run, "model_name_or_path":
                                                                              str(e.tmp)}),
     MissingFileError, r"model_name_or_path .* is a folder without config\.json"),
    ("GLUE file in UTF-16", lambda e: run_glue("rte", "lora", **{**e.run, "data_dir": e.utf16}), UsageError,
     r"RTE/train\.tsv \(GLUE data file\) looks like UTF-16"),
    ("output_dir that is a file", lambda e: run_glue("rte", "lora", output_dir=e.a_file, **e.run), UsageError,
     r"output_dir '.*a_file' is a file"),
    ("output_dir below a file", lambda e: run_glue("rte", "lora", output_dir=e.a_file / "sub", **e.run), UsageError,
     r"output_dir '.*a_file/sub' cannot be written: '.*a_file' is a file, not a folder"),
    ("report's markdown below a file", lambda e: report(e.tmp, markdown=e.a_file / "t.md"), UsageError,
     r"markdown '.*a_file/t\.md' cannot be written: '.*a_file' is a file"),
    ("report's csv a folder", lambda e: report(e.tmp, csv_path=e.tmp), UsageError,
     r"csv_path '.*' is a folder; give a file name such as table\.csv"),
    ("allocate's output below a file, before training", lambda e: soralab.allocate("rte", output=e.a_file / "p.json",
                                                                                   **e.run),
     UsageError, r"output '.*a_file/p\.json' cannot be written"),
    ("max_seq_length longer than the model takes", lambda e: run_glue("rte", "lora", max_seq_length=1000, **e.run),
     UsageError, r"max_seq_length=1000 is longer than '.*bert' takes \(512 tokens\); use at most 512"),
    ("gate_lr for lora", lambda e: GlueConfig(task="rte", method="lora", gate_lr=0.1), UsageError,
     r"gate_lr is a SoRA option; method 'lora' does not use it"),
    ("prox for adalora", lambda e: GlueConfig(task="rte", method="adalora", prox="official"), UsageError,
     r"prox is a SoRA option; method 'adalora' does not use it"),
    ("prox official with the keep schedule", lambda e: GlueConfig(task="rte", method="sora", prox="official"),
     UsageError, r"prox='official' is the authors' optimiser: a constant threshold t = xi at every step; give that xi"),
    ("num_basis for sora", lambda e: GlueConfig(task="rte", method="sora", num_basis=8), UsageError,
     r"num_basis is a NOLA option; method 'sora' does not use it"),
    ("save into a folder with other files", lambda e: (e.tmp.joinpath("keep.txt").write_text("x"),
                                                       soralab.save_adapter(lora(), e.tmp)),
     UsageError, r"already holds other files \(a_file, keep\.txt\)"),
]


def edited_weights_int(e) -> Path:
    folder = saved_adapter(e)
    from safetensors.torch import load_file

    tensors = load_file(str(folder / WEIGHTS_NAME))
    tensors = {k: (v * 0).to(torch.int32) for k, v in tensors.items()}
    save_file(tensors, str(folder / WEIGHTS_NAME))
    return folder


@pytest.mark.parametrize("action, error, match", [pytest.param(*row[1:], id=row[0]) for row in ROWS])
def test_bad_input_is_refused_with_a_message_naming_it(action, error, match, env):
    if issubclass(error, Warning):
        with pytest.warns(error, match=match):
            action(env)
    else:
        with pytest.raises(error, match=match):
            action(env)


def test_load_adapter_of_nan_bytes_names_the_file(env):
    folder = nan_bytes(env)
    with pytest.raises(NonFiniteError, match=in_message(folder / WEIGHTS_NAME)):
        load(folder)


def glue_args(e, *extra):
    return ["glue", "--task", "rte", "--method", "sora", "--model-name-or-path", e.model, "--data-dir", e.glue,
            "--no-progress", *extra]


def sweep_args(e, *extra):
    return ["sweep", "--tasks", "rte", "--methods", "lora", "sora", "--seeds", "1", "--output-dir", str(e.tmp / "sw"),
            "--set", f"model_name_or_path={e.model}", f"data_dir={e.glue}", *extra]


# (id, argv(env), regex for the message after "soralab: error: ")
CLI_ROWS = [
    ("1 --xi nan", lambda e: glue_args(e, "--xi", "nan"), r"xi must be a finite number, got nan"),
    ("1 --grid xi=nan", lambda e: sweep_args(e, "--grid", "xi=nan"), r"xi must be a finite number, got nan"),
    ("3 --set unknown", lambda e: sweep_args(e, "r_max=4"), r"unknown option 'r_max'; valid options: task"),
    ("3 --set bool", lambda e: sweep_args(e, "torch_compile=nope"), r"torch_compile takes true or false, got 'nope'"),
    ("5 --warmup-ratio 1", lambda e: glue_args(e, "--warmup-ratio", "1"), r"warmup_ratio must be a fraction"),
    ("10 --max-seq-length 0", lambda e: glue_args(e, "--max-seq-length", "0"), r"max_seq_length must be a positive"),
    ("10 --weight-decay -1", lambda e: glue_args(e, "--weight-decay", "-1"), r"weight_decay must be >= 0"),
    ("10 --lora-alpha inf", lambda e: glue_args(e, "--lora-alpha", "inf"), r"lora_alpha must be a finite number"),
    ("10 --gate-lr -1", lambda e: glue_args(e, "--gate-lr", "-1"), r"gate_lr must be >= 0"),
    ("--evals-per-epoch 0", lambda e: glue_args(e, "--evals-per-epoch", "0"), r"evals_per_epoch must be a positive"),
    ("--per-device-train-batch-size 0", lambda e: glue_args(e, "--per-device-train-batch-size", "0"),
     r"per_device_train_batch_size must be a positive integer"),
    ("--max-seq-length -5", lambda e: glue_args(e, "--max-seq-length", "-5"), r"max_seq_length must be a positive"),
    ("--precision int8", lambda e: glue_args(e, "--precision", "int8"), r"precision must be one of"),
    ("--method unknown", lambda e: glue_args(e, "--method", "qlora"), r"unknown method 'qlora'; choose one of full"),
    ("--task unknown", lambda e: glue_args(e, "--task", "glue9"), r"unknown GLUE task 'glue9'; valid tasks: cola"),
    ("model path missing", lambda e: glue_args(e, "--model-name-or-path", str(e.tmp / "nope")),
     r"model_name_or_path '.*nope' does not exist"),
    ("GLUE file in UTF-16", lambda e: glue_args(e, "--data-dir", e.utf16),
     r"RTE/train\.tsv \(GLUE data file\) looks like UTF-16"),
    ("GLUE folder missing", lambda e: glue_args(e, "--data-dir", str(e.tmp / "noglue")),
     r"GLUE data folder .*noglue \(given as data_dir\) does not exist"),
    ("glue --output-dir a file", lambda e: glue_args(e, "--output-dir", str(e.a_file)),
     r"output.dir '.*a_file' is a file"),
    ("glue --output-dir below a file", lambda e: glue_args(e, "--output-dir", str(e.a_file / "sub")),
     r"--output-dir '.*a_file/sub' cannot be written: '.*a_file' is a file"),
    ("sweep --set from_recipe (soralab's, not an option)", lambda e: sweep_args(e, "from_recipe=x"),
     r"unknown option 'from_recipe'"),
    ("allocate --output below a file, before training",
     lambda e: ["allocate", "--task", "rte", "--model-name-or-path", e.model, "--data-dir", e.glue, "--output",
                str(e.a_file / "p.json")], r"output '.*a_file/p\.json' cannot be written"),
    ("report --csv a folder", lambda e: ["report", str(e.tmp), "--csv", str(e.tmp)], r"csv_path '.*' is a folder"),
    ("sweep --methods unknown, before the first run", lambda e: sweep_args(e)[:5] + ["qlora"] + sweep_args(e)[6:],
     r"unknown method 'qlora'"),
    ("sweep --tasks unknown, before the first run", lambda e: ["sweep", "--tasks", "rte", "glue9", "--methods", "lora",
                                                               "--output-dir", str(e.tmp / "sw")],
     r"unknown GLUE task 'glue9'"),
    ("sweep --output-dir a file", lambda e: sweep_args(e)[:8] + ["--output-dir", str(e.a_file)] + sweep_args(e)[10:],
     r"output_dir '.*a_file' is a file"),
    ("quickstart --output-dir a file, before training", lambda e: ["quickstart", "--output-dir", str(e.a_file)],
     r"--output-dir '.*a_file' is a file"),
    ("report of a truncated result.json", lambda e: ["report", str(result_file(e, '{"conf').parent)],
     r"run/result\.json is not valid JSON"),
    ("report of nothing", lambda e: ["report", str(e.tmp / "nothing")], r"no result\.json under .*nothing"),
    ("notebooks --profile unknown", lambda e: ["notebooks", "--profile", "huge"], r"unknown profile 'huge'"),
]


@pytest.mark.parametrize("argv, match", [pytest.param(*row[1:], id=row[0]) for row in CLI_ROWS])
def test_cli_user_error_is_one_line_and_exit_2(argv, match, env, capsys, monkeypatch):
    argv = argv(env)
    if argv[0] == "quickstart":  # its --output-dir is checked before training, so run_glue is never reached
        monkeypatch.setattr("soralab.experiments.train.run_glue", lambda *a, **k: pytest.fail("reached run_glue"))
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("soralab: error: ")]
    assert len(message) == 1 and re.search(match, message[0]), err


def test_cli_bug_keeps_its_traceback(env, monkeypatch):
    """Only user errors are turned into one line; anything else is a bug and propagates."""
    monkeypatch.setattr("soralab.experiments.train.run_glue", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli_main(glue_args(env))


def test_every_numbered_case_has_a_row():
    numbered = {row[0].split()[0] for row in ROWS + CLI_ROWS if row[0].split()[0].isdigit()}
    # 6 (NaN metrics) and 8 (atomic saves) are behaviours, not errors: see test_hardening.py
    assert numbered == {str(i) for i in range(1, 11)} - {"6", "8"}
