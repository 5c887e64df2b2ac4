"""TFRecord framing, CRC32C checking and the common scalar event, vectorised with numpy over a buffer.

A Python loop over 200k records (unpack a header, two crc32c calls, `Event.FromString`, walking upb
wrappers) costs several microseconds per record; here the work per record is a few numpy element ops:

- framing: record starts are found by following the length fields from a known boundary. Where the
  record sizes repeat (one tag: all alike; N tags logged in turn: a period of N), the next starts are
  predicted from that period and checked all at once; only checked starts are accepted (each start is
  the previous start + 16 + its length, read from the file), so a wrong guess costs time, never results.
- CRC32C: table-driven, one byte position at a time across all records (long records: the C crc32c).
- decoding: a record is "simple" when its bytes are exactly the canonical serialisation of
  `Event{wall_time, step, summary{value{tag, simple_value}}}` (what SummaryWriter.add_scalar writes);
  those are decoded from fixed offsets. Every other record is left to the caller's protobuf path.
"""
from __future__ import annotations

import numpy as np

_MASK_DELTA = 0xA282EAD8
CRC_IN_C = 1024  # records longer than this get the C crc32c, one call each
_SPEC_MAX = 1 << 16


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The byte table of reflected CRC32C and two 16-bit tables for four bytes per step (slicing-by-4
    with the byte tables paired: 2 x 256 KiB, cache-resident)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    slices = [table]
    for _ in range(3):
        prev = slices[-1]
        slices.append((prev >> np.uint32(8)) ^ table[prev & np.uint32(0xFF)])
    x = np.arange(1 << 16, dtype=np.uint32)
    low = slices[3][x & np.uint32(0xFF)] ^ slices[2][x >> np.uint32(8)]
    high = slices[1][x & np.uint32(0xFF)] ^ slices[0][x >> np.uint32(8)]
    return table, low, high


_TABLE, _LOW16, _HIGH16 = _tables()


def unaligned(data, width: int) -> np.ndarray:
    """A zero-copy view whose element p is the little-endian `width`-byte unsigned integer at byte p."""
    from numpy.lib.stride_tricks import as_strided

    count = max(len(data) - width + 1, 0)
    base = np.frombuffer(data, dtype=f"<u{width}", count=len(data) // width)
    if count == 0:
        return np.zeros(0, dtype=f"<u{width}")
    return as_strided(base, shape=(count,), strides=(1,), writeable=False)


def masked(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masked CRC of raw crc32c values (uint32 arithmetic wraps as the format wants)."""
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)


_KEEP = np.array([0xFFFFFFFF, 0xFFFFFF00, 0xFFFF0000, 0xFF000000], dtype=np.uint32)
_ZERO_CRCS: list[np.ndarray] = []


def _zero_crcs() -> np.ndarray:
    """crc32c of n zero bytes for n = 0..CRC_IN_C: what the initial 0xFFFFFFFF contributes."""
    if not _ZERO_CRCS:
        crcs, state = [0], 0xFFFFFFFF
        for _ in range(CRC_IN_C):
            state = int(_TABLE[state & 0xFF]) ^ (state >> 8)
            crcs.append(state ^ 0xFFFFFFFF)
        _ZERO_CRCS.append(np.array(crcs, dtype=np.uint32))
    return _ZERO_CRCS[0]


def crc32c_spans(data, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """crc32c of data[s:s+n] for every (s, n), all records at once, four bytes per step.

    CRC is linear: crc(M) = R(0, M) ^ crc(zeros of len(M)), with R the raw register update from 0, and
    leading zero bytes leave R(0, .) unchanged. So each record is read as whole words from `pad` bytes
    before its start, the bytes before it masked to zero; records with more words first, so those still
    active are a prefix. Records over CRC_IN_C bytes (or starting too near 0) use the C function."""
    out = np.empty(starts.size, dtype=np.uint32)
    pad = -lengths % 4
    slow = (lengths > CRC_IN_C) | (starts < pad)
    for k in np.flatnonzero(slow).tolist():
        import crc32c  # only here: importing it costs more than a file of small records takes

        out[k] = crc32c.crc32c(memoryview(data)[starts[k]:starts[k] + lengths[k]])
    rows = np.flatnonzero(~slow)
    count = (lengths[rows] + pad[rows]) // 4
    if rows.size and count.min() != count.max():
        order = np.argsort(-count.astype(np.int16), kind="stable")  # radix sort: <= 256 words
        rows, count = rows[order], count[order]
    begin = starts[rows] - pad[rows]
    state = np.zeros(rows.size, dtype=np.uint32)
    if rows.size and count[0] > 0:
        words = unaligned(data, 4)
        active = np.searchsorted(-count, -np.arange(1, int(count[0]) + 1), side="right")
        for j, n in enumerate(active.tolist()):  # records with at least j + 1 words
            c = state[:n] ^ words[begin[:n] + 4 * j]
            if j == 0:
                c &= _KEEP[pad[rows[:n]]]
            state[:n] = _LOW16[c & np.uint32(0xFFFF)] ^ _HIGH16[c >> np.uint32(16)]
    out[rows] = state ^ _zero_crcs()[lengths[rows]]
    return out


def _period(sizes: list[int]) -> int | None:
    """The shortest period (up to 64) with which the last record sizes repeat, seen twice."""
    for t in range(1, min(64, len(sizes) // 2) + 1):
        if sizes[-t:] == sizes[-2 * t:-t]:
            return t
    return None


def _speculate(u64: np.ndarray, pos: int, size: int, pattern: list[int], count: int):
    """Predict `count` records from `pos` repeating `pattern` (their sizes) and keep the prefix whose
    length fields confirm it. Returns (starts, lengths, next boundary)."""
    sizes = np.asarray(pattern, dtype=np.int64)[np.arange(count) % len(pattern)]
    q = pos + np.concatenate(([0], np.cumsum(sizes)))
    q = q[:int(np.searchsorted(q, size - 12, side="right"))]  # starts whose 12-byte header is there
    if q.size < 2:
        return q[:0], q[:0], pos
    lengths = u64[q]
    ok = lengths[:-1] == (np.diff(q) - 16).astype(np.uint64)
    keep = int(np.argmin(ok)) if not ok.all() else ok.size
    return q[:keep], lengths[:keep].astype(np.int64), int(q[keep])


def frame(data: bytes, pos: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(starts, data lengths) of the whole records from `pos` (a record boundary) that end within
    `size`, following the length fields only (no CRC here), and the boundary where framing stopped."""
    import struct

    length_at = struct.Struct("<Q").unpack_from
    u64 = unaligned(data, 8)
    parts_s, parts_l = [], []
    scalar_s, scalar_l, sizes = [], [], []
    count, wait, backoff = 64, 2, 1  # records to predict; scalar steps until the next try
    while size - pos >= 12:
        length = length_at(data, pos)[0]
        if pos + 16 + length > size:
            break
        scalar_s.append(pos)
        scalar_l.append(length)
        sizes.append(16 + length)
        pos += 16 + length
        wait -= 1
        if wait > 0:
            continue
        period = _period(sizes[-128:])
        accepted = 0
        if period is not None:
            starts, lengths, pos = _speculate(u64, pos, size, sizes[-period:], count)
            accepted = starts.size
            if accepted:
                parts_s += [np.asarray(scalar_s, dtype=np.int64), starts]
                parts_l += [np.asarray(scalar_l, dtype=np.int64), lengths]
                scalar_s, scalar_l = [], []
                sizes = sizes[-period:] * 2
        count = min(count * 4, _SPEC_MAX) if accepted >= count else max(64, 2 * accepted)
        backoff = 1 if accepted else min(2 * backoff, 256)
        wait = backoff
    parts_s.append(np.asarray(scalar_s, dtype=np.int64))
    parts_l.append(np.asarray(scalar_l, dtype=np.int64))
    return np.concatenate(parts_s), np.concatenate(parts_l), pos


_HIGH_BITS = np.uint64(0x8080808080808080)


def _varints(data, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values as int64, byte lengths; 0 where no varint ends within 8 bytes) at positions `at`: the 8
    bytes there as one uint64, the first byte without its high bit found by bit tricks."""
    word = unaligned(data, 8)[np.minimum(at, max(len(data) - 8, 0))]
    ends = ~word & _HIGH_BITS
    lowest = ends & (~ends + np.uint64(1))  # 2 ** (8k + 7) for a varint of k + 1 bytes, 0 for none
    length = np.where(lowest > 0, (np.log2(np.maximum(lowest, 1).astype(np.float64)).astype(np.int64) - 7) // 8 + 1, 0)
    word &= (lowest << np.uint64(1)) - np.uint64(1)  # its own bytes only (wraps to all for 8 bytes)
    value = word & np.uint64(0x7F)
    for k in range(1, int(length.max(initial=0))):
        value |= (word >> np.uint64(k)) & np.uint64(0x7F << (7 * k))
    return value.view(np.int64), length


def simple_scalars(data, starts: np.ndarray, ends: np.ndarray):
    """Decode the records data[starts[i]:ends[i]] that are exactly a canonical
    `Event{1: wall_time, 2: step (absent when 0), 5: Summary{1: Value{1: tag, 2: simple_value}}}` with a
    tag of 1..127 UTF-8 bytes. Returns (rows: indices of those records, tags: list[str], tag_of: index
    into tags per row, steps int64, values float64 (from float32), walls float64); the other records
    are the caller's to parse."""
    u8 = np.frombuffer(data, dtype=np.uint8)
    u64 = unaligned(data, 8)
    last = u8.size - 1
    ok = (u8[np.minimum(starts, last)] == 0x09) & (ends - starts >= 20)
    step_tag = u8[np.minimum(starts + 9, last)] == 0x10
    steps, step_len = _varints(data, starts + 10)
    ok &= ~step_tag | (step_len > 0)
    q = np.where(step_tag, starts + 10 + step_len, starts + 9)  # the summary's key byte
    # the six bytes there: 2A L1 0A L2 0A L3 with L3 the tag's length, L2 = L3 + 7, L1 = L3 + 9 (one byte each)
    word = u64[np.minimum(q, u64.size - 1)] & np.uint64(0xFFFFFFFFFFFF)
    tag_len = (word >> np.uint64(40)).astype(np.int64)
    head = (0x0A000A002A + ((tag_len + 9) << 8) + ((tag_len + 7) << 24) + (tag_len << 40)).astype(np.uint64)
    ok &= (word == head) & (tag_len > 0) & (tag_len + 9 < 0x80)
    ok &= (u8[np.minimum(q + 6 + tag_len, last)] == 0x15) & (q + 11 + tag_len == ends)
    rows = np.flatnonzero(ok)
    q, tag_len, first = q[rows], tag_len[rows], starts[rows]
    walls = unaligned(data, 8)[first + 1].view("<f8").astype(np.float64)
    values = unaligned(data, 4)[q + 7 + tag_len].view("<f4").astype(np.float64)
    steps = np.where(step_tag[rows], steps[rows], 0)
    tags, tag_of, keep = _tags(data, q + 6, tag_len)
    return rows[keep], tags, tag_of[keep], steps[keep], values[keep], walls[keep]


def version_records(data, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Indices of the records that are exactly `Event{1: wall_time, 3: file_version}`, optionally followed
    by `10: SourceMetadata{1: writer}` (torch's writer adds it), with UTF-8 strings of < 128 bytes: the
    first record of every file, which holds no scalar. Checked in Python: there is one per file."""
    u8 = np.frombuffer(data, dtype=np.uint8)
    last = u8.size - 1
    rows = np.flatnonzero((u8[np.minimum(starts, last)] == 0x09) & (u8[np.minimum(starts + 9, last)] == 0x1A)
                          & (ends - starts >= 11))
    return np.asarray([k for k in rows.tolist() if _is_version(bytes(data[int(starts[k]) + 10:int(ends[k])]))],
                      dtype=np.int64)


def _is_version(rest: bytes) -> bool:
    """`rest` (after the file_version key) is `len string [0x52 len 0x0A len string]`, canonical."""
    size = rest[0]
    strings = [rest[1:1 + size]]
    tail = rest[1 + size:]
    if size >= 0x80 or len(strings[0]) != size:
        return False
    if tail:
        if len(tail) < 4 or tail[0] != 0x52 or tail[2] != 0x0A or tail[1] >= 0x80 or tail[3] != tail[1] - 2 \
                or len(tail) != 2 + tail[1]:
            return False
        strings.append(tail[4:])
    try:
        for text in strings:
            text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _tags(data, begin: np.ndarray, length: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(distinct tags, index of each row's tag, rows whose tag is valid UTF-8), by exact comparison of the
    tag bytes (as zero-padded uint64 words), per tag length: the commonest tag is peeled off first,
    and np.unique takes over if a file has many tags."""
    tags: list[str] = []
    tag_of = np.full(begin.size, -1, dtype=np.int64)
    u64 = unaligned(data, 8)
    for size in np.unique(length).tolist():
        rows = np.flatnonzero(length == size)
        words = np.empty((rows.size, -(-size // 8)), dtype=np.uint64)
        for c in range(words.shape[1]):  # a tag is followed by >= 5 bytes of its record and 4 of CRC
            words[:, c] = u64[np.minimum(begin[rows] + 8 * c, u64.size - 1)]
        if size % 8:
            words[:, -1] &= np.uint64((1 << (8 * (size % 8))) - 1)
        left = np.arange(rows.size)
        for _ in range(16):
            if not left.size:
                break
            same = (words[left] == words[left[0]]).all(axis=1)
            _name(tags, tag_of, rows[left[same]], words[left[0]].tobytes()[:size])
            left = left[~same]
        if left.size:
            names, first, inverse = np.unique(words[left], axis=0, return_index=True, return_inverse=True)
            for k in range(names.shape[0]):
                _name(tags, tag_of, rows[left[inverse.ravel() == k]], words[left[first[k]]].tobytes()[:size])
    return tags, tag_of, tag_of >= 0


def _name(tags: list[str], tag_of: np.ndarray, rows: np.ndarray, raw: bytes) -> None:
    try:
        tags.append(raw.decode("utf-8"))
    except UnicodeDecodeError:  # protobuf refuses such a string: left to the caller's path
        return
    tag_of[rows] = len(tags) - 1
