"""The detector's checkpoint file: nested state (arrays and JSON-able settings) as one ``.npz``, written
atomically, so a restart resumes every series where it was instead of warming it up again."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def flatten(tree: dict[str, Any], prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays of a nested dict under dotted keys, and the rest of the tree (JSON-able) without them."""
    arrays: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}"
        if isinstance(v, np.ndarray):
            arrays[key] = v
        elif isinstance(v, dict):
            a, r = flatten(v, key)
            arrays.update(a)
            rest[k] = r
        else:
            rest[k] = v
    return arrays, rest


def unflatten(arrays: dict[str, np.ndarray], prefix: str, rest: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = json.loads(json.dumps(rest))
    for key, arr in arrays.items():
        if not key.startswith(prefix + "."):
            continue
        *path, leaf = key[len(prefix) + 1:].split(".")
        node = tree
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = arr
    return tree


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write arrays and metadata as one ``.npz`` atomically: a temporary file, fsynced, renamed over
    ``path``. A crash leaves the previous checkpoint or the new one, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            entries: dict[str, Any] = {"__meta__": blob, **arrays}
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, metadata) of a checkpoint, or None when there is none or it cannot be read (logged)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except Exception as exc:
        log.warning("detector checkpoint %s unreadable (%s); starting fresh", path, exc)
        return None
    return arrays, meta
