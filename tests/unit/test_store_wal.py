"""WAL records: round trip, torn tails, CRC damage, rotation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aurora.store.wal import (
    REC_SAMPLES,
    REC_SERIES,
    REC_STATE,
    WAL,
    SamplesRecord,
    SeriesRecord,
    StateRecord,
    encode_record,
    read_segment,
    samples_parts,
    series_parts,
    state_parts,
)

STALE = np.array([0x7FF0000000000002], np.uint64).view(np.float64)


def _samples(k: int) -> list:
    ids = np.array([k, k + 1], np.int64)
    counts = np.array([2, 1], np.int64)
    ts = np.array([10, 20, 30], np.int64) + k
    vals = np.concatenate([STALE, [1.5, np.nan]])
    return encode_record(REC_SAMPLES, samples_parts(ids, counts, ts, vals))


def test_round_trip_bit_exact(tmp_path: Path) -> None:
    wal = WAL(tmp_path, "always", 1.0)
    wal.start()
    wal.write([encode_record(REC_SERIES, series_parts([(0, "m", {"a": "b"})])), _samples(0)])
    wal.write([encode_record(REC_STATE, state_parts(np.array([5], np.int64), np.array([7], np.uint64)))])
    wal.close()
    recs = [r for _, r in WAL(tmp_path, "always", 1.0).replay_records()]
    assert isinstance(recs[0], SeriesRecord) and recs[0].series == [(0, "m", {"a": "b"})]
    s = recs[1]
    assert isinstance(s, SamplesRecord)
    assert list(s.ids) == [0, 1] and list(s.counts) == [2, 1] and list(s.ts) == [10, 20, 30]
    assert s.values.view(np.uint64)[0] == 0x7FF0000000000002
    assert isinstance(recs[2], StateRecord) and list(recs[2].last_bits) == [7]


def test_torn_tail_and_crc_damage_stop_the_segment(tmp_path: Path) -> None:
    wal = WAL(tmp_path, "never", 1.0)
    wal.start()
    for k in range(3):
        wal.write([_samples(k)])
    wal.close()
    path = wal.segments()[-1][1]
    data = path.read_bytes()
    rec_len = len(data) // 3
    for cut in range(1, rec_len):
        path.write_bytes(data[: 2 * rec_len + cut])
        recs, good, torn = read_segment(path)
        assert len(recs) == 2 and good == 2 * rec_len and torn
    damaged = bytearray(data)
    damaged[rec_len + 30] ^= 0xFF  # inside the second record's payload
    path.write_bytes(bytes(damaged))
    recs, good, torn = read_segment(path)
    assert len(recs) == 1 and good == rec_len and torn


def test_rotation_replays_from_newest_state(tmp_path: Path) -> None:
    wal = WAL(tmp_path, "always", 1.0)
    wal.start()
    wal.write([_samples(0)])
    state = encode_record(REC_STATE, state_parts(np.array([1, 2], np.int64), np.array([3, 4], np.uint64)))
    wal.rotate([state, _samples(100)])
    wal.write([_samples(200)])
    wal.close()
    assert len(wal.segments()) == 1
    recs = [r for _, r in WAL(tmp_path, "always", 1.0).replay_records()]
    assert isinstance(recs[0], StateRecord)
    assert [int(r.ts[0]) for r in recs[1:] if isinstance(r, SamplesRecord)] == [110, 210]


def test_interrupted_rotation_falls_back_to_older_segment(tmp_path: Path) -> None:
    wal = WAL(tmp_path, "always", 1.0)
    wal.start()
    state = encode_record(REC_STATE, state_parts(np.zeros(0, np.int64), np.zeros(0, np.uint64)))
    wal.rotate([state])
    wal.write([_samples(0)])
    wal.close()
    # a newer segment whose STATE record was torn (crash during rotation before its fsync)
    seq = wal.segments()[-1][0] + 1
    (tmp_path / f"{seq:016d}.wal").write_bytes(b"AWL1\x03")
    recs = [r for _, r in WAL(tmp_path, "always", 1.0).replay_records()]
    assert isinstance(recs[0], StateRecord) and isinstance(recs[1], SamplesRecord)


def test_interval_fsync_thread(tmp_path: Path) -> None:
    wal = WAL(tmp_path, "interval", 0.05)
    wal.start()
    wal.write([_samples(0)])
    import time

    deadline = time.monotonic() + 2
    while wal.fsyncs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wal.fsyncs >= 1
    wal.close()


def test_group_commit_one_fsync_covers_writes_before_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With fsync 'always', a write is durable only after commit(); a commit covers earlier writes of any
    thread, so concurrent writers share fsyncs, and a commit with nothing new does not fsync again."""
    import threading

    from aurora.store.wal import WAL

    wal = WAL(tmp_path / "wal", "always", 1.0)
    wal.start()
    rec = [[b"x" * 100]]
    wal.write(rec)
    assert wal.fsyncs == 0  # deferred until commit
    pos = wal.pending_position()
    wal.commit()
    assert wal.fsyncs == 1
    wal.commit(pos)  # already covered
    assert wal.fsyncs == 1
    done: list[int] = []

    def writer() -> None:
        wal.write(rec)
        done.append(wal.pending_position())

    t = threading.Thread(target=writer)
    t.start()
    t.join()
    wal.write(rec)
    wal.commit()  # covers the other thread's earlier write too
    assert wal.fsyncs == 2
    wal.commit(done[0])
    assert wal.fsyncs == 2
    wal.close()
