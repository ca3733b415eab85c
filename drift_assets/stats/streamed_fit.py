"""Fitting a reference column: from its sorted values in memory, or exactly in bounded memory.

In memory (``fit_sorted_column``): the finite values are sorted once; the edges are read off the
sorted array and so are the reference's own counts and per-bin sums (``searchsorted`` of the edges
into the sorted values, then differences of positions and ``np.add.reduceat``): the reference is
never re-binned value by value as a window is.

Streamed (``StreamedColumn``, for references above ``fit_profile``'s ``max_in_memory_rows``): exact
order statistics in a few passes over the column, never holding it. Values are mapped to 64-bit
keys that sort like the floats (a radix select):

1. pass 1 counts rows, missing values and the sum, and a histogram of the keys' top 16 bits with
   each bucket's smallest and largest key;
2. each later pass looks only at the buckets that hold a wanted rank (the ~2,000 ranks of the 1,001
   sketch quantiles, plus probes that find every point mass): a bucket holding one distinct value
   answers at once (and gives that value's exact frequency), small buckets are collected (at most
   ``collect_budget`` values in all) and sorted, the others are split again by the next bits of the
   span between their smallest and largest key (at most ``child_budget`` sub-buckets in all);
3. a last pass counts the reference in the fitted sketch bins (the window kernel, batch by batch)
   and sums the squared deviations for the standard deviation.

Memory is one batch plus O(child_budget + collect_budget), whatever the rows. The edges, counts,
point masses and effective bins equal the in-memory fit's exactly (the same ``binning.py``
arithmetic on the same order statistics); the mean, standard deviation and per-bin sums are
accumulated batch by batch, so they agree with it to rounding (relative ~1e-15). A continuous
column takes 3-5 passes, a column of a few distinct values (counts, flags) 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.binning import (
    POINT_MASS_SHARE,
    CategoricalBinning,
    NumericalBinning,
    binning_from_edges,
    categorical_binning_from_counts,
    fit_numerical_edges,
    quantile_positions,
)
from drift_assets.stats.counts import CategoricalCounts, NumericalCounts, count_numerical
from drift_assets.stats.errors import ProfileError, TooManyCategoriesError
from drift_assets.stats.validation import missing_mask

_SIGN = np.uint64(1 << 63)
_TOP_SHIFT = np.uint64(48)
_TOP_BUCKETS = 1 << 16
_NO_KEY = np.iinfo(np.uint64).max

Chunks = Callable[[], Iterable[np.ndarray]]


# ---------------------------------------------------------------------- in memory
def counts_of_sorted(sorted_finite: np.ndarray, missing: int, binning: NumericalBinning) -> NumericalCounts:
    """The reference's counts and per-bin sums, read off its sorted finite values.

    Sketch bin ``i`` holds ``edges[i-1] <= v < edges[i]``, so its values are the run between the
    positions of consecutive edges in the sorted array (``searchsorted(..., side="left")``)."""
    n = sorted_finite.size
    bounds = np.concatenate(([0], np.searchsorted(sorted_finite, binning.sketch_edges, side="left"), [n]))
    counts = np.diff(bounds).astype(np.int64)
    sums = np.zeros(counts.size, dtype=np.float64)
    filled = counts > 0
    if filled.any():
        sums[filled] = np.add.reduceat(sorted_finite, bounds[:-1][filled])
    return NumericalCounts(counts, sums, int(missing))


def categorical_from_strings(
    strings: Iterable[pa.Array], *, max_categories: int, name: str
) -> tuple[CategoricalBinning, CategoricalCounts, int]:
    """Vocabulary and reference counts from one pass of value counts (batch by batch); the
    reference's counts are its value counts, so nothing is counted twice. Returns the row count."""
    frequency: dict[str, int] = {}
    missing = rows = 0
    for chunk in strings:
        if len(frequency) > max_categories:
            # Stop here: an identifier column must not be held whole just to say it is one (with
            # one batch, the vocabulary check below names the exact count).
            raise TooManyCategoriesError("reference", name, f"more than {max_categories}", max_categories)
        rows += len(chunk)
        missing += chunk.null_count
        counted = pc.value_counts(chunk.drop_null())
        for value, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True):
            frequency[value] = frequency.get(value, 0) + n
    values = list(frequency)
    binning = categorical_binning_from_counts(values, np.asarray([frequency[v] for v in values]), max_categories, name)
    counts = np.asarray([frequency[v] for v in binning.vocabulary] + [0], dtype=np.int64)
    return binning, CategoricalCounts(counts, missing, {}), rows


# ---------------------------------------------------------------------- keys
def float_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned keys that sort like the (finite) floats; -0.0 is keyed as 0.0."""
    keys = (values + 0.0).view(np.uint64)
    # Negative floats: every bit flipped (larger magnitudes sort first); others: the sign bit set.
    keys ^= (keys.view(np.int64) >> 63).view(np.uint64) | _SIGN
    return keys


def key_floats(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys & _SIGN, keys ^ _SIGN, ~keys)
    return bits.view(np.float64)


@dataclass
class _Layer:
    """Buckets of keys at one depth, in key order: count, smallest/largest key, values below."""

    count: np.ndarray
    low: np.ndarray
    high: np.ndarray
    below: np.ndarray = field(init=False)
    # Set when the next pass refines some buckets: first child (-1: not refined) and shift.
    child_base: np.ndarray | None = None
    shift: np.ndarray | None = None
    collect: np.ndarray | None = None
    n_children: int = 0

    def __post_init__(self) -> None:
        self.rank()

    def rank(self) -> None:
        self.below = np.cumsum(self.count) - self.count


def _empty_layer(size: int) -> _Layer:
    return _Layer(np.zeros(size, np.int64), np.full(size, _NO_KEY, np.uint64), np.zeros(size, np.uint64))


def _accumulate(layer: _Layer, slot: np.ndarray, keys: np.ndarray) -> None:
    layer.count += np.bincount(slot, minlength=layer.count.size)
    np.minimum.at(layer.low, slot, keys)
    np.maximum.at(layer.high, slot, keys)


class StreamedColumn:
    """Exact order statistics of one numerical column, from passes over its batches."""

    def __init__(
        self,
        chunks: Chunks,
        *,
        collect_budget: int = 1 << 20,
        child_budget: int = 1 << 17,
        leaf_size: int = 256,
    ) -> None:
        self._chunks = chunks
        self.collect_budget, self.child_budget, self.leaf_size = collect_budget, child_budget, leaf_size
        self.passes = 0
        self._known: dict[int, tuple[int, int, int]] = {}  # rank -> (key, frequency, values below)
        self._counted: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self.extra_edges: np.ndarray = np.empty(0)
        self._first_pass()

    # ------------------------------------------------------------ pass 1
    def _finite_chunks(self) -> Iterable[np.ndarray]:
        self.passes += 1
        for values in self._chunks():
            missing = missing_mask(values)
            yield values[~missing] if missing.any() else values

    def _first_pass(self) -> None:
        top = _empty_layer(_TOP_BUCKETS)
        self.rows = self.missing = 0
        total = 0.0
        for values in self._chunks():
            mask = missing_mask(values)
            self.rows += values.size
            self.missing += int(mask.sum())
            finite = values[~mask]
            total += float(finite.sum())
            keys = float_keys(finite)
            _accumulate(top, (keys >> _TOP_SHIFT).astype(np.intp), keys)
        top.rank()
        self.passes = 1
        self._top = top
        self.size = int(top.count.sum())
        self.mean = total / self.size if self.size else math.nan

    # ------------------------------------------------------------ OrderStatistics
    def values_at(self, ranks: np.ndarray) -> np.ndarray:
        ranks = np.asarray(ranks, dtype=np.int64)
        self.resolve(ranks)
        return key_floats(np.asarray([self._known[int(r)][0] for r in ranks], dtype=np.uint64))

    def heavy_values(self, share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        step = max(1, math.ceil(share * self.size))
        # A value holding >= share of the values fills >= step consecutive ranks: one is a probe.
        self.resolve(np.arange(0, self.size, step, dtype=np.int64))
        by_key = {key: (freq, below) for key, freq, below in self._known.values()}
        heavy = sorted(k for k, (freq, _) in by_key.items() if freq >= share * self.size)
        keys = np.asarray(heavy, dtype=np.uint64)
        frequency = np.asarray([by_key[k][0] for k in heavy], dtype=np.int64)
        below = np.asarray([by_key[k][1] for k in heavy], dtype=np.int64)
        populated = np.flatnonzero(self._top.count)
        single = self._top.low[populated[0]] == self._top.high[populated[-1]]
        return key_floats(keys), frequency, below, bool(single)

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        """One counting pass over ``edges`` and ``extra_edges`` together (kept for the reference's
        own counts, so the mass case needs no further pass)."""
        counted = np.unique(np.concatenate((edges, self.extra_edges)))
        self._counted = self._count_pass(counted)
        below = np.cumsum(self._counted[1])  # values below edge i: bins 0..i
        return below[np.searchsorted(counted, edges)]

    # ------------------------------------------------------------ rank resolution
    def resolve(self, ranks: np.ndarray) -> None:
        """Find the values at ``ranks`` (and their frequency and the count below them)."""
        todo = np.unique([int(r) for r in ranks if int(r) not in self._known]).astype(np.int64)
        if todo.size == 0:
            return
        if todo[0] < 0 or todo[-1] >= self.size:
            raise ProfileError(f"rank out of range 0..{self.size - 1}")
        layers = [self._top]
        self._top.child_base = self._top.shift = self._top.collect = None
        while todo.size:
            layer = layers[-1]
            slot = np.searchsorted(layer.below, todo, side="right") - 1
            single = layer.low[slot] == layer.high[slot]
            for r, s in zip(todo[single], slot[single], strict=True):
                self._known[int(r)] = (int(layer.low[s]), int(layer.count[s]), int(layer.below[s]))
            todo, slot = todo[~single], slot[~single]
            if todo.size == 0:
                break
            collect = self._plan(layer, np.unique(slot))
            child, collected = self._refine_pass(layers, collect)
            self._answer_collected(layer, collected, todo[collect[slot]], slot[collect[slot]])
            todo = todo[~collect[slot]]
            if child is not None:
                layers.append(child)

    def _plan(self, layer: _Layer, wanted: np.ndarray) -> np.ndarray:
        """Mark the wanted buckets to collect (smallest first, within the budget) or split."""
        by_size = wanted[np.argsort(layer.count[wanted], kind="stable")]
        fits = np.cumsum(layer.count[by_size]) <= self.collect_budget
        collect = np.zeros(layer.count.size, dtype=bool)
        collect[by_size[fits]] = True
        split = np.sort(by_size[~fits])
        layer.collect = collect
        layer.child_base = np.full(layer.count.size, -1, dtype=np.int64)
        layer.shift = np.zeros(layer.count.size, dtype=np.uint64)
        layer.n_children = 0
        if split.size:
            spans = [int(h) - int(lo) for h, lo in zip(layer.high[split], layer.low[split], strict=True)]
            bits = [
                max(1, min(16, span.bit_length(), math.ceil(math.log2(max(2, int(c) // self.leaf_size)))))
                for span, c in zip(spans, layer.count[split], strict=True)
            ]
            while sum(1 << b for b in bits) > self.child_budget and max(bits) > 1:
                bits = [max(1, b - 1) for b in bits]
            shifts = [max(0, span.bit_length() - b) for span, b in zip(spans, bits, strict=True)]
            sizes = np.asarray([(span >> s) + 1 for span, s in zip(spans, shifts, strict=True)], dtype=np.int64)
            layer.child_base[split] = np.cumsum(sizes) - sizes
            layer.shift[split] = np.asarray(shifts, dtype=np.uint64)
            layer.n_children = int(sizes.sum())
        return collect

    def _refine_pass(self, layers: list[_Layer], collect: np.ndarray) -> tuple[_Layer | None, np.ndarray]:
        last = layers[-1]
        assert last.child_base is not None and last.shift is not None
        splits = bool((last.child_base >= 0).any())
        child = _empty_layer(last.n_children) if splits else None
        collected: list[np.ndarray] = []
        for finite in self._finite_chunks():
            keys = float_keys(finite)
            slot = (keys >> _TOP_SHIFT).astype(np.intp)
            for layer in layers[:-1]:
                keys, slot = _descend(layer, keys, slot)
            picked = collect[slot]
            if picked.any():
                collected.append(keys[picked])
            if child is not None:
                deeper, deeper_slot = _descend(last, keys, slot)
                _accumulate(child, deeper_slot, deeper)
        if child is not None:
            child.rank()
            parents = np.flatnonzero(last.child_base >= 0)
            # Values below a child: below its parent plus its elder siblings' counts.
            offsets = np.repeat(last.below[parents] - child.below[last.child_base[parents]], _sizes(last, parents))
            child.below = child.below + offsets
        return child, np.sort(np.concatenate(collected)) if collected else np.empty(0, np.uint64)

    def _answer_collected(self, layer: _Layer, collected: np.ndarray, ranks: np.ndarray, slots: np.ndarray) -> None:
        """Ranks in collected buckets: the collected keys are sorted and each bucket is a run."""
        if ranks.size == 0 or layer.collect is None:
            return
        picked = np.flatnonzero(layer.collect)
        start = dict(zip(picked.tolist(), (np.cumsum(layer.count[picked]) - layer.count[picked]).tolist(), strict=True))
        if collected.size != int(layer.count[picked].sum()):
            raise ProfileError("the reference changed while it was being fitted (a bucket's count moved)")
        for r, s in zip(ranks.tolist(), slots.tolist(), strict=True):
            at = start[s] + r - int(layer.below[s])
            key = collected[at]
            first = int(np.searchsorted(collected, key, side="left"))
            last = int(np.searchsorted(collected, key, side="right"))
            self._known[r] = (int(key), last - first, int(layer.below[s]) + first - start[s])

    # ------------------------------------------------------------ counting
    def _count_pass(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Counts and sums in the bins of ``edges`` (as a window is counted), and the sum of squared
        deviations from the mean."""
        binning = NumericalBinning(edges[:0], edges, 0, 0.0, 0.0)
        counts = NumericalCounts.empty(binning)
        squares = 0.0
        for finite in self._finite_chunks():
            counts = counts + count_numerical(finite, binning)
            squares += float(np.square(finite - self.mean).sum())
        return edges, counts.sketch_counts, counts.sketch_sums, squares

    def reference_counts(self, sketch_edges: np.ndarray) -> tuple[NumericalCounts, float]:
        """The reference's counts in its sketch bins and its standard deviation."""
        counted = self._counted
        if counted is None or not np.isin(sketch_edges, counted[0]).all():
            counted = self._count_pass(sketch_edges)
        edges, counts, sums, squares = counted
        # Each counted bin [edges[j-1], edges[j]) lies inside one sketch bin (sketch edges are among them).
        target = np.searchsorted(sketch_edges, np.concatenate(([-np.inf], edges)), side="right")
        merged = np.zeros(sketch_edges.size + 1, dtype=np.int64)
        merged_sums = np.zeros(sketch_edges.size + 1, dtype=np.float64)
        np.add.at(merged, target, counts)
        np.add.at(merged_sums, target, sums)
        return NumericalCounts(merged, merged_sums, self.missing), math.sqrt(squares / self.size)


def _sizes(layer: _Layer, parents: np.ndarray) -> np.ndarray:
    assert layer.child_base is not None
    return np.diff(np.append(layer.child_base[parents], layer.n_children))


def _descend(layer: _Layer, keys: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys in the buckets ``layer`` splits, and their sub-bucket in the next layer."""
    assert layer.child_base is not None and layer.shift is not None
    base = layer.child_base[slot]
    keep = base >= 0
    if not keep.all():
        keys, slot, base = keys[keep], slot[keep], base[keep]
    return keys, base + ((keys - layer.low[slot]) >> layer.shift[slot]).astype(np.intp)


def fit_streamed_numerical(
    chunks: Chunks,
    *,
    psi_bins: int,
    sketch_resolution: int,
    column: str,
    point_mass_share: float = POINT_MASS_SHARE,
    **budgets: int,
) -> tuple[NumericalBinning, NumericalCounts, int, int]:
    """Binning and reference counts of a column read in batches; returns them with the row count
    and the number of passes made."""
    stats = StreamedColumn(chunks, **budgets)
    if stats.size == 0:
        raise ProfileError(f"reference: column {column!r} has no finite values to fit bins on")
    probs = np.arange(sketch_resolution + 1) / sketch_resolution
    lower, upper, fraction = quantile_positions(stats.size, probs)
    step = max(1, math.ceil(point_mass_share * stats.size))
    # Every rank the edges need (quantiles, extremes, point-mass probes) in the same passes.
    stats.resolve(np.concatenate((lower, upper, [0, stats.size - 1], np.arange(0, stats.size, step))))
    low, high = stats.values_at(lower), stats.values_at(upper)
    stats.extra_edges = np.append(
        low + fraction * (high - low), np.nextafter(stats.values_at(np.array([stats.size - 1]))[0], np.inf)
    )
    edges = fit_numerical_edges(
        stats, psi_bins=psi_bins, sketch_resolution=sketch_resolution, point_mass_share=point_mass_share
    )
    counts, std = stats.reference_counts(edges.sketch_edges)
    return binning_from_edges(edges, psi_bins, stats.mean, std), counts, stats.rows, stats.passes
