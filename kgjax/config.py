"""Generic configuration handling: files, overrides, saving, loading and comparing.

Each model family owns its schema (`kgjax.train.kge.config` for the KGE trainer): its
defaults, its validation, the keys added since runs were first saved and the keys a resumed
run may change. What is here knows nothing of any family.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
from collections.abc import Mapping

import ml_collections


class ConfigError(ValueError):
    """A configuration value that cannot be used, with the key named."""


def get(config, dotted: str):
    """`config.<dotted>`, e.g. get(config, "optimizer.lr")."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def checker(config: ml_collections.ConfigDict):
    """check(condition, key, message): raises ConfigError naming the key, its value and what
    it should be when `condition` is false."""

    def check(condition, key, message):
        if not condition:
            raise ConfigError(f"config.{key}: {message} (got {get(config, key)!r})")

    return check


def check_positive_integers(config: ml_collections.ConfigDict, keys, message: str) -> None:
    """Raises ConfigError naming the first of `keys` (dotted) whose value is below 1."""
    check = checker(config)
    for key in keys:
        check(get(config, key) >= 1, key, message)


def from_file(
    spec: str, overrides: Mapping[str, object] | None = None
) -> ml_collections.ConfigDict:
    """The config that `--config=<file>[:<argument>]` names, with dotted overrides applied.

    Args:
      spec: a config file and its argument, e.g. "configs/rotate.py:umls".
      overrides: {"optimizer.lr": 1e-4, ...}, set with `override`.

    Raises:
      ConfigError: the file does not exist or has no get_config.
    """
    path, _, argument = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: a config file defines get_config(argument)")
    config = module.get_config(argument) if argument else module.get_config()
    for dotted, value in (overrides or {}).items():
        override(config, dotted, value)
    return config


def override(config: ml_collections.ConfigDict, dotted: str, value) -> None:
    """Sets `config.<dotted>` to `value` in place, as `--config.<dotted>=value` would.

    Raises:
      KeyError: a key the config does not have (it is locked), with close matches.
    """
    *parents, leaf = dotted.split(".")
    node = config
    for parent in parents:
        node = node[parent]
    node[leaf] = value


def parse_value(text: str):
    """A command-line value: the Python literal it spells ("1e-4", "True"), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(texts) -> dict[str, object]:
    """["optimizer.lr=1e-4", ...] -> {"optimizer.lr": 0.0001, ...}, values by `parse_value`."""
    parsed = {}
    for text in texts:
        key, _, value = text.partition("=")
        parsed[key] = parse_value(value)
    return parsed


def save(config: ml_collections.ConfigDict, path: str) -> None:
    """Writes the config as JSON (atomically: a killed run never leaves half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(config.to_json(indent=2, sort_keys=False))
    os.replace(tmp, path)


def load(path: str, added_keys: Mapping[str, object] | None = None) -> ml_collections.ConfigDict:
    """Reads a config saved by `save`, locked like the original.

    Args:
      added_keys: {dotted key: value} filled in where the saved config lacks them: keys a
        family added to its schema after runs were saved, with the value that behaves as
        their absence did.
    """
    with open(path) as f:
        saved = json.load(f)
    for dotted, value in (added_keys or {}).items():
        *parents, leaf = dotted.split(".")
        node = saved
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(leaf, value)
    config = ml_collections.ConfigDict(saved)
    config.lock()
    return config


def differences(
    saved: ml_collections.ConfigDict,
    new: ml_collections.ConfigDict,
    resumable_keys: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Keys whose values differ, except `resumable_keys` (a key or any of its parents)."""

    def flat(d, prefix=""):
        out = {}
        for key, value in d.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict | ml_collections.ConfigDict):
                out.update(flat(value, f"{name}."))
            else:
                out[name] = value
        return out

    a, b = flat(saved.to_dict()), flat(new.to_dict())
    changed = []
    for key in sorted(set(a) | set(b)):
        parts = key.split(".")
        if any(".".join(parts[:i]) in resumable_keys for i in range(1, len(parts) + 1)):
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, list | tuple) or isinstance(vb, list | tuple):
            va, vb = list(va or []), list(vb or [])
        if va != vb:
            changed.append(f"{key}: {va!r} -> {vb!r}")
    return changed
