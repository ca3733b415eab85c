"""Bin index of window values: ``np.searchsorted(edges, values, side="right")``, faster, same result.

A window value is binned into ~1,000 sorted sketch edges. ``searchsorted`` does a binary search per
value (~10 data-dependent branches); here a coarse lookup table over the edges gives each value a
first guess, a few vectorised steps move it up past the edges at or below the value, and a check
(``edges[i - 1] <= x < edges[i]``) confirms every result. Values the check rejects (NaN, +inf, a
bucket holding too many edges, a rounding slip at a bucket boundary) are re-binned with
``searchsorted`` itself, so the output is ``searchsorted``'s whatever the guess: the guess only
decides the speed. A property test compares the two on ties, ±inf, NaN, -0.0, duplicate edges
and heavy tails.

The table is one of two layouts, whichever leaves fewer values to the fallback (estimated from
the edges: sketch edges are reference quantiles, so edges per bucket ~ reference mass per bucket):

- ``linear``: buckets of equal width between two edges (normal-like columns);
- ``float_bits``: buckets of equal width in the float's bit pattern, i.e. roughly logarithmic (heavy
  tails: amounts spread over many orders of magnitude).

When neither leaves most values to the table (fewer than ``MIN_EDGES`` edges, or edges that are not
finite and sorted), ``searchsorted`` is used directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

# Buckets per edge in the lookup table (an int32 table of 8 x 1,002 entries: 32 KB, in L2).
BUCKETS_PER_EDGE = 8
# Upward steps after the guess: a value whose bucket holds more edges than this goes to the fallback.
STEPS = 2
# Below this many edges a binary search is a handful of branches: not worth a table.
MIN_EDGES = 64
# A layout is used only if the fallback is estimated to take at most this share of the values.
MAX_FALLBACK_SHARE = 0.25
_CACHE_SIZE = 512
_SIGN_FLIP = np.int64(0x7FFFFFFFFFFFFFFF)


def _float_keys(values: np.ndarray) -> np.ndarray:
    """Integers ordered like the floats: the bit pattern, negatives' magnitude bits flipped."""
    bits = values.view(np.int64)
    return bits ^ ((bits >> 63) & _SIGN_FLIP)


@dataclass(frozen=True)
class _Table:
    layout: str  # "linear" | "float_bits"
    origin: float | int
    scale: float | int  # linear: buckets per unit; float_bits: right shift
    n_buckets: int
    guess: np.ndarray  # first guess per bucket; bucket 0 = below the table, last = above it
    fallback_share: float


class EdgeIndex:
    """``index(values)`` == ``np.searchsorted(edges, values, side="right")`` for float64 values."""

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = np.ascontiguousarray(edges, dtype=np.float64)
        self.upper = np.append(self.edges, np.inf)  # upper[i]: the edge closing bin i
        # Stepping compares with NaN past the last edge: never true, so an index never passes len(edges).
        self.step = np.append(self.edges, np.nan)
        self.lower = np.concatenate(([-np.inf], self.edges))  # lower[i]: the edge opening bin i
        self.table = self._best_table()

    @property
    def layout(self) -> str:
        return self.table.layout if self.table is not None else "searchsorted"

    def _best_table(self) -> _Table | None:
        edges = self.edges
        if edges.size < MIN_EDGES or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) < 0):
            return None
        candidates = [t for t in (self._linear(), *self._float_bits()) if t is not None]
        best = min(candidates, key=lambda t: t.fallback_share, default=None)
        return best if best is not None and best.fallback_share <= MAX_FALLBACK_SHARE else None

    def _finish(self, layout: str, origin, scale, n_buckets: int, bounds: np.ndarray, below: float) -> _Table:
        """Guess per bucket from its lower bound; the fallback share from the edges per bucket."""
        starts = np.searchsorted(self.edges, bounds, side="right")
        guess = np.concatenate(([0], starts[:-1], [starts[-1]])).astype(np.intp)
        width = np.diff(starts)
        share = (width[width > STEPS].sum() + below) / self.edges.size
        return _Table(layout, origin, scale, n_buckets, guess, float(share))

    def _linear(self) -> _Table | None:
        lo, hi = float(self.edges[0]), float(self.edges[-1])
        n = BUCKETS_PER_EDGE * self.edges.size
        scale = n / (hi - lo)
        if not np.isfinite(scale) or scale <= 0:
            return None
        bounds = lo + np.arange(n + 1) / scale
        return self._finish("linear", lo, scale, n, bounds, 0.0)

    def _float_bits(self) -> list[_Table]:
        """Bit-pattern tables starting at the first, second or third edge (a point mass at 0 puts
        5e-324 right after 0: starting there would spend the table on subnormals)."""
        tables = []
        keys = _float_keys(self.edges)
        n_max = BUCKETS_PER_EDGE * self.edges.size
        for start in range(3):
            span = int(keys[-1]) - int(keys[start])
            if span <= 0 or span >= 1 << 62:  # int64 arithmetic below must not overflow
                continue
            shift = max(0, (span // n_max).bit_length())
            n = (span >> shift) + 1
            offsets = np.minimum(np.arange(n + 1, dtype=np.int64) << shift, span)
            bounds = int(keys[start]) + offsets
            as_floats = (bounds ^ ((bounds >> 63) & _SIGN_FLIP)).view(np.float64)  # the key map is its own inverse
            tables.append(self._finish("float_bits", int(keys[start]), shift, n, as_floats, 0.0))
        return tables

    def _bucket(self, values: np.ndarray) -> np.ndarray:
        t = self.table
        assert t is not None
        if t.layout == "linear":
            with np.errstate(over="ignore", invalid="ignore"):  # huge or non-finite values: bucket clipped
                b = (values - t.origin) * t.scale
            b += 1.0
            np.fmax(b, 0.0, out=b)  # fmax/fmin (not clip) turn NaN into bucket 0; the check rejects it
            np.fmin(b, t.n_buckets + 1, out=b)
            return b.astype(np.intp)
        k = _float_keys(values) - np.int64(t.origin)  # far values may wrap around: the check catches it
        k >>= np.int64(t.scale)
        k += 1
        np.clip(k, 0, t.n_buckets + 1, out=k)  # keys below the origin: bucket 0
        return k.astype(np.intp, copy=False)

    def index(self, values: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(values, dtype=np.float64)
        if self.table is None or values.size == 0:
            return np.searchsorted(self.edges, values, side="right")
        idx = self.table.guess[self._bucket(values)]
        for _ in range(STEPS):
            idx += self.step[idx] <= values
        wrong = ~((self.lower[idx] <= values) & (values < self.upper[idx]))
        if wrong.any():
            where = np.flatnonzero(wrong)
            idx[where] = np.searchsorted(self.edges, values[where], side="right")
        return idx


_indexes: OrderedDict[bytes, EdgeIndex] = OrderedDict()
_indexes_lock = threading.Lock()  # columns are binned on a thread pool


def edge_index(edges: np.ndarray) -> EdgeIndex:
    """The ``EdgeIndex`` of these edges, built once per distinct edge array (LRU of 512)."""
    key = np.ascontiguousarray(edges, dtype=np.float64).tobytes()
    with _indexes_lock:
        found = _indexes.get(key)
        if found is not None:
            _indexes.move_to_end(key)
            return found
    built = EdgeIndex(edges)
    with _indexes_lock:
        _indexes[key] = built
        while len(_indexes) > _CACHE_SIZE:
            _indexes.popitem(last=False)
    return built


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, values, side="right")``, through a cached lookup table."""
    return edge_index(edges).index(values)
