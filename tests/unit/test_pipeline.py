"""The pipeline runs stages over each batch in order; a failing stage is reported, not fatal."""

from __future__ import annotations

import numpy as np
import pytest

from aurora.model import SeriesBatch
from aurora.pipeline import Pipeline


class Recorder:
    name = "recorder"

    def __init__(self, fail_on: int | None = None) -> None:
        self.seen: list[int] = []
        self.fail_on = fail_on

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        if now_ms == self.fail_on:
            raise RuntimeError("stage broke")
        self.seen.append(now_ms)


@pytest.mark.parametrize("inline", [True, False])
def test_stages_see_batches_in_order_and_failures_are_contained(inline: bool) -> None:
    rec = Recorder(fail_on=3)
    p = Pipeline([rec], inline=inline)
    p.start()
    futs = [p.submit(SeriesBatch.empty(), np.zeros(0, np.int64), t) for t in range(6)]
    for t, f in enumerate(futs):
        if t == 3:
            with pytest.raises(RuntimeError, match="stage broke"):
                f.result(timeout=5)
        else:
            assert f.result(timeout=5) is None
    p.stop()
    assert rec.seen == [0, 1, 2, 4, 5]
    assert p.processed_batches == 5 and p.failed_batches == 1
