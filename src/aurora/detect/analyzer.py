"""What every univariate analyzer of the ensemble shares: its output and its interface.

An analyzer keeps per-slot state (``SlotArrays``) and, for a batch of samples (each slot at most once),
returns a *surprise* per sample: how far the sample is from what the analyzer expected, in units of the
spread it expected, computed from the state *before* the sample is learnt (so scores are causal). Turning
surprises into probabilities is the likelihood layer's job, not the analyzer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

TINY = 1e-9  # absolute floor of every spread, so a constant history cannot divide by zero
REL_FLOOR = 1e-3  # spread floor relative to the level: a flat series still needs a visible change


@dataclass
class Surprise:
    z: np.ndarray  # >= 0 surprise per sample; 0 while the analyzer is warming up
    expected: np.ndarray  # the analyzer's expectation of the value (NaN when it has none yet)
    spread: np.ndarray  # the scale z is measured in
    ready: np.ndarray  # bool: past warm-up, so z means something


class Analyzer(Protocol):
    name: str
    reason: str  # what a high surprise means, for explanations ("jumped from the previous sample")

    def ensure_slots(self, n: int) -> None: ...

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise: ...

    def state(self) -> dict[str, np.ndarray]: ...

    def load_state(self, state: dict[str, np.ndarray]) -> None: ...

    def nbytes_per_slot(self) -> int: ...


def spread_floor(level: np.ndarray) -> np.ndarray:
    return TINY + REL_FLOOR * np.abs(level)


def huber(resid: np.ndarray, scale: np.ndarray, clip: float) -> np.ndarray:
    """The residual clipped at ``clip`` spreads: one outlier moves a robust baseline only a little."""
    lim = clip * scale
    return np.clip(resid, -lim, lim)
