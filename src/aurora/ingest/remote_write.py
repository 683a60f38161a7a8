"""Prometheus remote_write 1.0: snappy-compressed ``WriteRequest`` protobuf <-> SeriesBatch.

Decoding is on the ingest hot path, so the common case avoids building a Python object per label and
per sample:

* upb parses the body twice through *view* messages that share the wire format of ``WriteRequest``
  but declare fields as ``bytes``: one view yields the raw bytes of every ``TimeSeries``; the other
  declares ``timeseries`` as a *singular* message, which protobuf merges across occurrences, so the
  raw bytes of every ``Sample`` of the request arrive in one repeated field, in order.
* The label section of every series (the leading ``labels`` fields) is found with a vectorised scan,
  and its raw bytes are the key of a cache of decoded (metric, labels). A sender repeats the same
  series in every request, so after the first request labels cost one dict lookup per series.
* Sample values and timestamps are decoded from the raw sample bytes with NumPy.

Anything the fast path does not recognise (exemplars, native histograms, fields in an unusual order,
unknown fields) falls back to a plain parse with the generated classes, which is always correct.
"""

from __future__ import annotations

import threading
from typing import Any

import cramjam
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from aurora.errors import BadInput, TooLarge
from aurora.model import SeriesBatch
from aurora.proto import remote_pb2 as _remote_pb2
from aurora.proto import types_pb2 as _types_pb2

__all__ = ["clear_label_cache", "decode_remote_write", "encode_remote_write"]

# Decoded label sections kept per process; when full it is simply emptied (a sender's working set
# is re-learnt in one request, and a bound matters more than a perfect eviction policy).
LABEL_CACHE_MAX = 200_000
# Generated modules have no type stubs; treat their classes as Any.
remote_pb2: Any = _remote_pb2
types_pb2: Any = _types_pb2

_label_cache: dict[bytes, tuple[str, dict[str, str]]] = {}
_cache_lock = threading.Lock()

_F = descriptor_pb2.FieldDescriptorProto
_VIEW_FILE = "aurora/proto/_remote_write_view.proto"


def _build_views() -> tuple[Any, Any]:
    """Message classes for the two views of a WriteRequest (see the module docstring)."""
    pool = descriptor_pool.Default()
    try:
        fd = pool.FindFileByName(_VIEW_FILE)
    except KeyError:
        fdp = descriptor_pb2.FileDescriptorProto(name=_VIEW_FILE, package="aurora_rw_view", syntax="proto3")

        def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
            m = fdp.message_type.add(name=name)
            for fname, number, ftype, label, type_name in fields:
                f = m.field.add(name=fname, number=number, type=ftype, label=label)
                if type_name:
                    f.type_name = type_name

        rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
        message("RawRequest", [("timeseries", 1, _F.TYPE_BYTES, rep, "")])
        message("FlatSeries", [
            ("samples", 2, _F.TYPE_BYTES, rep, ""),
            ("exemplars", 3, _F.TYPE_BYTES, rep, ""),
            ("histograms", 4, _F.TYPE_BYTES, rep, ""),
        ])
        message("FlatRequest", [("timeseries", 1, _F.TYPE_MESSAGE, opt, ".aurora_rw_view.FlatSeries")])
        pool.Add(fdp)
        fd = pool.FindFileByName(_VIEW_FILE)
    raw_cls = message_factory.GetMessageClass(fd.message_types_by_name["RawRequest"])
    flat_cls = message_factory.GetMessageClass(fd.message_types_by_name["FlatRequest"])
    return raw_cls, flat_cls


_RawRequest, _FlatRequest = _build_views()

_ARANGE8 = np.arange(8, dtype=np.int64)
_ARANGE10 = np.arange(10, dtype=np.int64)
_SHIFTS10 = (7 * np.arange(10, dtype=np.uint64)).astype(np.uint64)
_PAD = b"\x00" * 16  # so vectorised gathers a few bytes past the end never index out of range


class _Fallback(Exception):
    """The fast path met something it does not handle; decode with the generated classes instead."""


def clear_label_cache() -> None:
    with _cache_lock:
        _label_cache.clear()


# --------------------------------------------------------------------------------------------- decode


def _decompress(body: bytes, content_encoding: str | None, max_decoded_bytes: int | None) -> bytes:
    enc = (content_encoding or "snappy").strip().lower()
    if enc == "snappy":
        if max_decoded_bytes is not None:
            size = _snappy_declared_size(body)
            if size is not None and size > max_decoded_bytes:
                raise TooLarge(f"remote_write body decompresses to {size} bytes; the limit is "
                               f"{max_decoded_bytes} (server.max_body_bytes)")
        try:
            return bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise BadInput("remote_write body is not valid snappy-compressed data (block format, as "
                           f"remote_write 1.0 requires): {exc}") from exc
    if enc == "identity":
        out = body
    elif enc in ("zstd", "gzip"):
        codec = cramjam.zstd if enc == "zstd" else cramjam.gzip
        try:
            out = bytes(codec.decompress(body))
        except Exception as exc:
            raise BadInput(f"remote_write body is not valid {enc}-compressed data: {exc}") from exc
    else:
        raise BadInput(f"unsupported Content-Encoding {content_encoding!r} for remote_write; send snappy")
    if max_decoded_bytes is not None and len(out) > max_decoded_bytes:
        raise TooLarge(f"remote_write body decompresses to {len(out)} bytes; the limit is "
                       f"{max_decoded_bytes} (server.max_body_bytes)")
    return out


def _snappy_declared_size(body: bytes) -> int | None:
    """The uncompressed length a snappy block announces in its varint preamble (checked before inflating)."""
    size = shift = 0
    for i, b in enumerate(body[:5]):
        size |= (b & 0x7F) << shift
        if b < 0x80:
            return size
        shift += 7
        if i == 4:
            break
    return None


def decode_remote_write(
    body: bytes, content_encoding: str | None = "snappy", *, max_decoded_bytes: int | None = None
) -> SeriesBatch:
    """Decode a remote_write 1.0 request. Raises BadInput (TooLarge past ``max_decoded_bytes``).

    The metric name is the ``__name__`` label (required); label names must be unique within a series;
    labels with an empty value are dropped, since Prometheus treats them as absent. Exemplars and
    metadata are ignored; a native histogram becomes ``<name>_count`` and ``<name>_sum`` series.
    """
    raw = _decompress(body, content_encoding, max_decoded_bytes)
    try:
        return _decode_fast(raw)
    except _Fallback:
        return _decode_slow(raw)
    except DecodeError as exc:
        raise BadInput(f"remote_write body is not a valid WriteRequest protobuf: {exc}") from exc


def _varint_at(blob: np.ndarray, p: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised varint at positions ``p``: (value, byte size). Up to ``limit`` bytes, else _Fallback."""
    b = blob[p].astype(np.int64)
    value = b & 0x7F
    size = np.ones_like(p)
    more = np.flatnonzero(b >= 0x80)
    for k in range(1, limit):
        if more.size == 0:
            return value, size
        bk = blob[p[more] + k].astype(np.int64)
        value[more] |= (bk & 0x7F) << (7 * k)
        size[more] += 1
        more = more[bk >= 0x80]
    if more.size:
        raise _Fallback
    return value, size


def _decode_fast(raw: bytes) -> SeriesBatch:
    series_raw = list(_RawRequest.FromString(raw).timeseries)
    n = len(series_raw)
    if n == 0:
        return SeriesBatch.empty()
    flat = _FlatRequest.FromString(raw).timeseries
    if len(flat.exemplars) or len(flat.histograms):
        raise _Fallback
    samples_raw = list(flat.samples)

    lens = np.fromiter(map(len, series_raw), np.int64, n)
    ends = np.cumsum(lens)
    starts = ends - lens
    joined = b"".join(series_raw)
    blob = np.frombuffer(joined + _PAD, np.uint8)

    # Label section: the leading run of field-1 (tag 0x0a) entries of every series.
    pos = starts.copy()
    active = np.flatnonzero(lens)
    while active.size:
        p = pos[active]
        is_label = blob[p] == 0x0A
        if not is_label.all():
            active = active[is_label]
            if not active.size:
                break
            p = p[is_label]
        length = blob[p + 1].astype(np.int64)
        if (length >= 0x80).any():
            length, size = _varint_at(blob, p + 1, 3)
            newp = p + 1 + size + length
        else:
            newp = p + 2 + length
        end_a = ends[active]
        if (newp > end_a).any():
            raise _Fallback  # truncated; the plain parse reports it
        pos[active] = newp
        active = active[newp < end_a]
    label_end = pos

    # What follows the labels must be exactly the request's samples, in order: compare byte counts.
    m = len(samples_raw)
    slens = np.fromiter(map(len, samples_raw), np.int64, m)
    if m and int(slens.max()) >= 128:
        raise _Fallback
    sample_cum = np.zeros(m + 1, np.int64)
    np.cumsum(slens + 2, out=sample_cum[1:])  # tag byte + one-byte length + payload
    section_cum = np.cumsum(ends - label_end)
    if int(section_cum[-1]) != int(sample_cum[-1]):
        raise _Fallback
    k = np.searchsorted(sample_cum, section_cum)
    if (k > m).any() or (sample_cum[np.minimum(k, m)] != section_cum).any():
        raise _Fallback
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = k

    ts, values = _decode_samples(samples_raw, slens)
    metrics, labels = _series_labels(joined, starts.tolist(), label_end.tolist())
    return SeriesBatch(metrics, labels, offsets, ts, values)


def _decode_samples(samples_raw: list[bytes], slens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised decode of Sample messages laid out as ``[0x09 double][0x10 varint]`` (either optional)."""
    m = slens.shape[0]
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    joined = b"".join(samples_raw)
    width = int(slens[0])
    if 10 < width <= 19 and (slens == width).all():
        # The usual request: every sample carries a value and a timestamp of the same varint size,
        # so the samples form a (m, width) matrix and need no gathers.
        rows = np.frombuffer(joined, np.uint8).reshape(m, width)
        tlen = width - 10
        cont = rows[:, 10:] >= 0x80
        if (rows[:, 0] == 0x09).all() and (rows[:, 9] == 0x10).all() and cont[:, :-1].all() \
                and not cont[:, -1].any():
            values = np.ascontiguousarray(rows[:, 1:9]).view("<f8").reshape(m).astype(np.float64)
            parts = (rows[:, 10:] & 0x7F).astype(np.uint64) << _SHIFTS10[:tlen]
            return parts.sum(axis=1, dtype=np.uint64).view(np.int64), values
    sblob = np.frombuffer(joined + _PAD, np.uint8)
    send = np.cumsum(slens)
    sstart = send - slens
    has_val = (slens > 0) & (sblob[sstart] == 0x09)
    vbytes = np.ascontiguousarray(sblob[(sstart + 1)[:, None] + _ARANGE8])
    values = np.where(has_val, vbytes.view("<f8")[:, 0], 0.0).astype(np.float64)
    if ((slens > 0) & ~has_val & (sblob[sstart] != 0x10)).any():
        raise _Fallback
    vpos = sstart + 9 * has_val
    rem = send - vpos
    has_ts = rem > 0
    if (has_ts & (sblob[vpos] != 0x10)).any() or (rem < 0).any():
        raise _Fallback
    vlen = np.where(has_ts, rem - 1, 0)
    if (has_ts & ((vlen < 1) | (vlen > 10))).any():
        raise _Fallback
    tbytes = sblob[(vpos + 1)[:, None] + _ARANGE10]
    inside = _ARANGE10[None, :] < vlen[:, None]
    cont = (tbytes & 0x80) != 0
    # Every varint byte but the last carries the continuation bit; otherwise the layout is not ours.
    if (cont[inside] != (_ARANGE10[None, :] < (vlen - 1)[:, None])[inside]).any():
        raise _Fallback
    parts = (tbytes & 0x7F).astype(np.uint64) << _SHIFTS10
    ts = np.where(inside, parts, np.uint64(0)).sum(axis=1, dtype=np.uint64).view(np.int64)
    return ts, values


def _series_labels(joined: bytes, starts: list[int], label_end: list[int]) -> tuple[list[str], list[dict[str, str]]]:
    keys = [joined[a:b] for a, b in zip(starts, label_end, strict=True)]
    hits = list(map(_label_cache.get, keys))
    if None in hits:
        for i, hit in enumerate(hits):
            if hit is None:
                hit = hits[i] = _labels_from_section(keys[i], i)
                with _cache_lock:
                    if len(_label_cache) >= LABEL_CACHE_MAX:
                        _label_cache.clear()
                    _label_cache[keys[i]] = hit
    metrics = [h[0] for h in hits]  # type: ignore[index]
    # The cached dicts are shared, not copied (a copy per series costs as much as the rest of decoding):
    # batch labels are read-only everywhere downstream; code that needs to add labels makes its own dict.
    labels = [h[1] for h in hits]  # type: ignore[index]
    return metrics, labels


def _labels_from_section(section: bytes, i: int) -> tuple[str, dict[str, str]]:
    try:
        parsed = types_pb2.TimeSeries.FromString(section).labels
    except DecodeError as exc:
        raise BadInput(f"remote_write series {i} has malformed labels: {exc}") from exc
    return _check_labels(parsed, i)


def _check_labels(parsed: Any, i: int) -> tuple[str, dict[str, str]]:
    """(metric, labels) from a series' Label messages: ``__name__`` required, names unique."""
    out = {lb.name: lb.value for lb in parsed}
    if len(out) != len(parsed):
        names = [lb.name for lb in parsed]
        dup = sorted({k for k in names if names.count(k) > 1})
        raise BadInput(f"remote_write series {i} has label {dup[0]!r} more than once ({_show(parsed)}); "
                       "label names must be unique")
    name = out.pop("__name__", "")
    if not name:
        raise BadInput(f"remote_write series {i} has no __name__ label ({_show(parsed)}); every series "
                       "needs a metric name")
    if "" in out.values():
        out = {k: v for k, v in out.items() if v}
    return name, out


def _show(parsed: Any) -> str:
    return ", ".join(f"{lb.name}={lb.value!r}" for lb in parsed) or "no labels"


def _decode_slow(raw: bytes) -> SeriesBatch:
    """Plain decode with the generated classes: handles every valid request, at Python speed."""
    try:
        req = remote_pb2.WriteRequest.FromString(raw)
    except DecodeError as exc:
        raise BadInput(f"remote_write body is not a valid WriteRequest protobuf: {exc}") from exc
    metrics: list[str] = []
    labels: list[dict[str, str]] = []
    counts: list[int] = []
    ts_parts: list[int] = []
    val_parts: list[float] = []

    def add(metric: str, lab: dict[str, str], ts: list[int], vals: list[float]) -> None:
        metrics.append(metric)
        labels.append(lab)
        counts.append(len(ts))
        ts_parts.extend(ts)
        val_parts.extend(vals)

    for i, series in enumerate(req.timeseries):
        name, lab = _check_labels(series.labels, i)
        if len(series.samples) or not len(series.histograms):
            add(name, lab, [s.timestamp for s in series.samples], [s.value for s in series.samples])
        if len(series.histograms):
            # Native histograms have no flat-series form; keep what every dashboard uses: count and sum.
            hs = sorted(series.histograms, key=lambda h: h.timestamp)
            hts = [h.timestamp for h in hs]
            cnt = [float(h.count_float) if h.WhichOneof("count") == "count_float" else float(h.count_int)
                   for h in hs]
            add(name + "_count", dict(lab), hts, cnt)
            add(name + "_sum", dict(lab), hts, [h.sum for h in hs])
    if not metrics:
        return SeriesBatch.empty()
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(np.asarray(counts, np.int64), out=offsets[1:])
    return SeriesBatch(metrics, labels, offsets, np.asarray(ts_parts, np.int64).reshape(-1),
                       np.asarray(val_parts, np.float64).reshape(-1))


# --------------------------------------------------------------------------------------------- encode


def encode_remote_write(batch: SeriesBatch) -> bytes:
    """Snappy-compressed WriteRequest for ``batch``, as a Prometheus client sends it (labels sorted)."""
    req = remote_pb2.WriteRequest()
    ts_all = batch.ts_ms.tolist()
    val_all = batch.values.tolist()
    offs = batch.offsets.tolist()
    Label = types_pb2.Label
    Sample = types_pb2.Sample
    for i, (metric, lab) in enumerate(zip(batch.metrics, batch.labels, strict=True)):
        series = req.timeseries.add()
        pairs = sorted({**lab, "__name__": metric}.items())
        series.labels.extend([Label(name=k, value=v) for k, v in pairs])
        a, b = offs[i], offs[i + 1]
        series.samples.extend([Sample(value=v, timestamp=t)
                               for t, v in zip(ts_all[a:b], val_all[a:b], strict=True)])
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
