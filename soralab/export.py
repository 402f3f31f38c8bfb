"""Saving and loading adapters (safetensors + JSON), and export to a standard PEFT LoRA adapter.

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a half-written file behind; an adapter's two files (weights and JSON) are written together into a
temporary folder that is renamed into place, so they never come from two different saves. Nothing is ever
unpickled. Every tensor is checked for NaN and infinity when it is saved, exported and loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import LoRAConfig, NOLAConfig
from .errors import MissingFileError, UsageError
from .files import atomic_write_folder
from .inject import adapter_config, adapter_modules, check_no_overlap, install, make_adapter, matches
from .layers import SUPPORTED_BASE_TYPES, AdapterLayer, SoRALinear, rng_kept
from .prune import check_finite

CONFIG_NAME = "soralab_adapter.json"
WEIGHTS_NAME = "soralab_adapter.safetensors"
PEFT_CONFIG_NAME, PEFT_WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"
FORMAT_VERSION = 1  # of soralab_adapter.json; a newer file is refused with a clear message


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def _saved_module_names(model: nn.Module, config: LoRAConfig) -> list[str]:
    return [n for n, _ in model.named_modules() if n and matches(n, config.modules_to_save)]


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Adapter parameters (by module type) and ``modules_to_save`` parameters, by full name."""
    state = {}
    for name, m in adapter_modules(model):
        for attr, p in m.named_parameters(recurse=False):
            state[f"{name}.{attr}"] = p
    for name in _saved_module_names(model, adapter_config(model)):
        for attr, p in model.get_submodule(name).named_parameters():
            state[f"{name}.{attr}"] = p
    return state


def _layer_spec(m: AdapterLayer) -> dict[str, Any]:
    return {"type": type(m).__name__, "r": m.r, "lora_alpha": m.lora_alpha,
            "in_features": m.in_features, "out_features": m.out_features}


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``soralab_adapter.json`` (config + per-module layout) and the weights as safetensors, together
    (``atomic_write_folder``). Refuses NaN or infinity in any tensor it would write."""
    config = adapter_config(model)
    path = Path(path)
    layout = {name: _layer_spec(m) for name, m in adapter_modules(model)}
    check_no_overlap(list(layout), _saved_module_names(model, config), where="save_adapter: ")
    state = _cpu(adapter_state(model))
    check_finite(state, f"save_adapter to {path}")
    meta = {"format": "soralab-adapter", "version": FORMAT_VERSION, "config": config.to_dict(), "modules": layout}
    text = json.dumps(meta, indent=2, allow_nan=False)

    def write(folder: Path) -> None:
        save_file(state, str(folder / WEIGHTS_NAME))
        (folder / CONFIG_NAME).write_text(text, encoding="utf-8")

    return atomic_write_folder(path, write, {CONFIG_NAME, WEIGHTS_NAME})


def load_adapter(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an adapter saved by ``save_adapter`` into ``model`` (a fresh base model, or one
    with exactly the same adapter layout). Any mismatch is an error; nothing is partially loaded.
    """
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise MissingFileError(f"{path} is not a soralab adapter folder: expected {CONFIG_NAME} and {WEIGHTS_NAME}")
    config, layout = read_adapter_config(path / CONFIG_NAME)
    tensors = read_tensors(path / WEIGHTS_NAME)

    present = dict(adapter_modules(model))
    if present:
        now = {n: _layer_spec(m) for n, m in present.items()}
        model_seed = getattr(adapter_config(model), "seed", None)
        if isinstance(config, NOLAConfig) and model_seed != config.seed:
            raise UsageError(f"adapter in {path} was trained on NOLA bases of seed {config.seed}; this model's "
                             f"NOLA layers use seed {model_seed}: load it into a fresh base model instead")
        if now != layout:
            diff = sorted(n for n in set(now) | set(layout) if now.get(n) != layout.get(n))
            raise UsageError(f"adapter in {path} does not fit this model's adapters; differing modules: {diff[:5]}")
        new_layers = None
    else:
        check_no_overlap(list(layout), _saved_module_names(model, config), where=f"adapter in {path}: ")
        new_layers = {}
        for name, spec in layout.items():
            try:
                base = model.get_submodule(name)
            except AttributeError:
                raise UsageError(f"adapter in {path} targets {name!r}, which this model does not have") from None
            if not isinstance(base, SUPPORTED_BASE_TYPES):
                raise UsageError(
                    f"adapter in {path} targets {name!r}, a {type(base).__name__} here, not a linear layer")
            with rng_kept(base.weight.device):  # the saved tensors replace its initialisation
                layer = make_adapter(base, config, name, layer_type=spec["type"], r=spec["r"],
                                     lora_alpha=spec["lora_alpha"])
            if (layer.in_features, layer.out_features) != (spec["in_features"], spec["out_features"]):
                raise UsageError(
                    f"adapter in {path} expects {name!r} of shape in={spec['in_features']}, "
                    f"out={spec['out_features']}; this model's is in={layer.in_features}, out={layer.out_features}"
                )
            new_layers[name] = layer

    # Check every tensor before touching the model.
    expected = _expected_shapes(model, config, new_layers)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != expected[k]
                   or not tensors[k].is_floating_point())
    if missing or unexpected or wrong:
        raise UsageError(
            f"adapter in {path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape or dtype {[(k, tuple(tensors[k].shape), tensors[k].dtype, expected[k]) for k in wrong[:5]]}"
        )
    if new_layers is not None:
        install(model, new_layers, config)
    with torch.no_grad():
        state = adapter_state(model)
        for k, p in state.items():
            p.copy_(tensors[k].to(p.device, p.dtype))
    return model


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; one clear error naming the file if it is unreadable or holds NaN/infinity."""
    try:
        tensors = load_file(str(file))
    except Exception as err:  # any parse failure (truncated, not safetensors at all) is the file's, not ours
        raise UsageError(f"{file} is not a readable safetensors file ({type(err).__name__}: {err}); it is "
                         f"corrupt or not an adapter's weights: save the adapter again") from None
    check_finite(tensors, f"{file}")
    return tensors


def read_adapter_config(file: Path) -> tuple[LoRAConfig, dict[str, dict]]:
    """``(config, layout)`` from a ``soralab_adapter.json``, every field checked; errors name the file."""

    def bad(what: str) -> UsageError:
        return UsageError(f"{file}: {what}")

    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"not valid JSON ({err}); the file is corrupt: save the adapter again") from None
    if not isinstance(meta, dict):
        raise bad(f"expected a JSON object, found a JSON {type(meta).__name__}")
    if meta.get("format") != "soralab-adapter":
        raise bad(f"not a soralab adapter config (\"format\" is {meta.get('format')!r}, not 'soralab-adapter')")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad(f"bad format version {version!r}; expected an integer such as {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise bad(f"written in format version {version} by a newer soralab; this soralab reads up to version "
                  f"{FORMAT_VERSION}: upgrade soralab")
    for key in ("config", "modules"):
        if not isinstance(meta.get(key), dict):
            raise bad(f"{key!r} is missing or not a JSON object")
    try:
        config = LoRAConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as err:
        raise bad(f"bad 'config': {err}") from None
    allowed = {"lora": ("LoRALinear",), "sora": ("SoRALinear", "LoRALinear"), "nola": ("NOLALinear",)}[config.method]
    for name, spec in meta["modules"].items():
        if not isinstance(spec, dict):
            raise bad(f"modules[{name!r}] is not a JSON object")
        if spec.get("type") not in allowed:
            raise bad(f"modules[{name!r}] has type {spec.get('type')!r}; a {config.method} adapter's layers are "
                      f"{' or '.join(allowed)}")
        for key in ("r", "in_features", "out_features"):
            v = spec.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise bad(f"modules[{name!r}][{key!r}] must be a positive integer, got {v!r}")
        alpha = spec.get("lora_alpha")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < float("inf"):
            raise bad(f"modules[{name!r}]['lora_alpha'] must be a finite number > 0, got {alpha!r}")
    return config, meta["modules"]


def _expected_shapes(model: nn.Module, config: LoRAConfig, new_layers: dict | None) -> dict[str, tuple]:
    if new_layers is None:
        return {k: tuple(v.shape) for k, v in adapter_state(model).items()}
    shapes = {f"{n}.{a}": tuple(p.shape) for n, m in new_layers.items() for a, p in m.named_parameters(recurse=False)}
    for name in _saved_module_names(model, config):
        for attr, p in model.get_submodule(name).named_parameters():
            shapes[f"{name}.{attr}"] = tuple(p.shape)
    return shapes


def export_peft(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write a standard PEFT LoRA adapter that ``peft.PeftModel.from_pretrained(base, path)`` loads.

    Works for LoRA, pruned SoRA (per-module ranks go to ``rank_pattern`` / ``alpha_pattern``)
    and NOLA (its A and B written out as plain matrices). Unpruned SoRA is refused: call
    ``soralab.prune`` first. Modules pruned to rank 0 are already plain layers and are left out.
    """
    from peft import LoraConfig

    config = adapter_config(model)
    layers = dict(adapter_modules(model))
    check_no_overlap(list(layers), _saved_module_names(model, config), where="export_peft: ")
    if any(isinstance(m, SoRALinear) for m in layers.values()):
        raise UsageError("export_peft needs a pruned model: call soralab.prune(model) first (PEFT has no gates)")
    if not layers:
        raise UsageError("no adapter layers left to export (every rank was pruned)")
    conv1d = {m.fan_in_fan_out for m in layers.values()}
    if len(conv1d) > 1:
        raise UsageError("cannot export a model mixing Conv1D and Linear adapters into one PEFT config")
    ranks = {n: m.r for n, m in layers.items()}
    r = max(set(ranks.values()), key=list(ranks.values()).count)  # the most common rank
    peft_config = LoraConfig(
        r=r, lora_alpha=r * next(iter(layers.values())).scaling, lora_dropout=config.lora_dropout,
        target_modules=sorted(layers), fan_in_fan_out=conv1d.pop(),
        rank_pattern={n: k for n, k in ranks.items()},
        alpha_pattern={n: m.lora_alpha for n, m in layers.items()},
        modules_to_save=config.modules_to_save or None,
    )
    tensors = {}
    with torch.no_grad():
        for name, m in layers.items():
            tensors[f"base_model.model.{name}.lora_A.weight"] = m.lora_A
            tensors[f"base_model.model.{name}.lora_B.weight"] = m.lora_B
        for name in _saved_module_names(model, config):
            for attr, p in model.get_submodule(name).named_parameters():
                tensors[f"base_model.model.{name}.{attr}"] = p
    path = Path(path)
    tensors = _cpu(tensors)
    check_finite(tensors, f"export_peft to {path}")
    text = json.dumps(peft_config.to_dict(), indent=2, default=list, allow_nan=False)

    def write(folder: Path) -> None:
        save_file(tensors, str(folder / PEFT_WEIGHTS_NAME), metadata={"format": "pt"})
        (folder / PEFT_CONFIG_NAME).write_text(text, encoding="utf-8")

    return atomic_write_folder(path, write, {PEFT_CONFIG_NAME, PEFT_WEIGHTS_NAME})
