"""Runs the engine's stages (detect, predict, incidents, ...) over each stored batch, in order.

``inline`` (the default) runs them in the ingesting thread, under one lock that keeps batches in order:
the stages are cheap and vectorized (detection scores about 1 M samples/s), and handing every batch to another
thread costs more than the work, through GIL hand-offs. ``inline=False`` uses one worker thread, for
stages too slow to sit on the ingest path. ``submit`` returns a future either way; ``sync=true`` ingest
waits on it."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Protocol

import numpy as np

from aurora.model import SeriesBatch

log = logging.getLogger(__name__)


class Stage(Protocol):
    name: str

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None: ...


class Pipeline:
    def __init__(self, stages: list[Stage] | None = None, max_queue: int = 10_000, inline: bool = True) -> None:
        self.stages: list[Stage] = list(stages or [])
        self.inline = inline
        self._inline_lock = threading.Lock()
        self._q: queue.Queue[tuple[SeriesBatch, np.ndarray, int, Future[None]] | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self.processed_batches = 0
        self.failed_batches = 0

    def start(self) -> None:
        if self._thread is None and not self.inline:
            self._thread = threading.Thread(target=self._run, name="aurora-pipeline", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def qsize(self) -> int:
        return self._q.qsize()

    def submit(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> Future[None]:
        """Queue a stored batch for the stages. Blocks while the queue is full: backpressure on ingest
        (an event-loop caller then stalls too; stages must keep up with ingest, which their benchmarks
        check)."""
        fut: Future[None] = Future()
        if not self.stages:
            fut.set_result(None)
        elif self.inline:
            with self._inline_lock:
                self._process(batch, series_ids, now_ms, fut)
        else:
            self._q.put((batch, series_ids, now_ms, fut))
        return fut

    def _process(self, batch: SeriesBatch, ids: np.ndarray, now_ms: int, fut: Future[None]) -> None:
        try:
            for stage in self.stages:
                stage.process(batch, ids, now_ms)
            self.processed_batches += 1
            fut.set_result(None)
        except Exception as exc:  # a failing stage must not stop ingestion; the error is reported
            self.failed_batches += 1
            log.exception("pipeline stage failed")
            fut.set_exception(exc)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            self._process(*item)
