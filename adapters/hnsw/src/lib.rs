//! statemesh-hnsw: an approximate vector index on hnsw_rs, behind core's [`VectorIndex`] trait.
//!
//! hnsw_rs has no delete or update. This adapter keeps a tombstone per removed or replaced
//! vector, hides tombstones from searches with hnsw_rs's `search_filter`, and rebuilds the graph
//! from the live vectors once tombstones pass [`HnswParams::rebuild_ratio`] of them. Native
//! only: hnsw_rs does not build for wasm32, where core's exact index serves instead.
//!
//! Limits: hnsw_rs needs distances that are never negative, so the `Dot` metric (negative inner
//! product) is refused ([`HnswIndex::new`] returns `None`; hosts fall back to the exact index).
//! A rebuild runs inside the write that triggers it (parallel, on rayon's pool). The adapter
//! keeps its own copy of every vector for rebuilds, beside the graph's.

use std::fmt;

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::{Hnsw, Neighbour};
use statemesh_core::search::{
    Metric, Neighbor, VectorDump, VectorIndex, VectorSpec, neighbor_order,
};

/// Graph and search parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Neighbours kept per node and layer (hnsw's M). Default 16.
    pub m: usize,
    /// Candidates explored while inserting. Default 200.
    pub ef_construction: usize,
    /// Candidates explored while searching (at least `k`). Default 128: recall@10 0.95 on 100k
    /// clustered 128-d vectors (docs/search.md).
    pub ef_search: usize,
    /// Rebuild once tombstones exceed this fraction of live vectors... Default 0.25.
    pub rebuild_ratio: f64,
    /// ...and this many. Default 1,024.
    pub rebuild_min: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 128,
            rebuild_ratio: 0.25,
            rebuild_min: 1024,
        }
    }
}

/// Core's distance, so approximate and exact indexes report the same numbers.
#[derive(Debug, Clone, Copy)]
pub struct CoreDistance(pub Metric);

impl Distance<f32> for CoreDistance {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        self.0.distance(a, b)
    }
}

const MAX_LAYERS: usize = 16;

/// An HNSW graph with tombstones. See the crate documentation.
pub struct HnswIndex {
    spec: VectorSpec,
    params: HnswParams,
    graph: Hnsw<'static, f32, CoreDistance>,
    /// By hnsw data id: the core id and vector, or `None` for a tombstone.
    slots: Vec<Option<(u64, Vec<f32>)>>,
    live: std::collections::HashMap<u64, usize>,
    tombstones: usize,
    rebuilds: u64,
}

impl fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HnswIndex")
            .field("spec", &self.spec)
            .field("params", &self.params)
            .field("live", &self.live.len())
            .field("tombstones", &self.tombstones)
            .finish()
    }
}

fn graph(
    spec: VectorSpec,
    params: &HnswParams,
    capacity: usize,
) -> Hnsw<'static, f32, CoreDistance> {
    let m = params.m.clamp(2, 255);
    Hnsw::new(
        m,
        capacity.max(1024),
        MAX_LAYERS,
        params.ef_construction.max(m),
        CoreDistance(spec.metric),
    )
}

impl HnswIndex {
    /// An empty index, or `None` for a metric hnsw_rs cannot take (`Dot`).
    pub fn new(spec: VectorSpec, params: HnswParams) -> Option<HnswIndex> {
        if !matches!(spec.metric, Metric::L2 | Metric::Cosine) {
            return None;
        }
        Some(HnswIndex {
            spec,
            params,
            graph: graph(spec, &params, 0),
            slots: Vec::new(),
            live: Default::default(),
            tombstones: 0,
            rebuilds: 0,
        })
    }

    /// Removed or replaced vectors still in the graph.
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// Rebuilds done so far.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// Sets the search breadth (recall against speed).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    fn bury(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot)
            && s.take().is_some()
        {
            self.tombstones += 1;
        }
    }

    fn maybe_rebuild(&mut self) {
        let threshold = (self.live.len() as f64 * self.params.rebuild_ratio)
            .max(self.params.rebuild_min as f64);
        if (self.tombstones as f64) > threshold {
            self.rebuild();
        }
    }

    /// A fresh graph of the live vectors, in id order.
    pub fn rebuild(&mut self) {
        let mut live: Vec<(u64, Vec<f32>)> = self.slots.drain(..).flatten().collect();
        live.sort_by_key(|(id, _)| *id);
        self.graph = graph(self.spec, &self.params, live.len());
        self.live = live
            .iter()
            .enumerate()
            .map(|(slot, (id, _))| (*id, slot))
            .collect();
        let batch: Vec<(&[f32], usize)> = live
            .iter()
            .enumerate()
            .map(|(slot, (_, v))| (v.as_slice(), slot))
            .collect();
        self.graph.parallel_insert_slice(&batch);
        self.slots = live.into_iter().map(Some).collect();
        self.tombstones = 0;
        self.rebuilds += 1;
    }

    fn to_neighbor(&self, n: &Neighbour) -> Option<Neighbor> {
        let (id, _) = self.slots.get(n.d_id)?.as_ref()?;
        Some(Neighbor {
            id: *id,
            distance: n.distance,
        })
    }
}

impl VectorIndex for HnswIndex {
    fn insert(&mut self, id: u64, vector: &[f32]) {
        if let Some(old) = self.live.remove(&id) {
            self.bury(old);
        }
        let slot = self.slots.len();
        self.graph.insert_slice((vector, slot));
        self.slots.push(Some((id, vector.to_vec())));
        self.live.insert(id, slot);
        self.maybe_rebuild();
    }

    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.live.remove(&id) {
            self.bury(slot);
            self.maybe_rebuild();
        }
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        accept: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<Neighbor> {
        let ef = self.params.ef_search.max(k);
        // Any filter costs hnsw_rs about half its speed, so it is used only when something
        // must be hidden: tombstones, or keys the caller rejects.
        let found = if self.tombstones == 0 && accept.is_none() {
            self.graph.search(query, k, ef)
        } else {
            let filter = |d_id: &usize| {
                self.slots
                    .get(*d_id)
                    .and_then(Option::as_ref)
                    .is_some_and(|(id, _)| accept.is_none_or(|f| f(*id)))
            };
            self.graph.search_filter(query, k, ef, Some(&filter))
        };
        let mut out: Vec<Neighbor> = found.iter().filter_map(|n| self.to_neighbor(n)).collect();
        out.sort_by(neighbor_order);
        out.truncate(k);
        out
    }

    fn len(&self) -> usize {
        self.live.len()
    }

    fn set_search_effort(&mut self, effort: usize) {
        self.set_ef_search(effort);
    }

    /// The live vectors, by id. The graph itself is not dumped: hnsw_rs writes and reloads
    /// graphs only through files (and reloads them borrowing from the loader), so an index
    /// image holds the vectors and a load rebuilds the graph from them (see docs/search.md).
    fn dump(&self) -> Option<VectorDump> {
        let mut live: Vec<&(u64, Vec<f32>)> = self.slots.iter().flatten().collect();
        live.sort_unstable_by_key(|(id, _)| *id);
        let mut dump = VectorDump {
            ids: Vec::with_capacity(live.len()),
            data: Vec::with_capacity(live.len() * self.spec.dimension),
        };
        for (id, v) in live {
            dump.ids.push(*id);
            dump.data.extend_from_slice(v);
        }
        Some(dump)
    }

    /// Takes the dumped vectors and builds the graph of them (in parallel, as a rebuild).
    fn load(&mut self, dump: VectorDump) -> bool {
        let d = self.spec.dimension;
        if !self.slots.is_empty() || !dump.fits(d) {
            return false;
        }
        self.slots = dump
            .ids
            .iter()
            .zip(dump.data.chunks_exact(d.max(1)))
            .map(|(id, v)| Some((*id, v.to_vec())))
            .collect();
        self.rebuild();
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use statemesh_core::search::ExactVectorIndex;

    fn spec() -> VectorSpec {
        VectorSpec {
            dimension: 8,
            metric: Metric::L2,
        }
    }

    /// Distinct for every `i` (the first component is `i`), scattered in the others.
    fn vector(i: u64) -> Vec<f32> {
        (0..8)
            .map(|d| match d {
                0 => i as f32,
                _ => ((i * (2 * d + 3) * 2_654_435_761) % 1009) as f32,
            })
            .collect()
    }

    #[test]
    fn dot_is_refused_and_cosine_and_l2_are_taken() {
        let dot = VectorSpec {
            dimension: 4,
            metric: Metric::Dot,
        };
        assert!(HnswIndex::new(dot, HnswParams::default()).is_none());
        assert!(HnswIndex::new(spec(), HnswParams::default()).is_some());
    }

    #[test]
    fn removed_and_replaced_vectors_never_come_back_and_rebuilds_keep_the_rest() {
        // A small graph: core's distance is unoptimised in debug builds.
        let params = HnswParams {
            m: 8,
            ef_construction: 32,
            rebuild_ratio: 0.0,
            rebuild_min: 500,
            ..HnswParams::default()
        };
        let mut index = HnswIndex::new(spec(), params).unwrap();
        for i in 0..1400 {
            index.insert(i, &vector(i));
        }
        for i in 0..1100 {
            index.remove(i * 2);
        }
        // Past 500 tombstones a rebuild ran.
        assert!(index.rebuilds() >= 1);
        assert_eq!(index.len(), 700);
        index.insert(1, &[1000.0; 8]);
        for i in (0..1400).step_by(37) {
            let hits = index.search(&vector(i), 10, None);
            assert!(hits.iter().all(|n| n.id % 2 == 1), "a removed id came back");
            if i % 2 == 1 && i != 1 {
                assert_eq!(hits[0].id, i);
            }
        }
        let above_2000 = |id: u64| id > 1300;
        let hits = index.search(&vector(5), 5, Some(&above_2000));
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|n| n.id > 1300 && n.id % 2 == 1));
    }

    #[test]
    fn a_dump_loads_into_an_index_that_answers_the_same() {
        let mut a = HnswIndex::new(spec(), HnswParams::default()).unwrap();
        for i in 0..300 {
            a.insert(i, &vector(i));
        }
        a.remove(7);
        a.insert(8, &vector(9999));
        let dump = a.dump().unwrap();
        assert_eq!(dump.ids.len(), 299);
        let mut b = HnswIndex::new(spec(), HnswParams::default()).unwrap();
        assert!(b.load(dump.clone()));
        assert!(!b.load(dump), "a non-empty index refuses a dump");
        assert_eq!(b.len(), 299);
        assert_eq!(b.tombstones(), 0);
        let mut bad = HnswIndex::new(spec(), HnswParams::default()).unwrap();
        assert!(!bad.load(VectorDump {
            ids: vec![1, 2],
            data: vec![0.0; 8]
        }));
        for q in [vector(3), vector(9999), vector(123_456)] {
            assert_eq!(a.search(&q, 5, None), b.search(&q, 5, None));
        }
        assert!(b.search(&vector(7), 3, None).iter().all(|n| n.id != 7));
    }

    #[test]
    fn agrees_with_the_exact_index_on_small_data() {
        let mut hnsw = HnswIndex::new(spec(), HnswParams::default()).unwrap();
        let mut exact = ExactVectorIndex::new(spec());
        for i in 0..500 {
            hnsw.insert(i, &vector(i));
            exact.insert(i, &vector(i));
        }
        let q = vector(12345);
        let a = hnsw.search(&q, 5, None);
        let b = exact.search(&q, 5, None);
        assert_eq!(a, b);
    }
}
