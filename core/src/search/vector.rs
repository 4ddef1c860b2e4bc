//! The vector-index trait, distances, and the exact (brute-force) index.
//!
//! The exact index is what core uses where no approximate index is plugged in (wasm32, tests),
//! and it is the ground truth for recall measurements of approximate ones.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How distance between vectors is measured. Lower is nearer for all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// `1 - cos(a, b)`. Vectors are normalised to unit length before they reach an index, so
    /// indexes compute `1 - a·b` (never below 0). A zero vector has no direction and is refused.
    Cosine,
    /// Euclidean distance `|a - b|`.
    L2,
    /// Negative inner product `-(a·b)`: maximum inner product search.
    Dot,
}

/// Dimension and metric of a vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorSpec {
    pub dimension: usize,
    pub metric: Metric,
}

impl Metric {
    /// The distance between `a` and `b` (for `Cosine`, both already unit length).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            // Rounding can take 1 - a·b of (nearly) equal unit vectors just below zero.
            Metric::Cosine => (1.0 - dot(a, b)).max(0.0),
            Metric::L2 => l2_squared(a, b).sqrt(),
            Metric::Dot => -dot(a, b),
        }
    }
}

/// Inner product with eight independent accumulators, so the loop vectorises; the summation
/// order is fixed, so results are bit-identical on every target.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Squared Euclidean distance, accumulated like [`dot`].
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length; `false` when it is the zero vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// One search result of a vector index: an id handed to [`VectorIndex::insert`] and its
/// distance from the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub id: u64,
    pub distance: f32,
}

/// A vector index, as core drives it. Core assigns the ids, checks dimensions, normalises
/// cosine vectors, and maps ids back to keys; an index only stores and searches.
///
/// Contract: `insert` of an id already present replaces its vector; `remove` of an absent id
/// does nothing; `search` returns at most `k` neighbours whose ids `accept` allows (all when
/// `None`), nearest first, ties by ascending id. Approximate indexes may miss true neighbours;
/// they must never return a removed id.
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    fn insert(&mut self, id: u64, vector: &[f32]);
    fn remove(&mut self, id: u64);
    fn search(
        &self,
        query: &[f32],
        k: usize,
        accept: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<Neighbor>;
    /// Vectors held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How hard an approximate index searches (HNSW's `ef`): recall against speed. Exact
    /// indexes have nothing to tune and ignore it.
    fn set_search_effort(&mut self, _effort: usize) {}
    /// Every vector held, for an index image; `None` when this index does not take part in
    /// images (it is then rebuilt at every open).
    fn dump(&self) -> Option<VectorDump> {
        None
    }
    /// Replaces the contents of this (empty) index with `dump`; `false`, changing nothing, when
    /// this index cannot load dumps or the dump does not fit it.
    fn load(&mut self, _dump: VectorDump) -> bool {
        false
    }
    /// After a [`VectorIndex::load`] that returned `true`: whether the index could not use its
    /// own part of the dump ([`VectorDump::extra`], e.g. an HNSW graph: absent in older images,
    /// or unusable) and rebuilt its structure from the dumped vectors instead. Core reports it
    /// in [`super::IndexOrigin::rebuilt_from_image_vectors`]. Indexes with no such part: `false`.
    fn rebuilt_on_load(&self) -> bool {
        false
    }
}

/// The vectors of an index, as index images hold them: `ids[i]`'s vector is
/// `data[i * dimension..(i + 1) * dimension]` (already normalised for cosine).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VectorDump {
    pub ids: Vec<u64>,
    pub data: Vec<f32>,
    /// The index's own part of the image, opaque to core (HNSW keeps its graph here so that a
    /// load does not rebuild it); empty when it has none. Core stores it after the vectors and
    /// hands it back unchanged, but only from an image whose checksum verified; an index must
    /// still treat it as untrusted (loads are also called directly) and, when it cannot use it,
    /// fall back to the vectors.
    pub extra: Vec<u8>,
}

impl VectorDump {
    /// Whether the dump is well formed for `dimension`: one vector per id, no id twice.
    pub fn fits(&self, dimension: usize) -> bool {
        let mut seen = hashbrown::HashSet::with_capacity(self.ids.len());
        self.ids.len().checked_mul(dimension) == Some(self.data.len())
            && self.ids.iter().all(|id| seen.insert(*id))
    }
}

/// Orders neighbours nearest first, ties by id: the order every index returns.
pub fn neighbor_order(a: &Neighbor, b: &Neighbor) -> Ordering {
    a.distance
        .total_cmp(&b.distance)
        .then_with(|| a.id.cmp(&b.id))
}

/// Brute force over a flat array: exact, deterministic, no dependencies.
#[derive(Debug)]
pub struct ExactVectorIndex {
    spec: VectorSpec,
    /// Vectors back to back, `dimension` floats each, in slot order.
    data: Vec<f32>,
    ids: Vec<u64>,
    slots: hashbrown::HashMap<u64, usize>,
}

impl ExactVectorIndex {
    pub fn new(spec: VectorSpec) -> ExactVectorIndex {
        ExactVectorIndex {
            spec,
            data: Vec::new(),
            ids: Vec::new(),
            slots: hashbrown::HashMap::new(),
        }
    }

    fn vector(&self, slot: usize) -> &[f32] {
        let d = self.spec.dimension;
        &self.data[slot * d..(slot + 1) * d]
    }
}

/// Max-heap entry: the worst of the best k so far sits on top.
struct Worst(Neighbor);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        neighbor_order(&self.0, &other.0)
    }
}

impl VectorIndex for ExactVectorIndex {
    fn insert(&mut self, id: u64, vector: &[f32]) {
        let d = self.spec.dimension;
        match self.slots.get(&id) {
            Some(&slot) => self.data[slot * d..(slot + 1) * d].copy_from_slice(vector),
            None => {
                self.slots.insert(id, self.ids.len());
                self.ids.push(id);
                self.data.extend_from_slice(vector);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        // Swap the last vector into the hole.
        let d = self.spec.dimension;
        let last = self.ids.len() - 1;
        if slot != last {
            self.data.copy_within(last * d..(last + 1) * d, slot * d);
            let moved = self.ids[last];
            self.ids[slot] = moved;
            self.slots.insert(moved, slot);
        }
        self.ids.pop();
        self.data.truncate(last * d);
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        accept: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<Neighbor> {
        if k == 0 {
            return Vec::new();
        }
        let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
        for (slot, &id) in self.ids.iter().enumerate() {
            if accept.is_some_and(|f| !f(id)) {
                continue;
            }
            let n = Neighbor {
                id,
                distance: self.spec.metric.distance(query, self.vector(slot)),
            };
            if heap.len() < k {
                heap.push(Worst(n));
            } else if heap
                .peek()
                .is_some_and(|w| neighbor_order(&n, &w.0) == Ordering::Less)
            {
                heap.pop();
                heap.push(Worst(n));
            }
        }
        let mut out: Vec<Neighbor> = heap.into_iter().map(|w| w.0).collect();
        out.sort_by(neighbor_order);
        out
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn dump(&self) -> Option<VectorDump> {
        Some(VectorDump {
            ids: self.ids.clone(),
            data: self.data.clone(),
            extra: Vec::new(),
        })
    }

    fn load(&mut self, dump: VectorDump) -> bool {
        if !self.ids.is_empty() || !dump.fits(self.spec.dimension) {
            return false;
        }
        self.slots = dump
            .ids
            .iter()
            .enumerate()
            .map(|(slot, id)| (*id, slot))
            .collect();
        self.ids = dump.ids;
        self.data = dump.data;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metric: Metric) -> VectorSpec {
        VectorSpec {
            dimension: 3,
            metric,
        }
    }

    #[test]
    fn distances_follow_their_definitions() {
        let (a, b) = ([1.0, 0.0, 0.0], [0.0, 3.0, 4.0]);
        assert_eq!(Metric::L2.distance(&a, &b), 26f32.sqrt());
        assert_eq!(Metric::Dot.distance(&b, &b), -25.0);
        assert_eq!(Metric::Cosine.distance(&a, &a), 0.0);
        // Long enough to use the eight accumulators and the tail.
        let x: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(dot(&x, &x), (0..19).map(|i| (i * i) as f32).sum::<f32>());
    }

    #[test]
    fn exact_search_returns_nearest_first_and_honours_replace_remove_and_filter() {
        let mut index = ExactVectorIndex::new(spec(Metric::L2));
        for id in 0..10u64 {
            index.insert(id, &[id as f32, 0.0, 0.0]);
        }
        index.insert(3, &[100.0, 0.0, 0.0]); // replaced: now far away
        index.remove(5);
        index.remove(42); // absent: nothing happens
        assert_eq!(index.len(), 9);
        let ids: Vec<u64> = index
            .search(&[4.2, 0.0, 0.0], 4, None)
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, vec![4, 6, 2, 7]);
        let even = |id: u64| id.is_multiple_of(2);
        let ids: Vec<u64> = index
            .search(&[4.2, 0.0, 0.0], 3, Some(&even))
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, vec![4, 6, 2]);
    }

    #[test]
    fn ties_are_broken_by_id() {
        let mut index = ExactVectorIndex::new(spec(Metric::Dot));
        for id in [7u64, 2, 9] {
            index.insert(id, &[1.0, 1.0, 1.0]);
        }
        let ids: Vec<u64> = index
            .search(&[1.0, 0.0, 0.0], 2, None)
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, vec![2, 7]);
    }

    #[test]
    fn zero_vectors_cannot_be_normalised() {
        assert!(!normalize(&mut [0.0, 0.0]));
        let mut v = [3.0, 4.0];
        assert!(normalize(&mut v));
        assert_eq!(v, [0.6, 0.8]);
    }
}
