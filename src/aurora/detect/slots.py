"""Per-slot state arrays shared by every analyzer: growth, gather-by-slot and serialization.

A detector's state for all series lives in NumPy arrays indexed by series slot. ``SlotArrays`` owns a set
of named arrays with a common first axis (the slot), grows them when new slots appear and turns them into
a plain dict and back, so a detector can be checkpointed or moved to another shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Field:
    name: str
    dtype: type | str = np.float64
    shape: tuple[int, ...] = ()  # per-slot shape (e.g. (48,) for a seasonal profile)
    fill: float = 0.0


class SlotArrays:
    """Named arrays of shape ``(n_slots, *field.shape)``; attribute access by field name."""

    def __init__(self, fields: tuple[Field, ...], n_slots: int = 0) -> None:
        self._fields = fields
        self.arrays: dict[str, np.ndarray] = {
            f.name: np.full((0, *f.shape), f.fill, dtype=f.dtype) for f in fields
        }
        self.ensure(n_slots)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def n_slots(self) -> int:
        return len(self.arrays[self._fields[0].name])

    def ensure(self, n: int) -> None:
        """Grow so slots ``0..n-1`` exist; new slots start at each field's fill value."""
        grow = n - self.n_slots
        if grow <= 0:
            return
        # Grow geometrically so a fleet that adds series one by one does not copy the state each time.
        grow = max(grow, self.n_slots // 2)
        for f in self._fields:
            extra = np.full((grow, *f.shape), f.fill, dtype=f.dtype)
            self.arrays[f.name] = np.concatenate([self.arrays[f.name], extra])

    def nbytes_per_slot(self) -> int:
        return sum(int(np.dtype(f.dtype).itemsize * int(np.prod(f.shape, dtype=np.int64))) for f in self._fields)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.arrays.items()}

    def load(self, state: dict[str, np.ndarray]) -> None:
        for f in self._fields:
            arr = np.asarray(state[f.name], dtype=f.dtype)
            if arr.shape[1:] != f.shape:
                raise ValueError(f"state field {f.name!r} has shape {arr.shape}, expected (n, *{f.shape})")
            self.arrays[f.name] = arr.copy()


class SlotState:
    """Base of every part of the detector that owns one ``SlotArrays`` (``self.s``): growth, size per slot and
    (de)serialization, the same for all of them."""

    s: SlotArrays

    def ensure_slots(self, n: int) -> None:
        self.s.ensure(n)

    def nbytes_per_slot(self) -> int:
        return self.s.nbytes_per_slot()

    def state(self) -> dict[str, np.ndarray]:
        return self.s.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.s.load(state)
