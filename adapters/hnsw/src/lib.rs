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
//!
//! Index images carry the graph itself (see [`image`]): [`VectorIndex::load`] reloads it with
//! hnsw_rs's `HnswIo` instead of rebuilding, and falls back to a rebuild from the vectors when
//! the image holds no graph (older images) or a graph it cannot use; [`HnswIndex::last_load`]
//! tells which happened. Each graph reload leaks one small `HnswIo` (see [`image`]).

use std::fmt;

pub mod image;

pub use image::{GRAPH_FORMAT_V1, GraphImageError};

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

/// How the graph of the last [`VectorIndex::load`] came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphLoad {
    /// The graph was reloaded from the image: nothing was rebuilt.
    Loaded,
    /// The graph was rebuilt from the image's vectors, for this reason.
    Rebuilt(GraphImageError),
}

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
    last_load: Option<GraphLoad>,
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

/// hnsw's M and ef_construction as graphs are built with `params`.
fn construction(params: &HnswParams) -> (usize, usize) {
    let m = params.m.clamp(2, 255);
    (m, params.ef_construction.max(m))
}

fn graph(
    spec: VectorSpec,
    params: &HnswParams,
    capacity: usize,
) -> Hnsw<'static, f32, CoreDistance> {
    let (m, ef_construction) = construction(params);
    Hnsw::new(
        m,
        capacity.max(1024),
        MAX_LAYERS,
        ef_construction,
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
            last_load: None,
        })
    }

    /// How the last [`VectorIndex::load`] got its graph (`None` before any load).
    pub fn last_load(&self) -> Option<&GraphLoad> {
        self.last_load.as_ref()
    }

    /// Loads the graph in `dump.extra`, or says why it cannot be used.
    fn load_graph(&mut self, dump: &VectorDump) -> Result<(), GraphImageError> {
        let (m, ef_construction) = construction(&self.params);
        let expect = image::Expect {
            dimension: self.spec.dimension,
            m,
            ef_construction,
        };
        let loaded = image::load(dump, CoreDistance(self.spec.metric), &expect)?;
        let d = self.spec.dimension;
        let vectors: std::collections::HashMap<u64, &[f32]> = dump
            .ids
            .iter()
            .copied()
            .zip(dump.data.chunks_exact(d.max(1)))
            .collect();
        let mut slots = Vec::with_capacity(loaded.slots.len());
        let mut live = std::collections::HashMap::with_capacity(dump.ids.len());
        for (slot, id) in loaded.slots.iter().enumerate() {
            slots.push(match id {
                None => None,
                Some(id) => {
                    // `image::load` checked that every live slot's id has a vector.
                    let v = vectors
                        .get(id)
                        .ok_or_else(|| GraphImageError::Mismatch("a vector is missing".into()))?;
                    live.insert(*id, slot);
                    Some((*id, v.to_vec()))
                }
            });
        }
        self.tombstones = slots.iter().filter(|s| s.is_none()).count();
        self.graph = loaded.graph;
        self.slots = slots;
        self.live = live;
        Ok(())
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
    /// Whether the last load rebuilt the graph from the vectors (see [`HnswIndex::last_load`]).
    fn rebuilt_on_load(&self) -> bool {
        matches!(self.last_load, Some(GraphLoad::Rebuilt(_)))
    }

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

    /// The live vectors, by id, and the graph with the adapter's slots (tombstones included) in
    /// [`VectorDump::extra`] (see [`image`]). When hnsw_rs cannot write the graph (or the index
    /// is empty) the dump holds the vectors only, and a load rebuilds.
    fn dump(&self) -> Option<VectorDump> {
        let mut live: Vec<&(u64, Vec<f32>)> = self.slots.iter().flatten().collect();
        live.sort_unstable_by_key(|(id, _)| *id);
        let mut dump = VectorDump {
            ids: Vec::with_capacity(live.len()),
            data: Vec::with_capacity(live.len() * self.spec.dimension),
            extra: Vec::new(),
        };
        for (id, v) in live {
            dump.ids.push(*id);
            dump.data.extend_from_slice(v);
        }
        if !self.slots.is_empty() {
            let slots: Vec<Option<u64>> = self
                .slots
                .iter()
                .map(|s| s.as_ref().map(|(id, _)| *id))
                .collect();
            dump.extra = image::dump(&self.graph, &slots).unwrap_or_default();
        }
        Some(dump)
    }

    /// Reloads the dumped graph; when there is none or it cannot be used, builds the graph of
    /// the dumped vectors (in parallel, as a rebuild). See [`HnswIndex::last_load`].
    fn load(&mut self, dump: VectorDump) -> bool {
        let d = self.spec.dimension;
        if !self.slots.is_empty() || !dump.fits(d) {
            return false;
        }
        match self.load_graph(&dump) {
            Ok(()) => self.last_load = Some(GraphLoad::Loaded),
            Err(why) => {
                self.graph = graph(self.spec, &self.params, 0);
                self.live.clear();
                self.tombstones = 0;
                self.slots = dump
                    .ids
                    .iter()
                    .zip(dump.data.chunks_exact(d.max(1)))
                    .map(|(id, v)| Some((*id, v.to_vec())))
                    .collect();
                self.rebuild();
                self.last_load = Some(GraphLoad::Rebuilt(why));
            }
        }
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
        assert_eq!(b.last_load(), Some(&GraphLoad::Loaded));
        assert!(!b.rebuilt_on_load(), "what core reports in IndexOrigin");
        // The graph came back with its tombstones (7, and 8's first vector).
        assert_eq!(b.tombstones(), 2);
        let mut bad = HnswIndex::new(spec(), HnswParams::default()).unwrap();
        assert!(!bad.load(VectorDump {
            ids: vec![1, 2],
            data: vec![0.0; 8],
            extra: Vec::new(),
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

#[cfg(test)]
mod image_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: usize = 8;

    fn spec() -> VectorSpec {
        VectorSpec {
            dimension: D,
            metric: Metric::L2,
        }
    }

    /// A small graph (core's distance is unoptimised in debug builds) that never rebuilds by
    /// itself, so tombstones stay in the graph.
    fn params() -> HnswParams {
        HnswParams {
            m: 8,
            ef_construction: 40,
            ef_search: 64,
            rebuild_ratio: 10.0,
            rebuild_min: 1_000_000,
        }
    }

    /// Pseudo-random, clustered vectors from a seed.
    fn vector(seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 1000.0
        };
        let centre = (seed % 7) as f32 * 10.0;
        (0..D).map(|_| centre + next()).collect()
    }

    /// 1,500 vectors, a tenth removed and a tenth replaced: tombstones in the graph.
    fn populated() -> HnswIndex {
        let mut index = HnswIndex::new(spec(), params()).unwrap();
        for i in 0..1_500 {
            index.insert(i, &vector(i));
        }
        for i in (0..1_500).step_by(10) {
            index.remove(i);
            index.insert(i + 5, &vector(i + 1_000_000));
        }
        assert_eq!(index.tombstones(), 300);
        assert_eq!(index.rebuilds(), 0);
        index
    }

    fn assert_same_answers(a: &HnswIndex, b: &HnswIndex, ef: usize) {
        let mut a_eq = 0;
        for q in 0..300u64 {
            let query = vector(q * 31 + 7);
            let odd = |id: u64| id % 2 == 1;
            for accept in [None, Some(&odd as &dyn Fn(u64) -> bool)] {
                let x = a.search(&query, 10, accept);
                let y = b.search(&query, 10, accept);
                assert_eq!(x, y, "query {q}, ef {ef}");
                a_eq += usize::from(!x.is_empty());
            }
        }
        assert!(a_eq > 0);
    }

    fn load(dump: VectorDump, params: HnswParams) -> HnswIndex {
        let mut b = HnswIndex::new(spec(), params).unwrap();
        assert!(b.load(dump));
        b
    }

    #[test]
    fn a_loaded_graph_answers_exactly_as_the_original_and_keeps_doing_so() {
        let mut a = populated();
        let dump = a.dump().unwrap();
        assert_eq!(dump.extra.first(), Some(&GRAPH_FORMAT_V1));
        let mut b = load(dump.clone(), params());
        // Nothing was rebuilt: the graph came from the image.
        assert_eq!(b.last_load(), Some(&GraphLoad::Loaded));
        assert_eq!(b.rebuilds(), 0);
        assert_eq!((b.len(), b.tombstones()), (a.len(), a.tombstones()));
        // The same graph, so the same answers even where the search is narrow enough to miss.
        for ef in [1, 4, 64] {
            a.set_ef_search(ef);
            b.set_ef_search(ef);
            assert_same_answers(&a, &b, ef);
        }
        // Dumping the loaded index again gives the same vectors and slots.
        let again = b.dump().unwrap();
        assert_eq!((&again.ids, &again.data), (&dump.ids, &dump.data));
        // The same writes on both: inserts, replacements, deletes.
        for (i, index) in [&mut a, &mut b].into_iter().enumerate() {
            index.set_ef_search(64);
            for id in 2_000..2_300 {
                index.insert(id, &vector(id));
            }
            for id in (1..1_500).step_by(13) {
                index.remove(id);
            }
            for id in (3..1_500).step_by(17) {
                index.insert(id, &vector(id + 7_000_000));
            }
            assert_eq!(index.rebuilds(), 0, "index {i}");
        }
        assert_eq!((b.len(), b.tombstones()), (a.len(), a.tombstones()));
        assert_same_answers(&a, &b, 64);
        // Removed ids stay hidden in the loaded graph.
        for id in (1..1_500).step_by(13) {
            let hits = b.search(&vector(id), 5, None);
            assert!(hits.iter().all(|n| n.id != id || id % 17 == 3));
        }
        // And past the rebuild threshold both rebuild alike (a parallel build: the graphs need
        // not be identical, so only the bookkeeping is compared).
        for index in [&mut a, &mut b] {
            index.params.rebuild_min = 100;
            index.params.rebuild_ratio = 0.0;
            index.remove(2_000);
            assert_eq!(index.rebuilds(), 1);
            assert_eq!(index.tombstones(), 0);
        }
        assert_eq!(a.len(), b.len());
        assert_eq!(a.dump().unwrap().ids, b.dump().unwrap().ids);
    }

    #[test]
    fn an_old_vectors_only_image_still_loads_by_rebuilding() {
        let a = populated();
        let mut dump = a.dump().unwrap();
        dump.extra.clear();
        let b = load(dump, params());
        assert_eq!(
            b.last_load(),
            Some(&GraphLoad::Rebuilt(GraphImageError::NoGraph))
        );
        assert!(b.rebuilt_on_load(), "what core reports in IndexOrigin");
        assert_eq!(b.rebuilds(), 1);
        assert_eq!((b.len(), b.tombstones()), (a.len(), 0));
        let q = vector(42);
        assert_eq!(a.search(&q, 1, None)[0], b.search(&q, 1, None)[0]);
    }

    #[test]
    fn an_unknown_format_or_other_parameters_rebuild() {
        let a = populated();
        let mut dump = a.dump().unwrap();
        let b = load(dump.clone(), HnswParams { m: 12, ..params() });
        assert!(matches!(
            b.last_load(),
            Some(GraphLoad::Rebuilt(GraphImageError::Mismatch(_)))
        ));
        assert_eq!(b.len(), a.len());
        dump.extra[0] = 99;
        let b = load(dump, params());
        assert_eq!(
            b.last_load(),
            Some(&GraphLoad::Rebuilt(GraphImageError::UnknownFormat(99)))
        );
        assert_eq!(b.rebuilds(), 1);
    }

    /// Offsets of the graph and data files inside the HNSW part, and the part re-checksummed.
    fn files(extra: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let u64_at = |at: usize| u64::from_le_bytes(extra[at..at + 8].try_into().unwrap());
        let mut at = 11;
        let slots = u64_at(at) as usize;
        at += 8;
        for _ in 0..slots {
            at += if extra[at] == 1 { 9 } else { 1 };
        }
        let base = u64_at(at) as usize;
        at += 8 + base;
        let graph = u64_at(at) as usize;
        let g = at + 8..at + 8 + graph;
        at = g.end;
        let data = u64_at(at) as usize;
        (g, at + 8..at + 8 + data)
    }

    fn reseal(extra: &mut [u8]) {
        let sum = xxhash_rust::xxh3::xxh3_64(&extra[11..]);
        extra[3..11].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn a_corrupted_graph_falls_back_to_a_rebuild_without_panicking() {
        let mut params = params();
        params.ef_construction = 16;
        let mut a = HnswIndex::new(spec(), params).unwrap();
        for i in 0..120 {
            a.insert(i, &vector(i));
        }
        a.remove(3);
        let dump = a.dump().unwrap();
        let (graph, data) = files(&dump.extra);
        assert!(graph.len() > 1000 && data.len() > 120 * D * 4);
        let (mut loaded, mut rebuilt) = (0, 0);
        for (n, at) in graph
            .clone()
            .step_by(233)
            .chain(data.clone().step_by(47))
            .enumerate()
        {
            let mut bad = dump.clone();
            bad.extra[at] ^= 0x5a;
            // Only the bytes flipped: the part's checksum catches it.
            let b = load(bad.clone(), params);
            assert_eq!(
                b.last_load(),
                Some(&GraphLoad::Rebuilt(GraphImageError::Checksum))
            );
            assert_eq!(b.len(), a.len());
            // With the checksum made to match, the file check must catch what matters; a flip
            // it lets through (a distance's low bits) must still leave a working index.
            if n % 2 == 0 {
                reseal(&mut bad.extra);
                let b = load(bad, params);
                match b.last_load() {
                    Some(GraphLoad::Loaded) => loaded += 1,
                    Some(GraphLoad::Rebuilt(
                        GraphImageError::Malformed(_) | GraphImageError::Mismatch(_),
                    )) => rebuilt += 1,
                    other => panic!("unexpected {other:?}"),
                }
                assert_eq!(b.len(), a.len());
                let hits = b.search(&vector(5), 5, None);
                assert_eq!(hits.len(), 5);
                assert!(hits.iter().all(|n| n.id != 3));
            }
        }
        assert!(rebuilt > loaded, "{rebuilt} rebuilt, {loaded} loaded");
        // Truncated or extended parts are refused too.
        for len in [1, 3, 11, 20, dump.extra.len() - 1] {
            let mut bad = dump.clone();
            bad.extra.truncate(len);
            let b = load(bad, params);
            assert!(matches!(b.last_load(), Some(GraphLoad::Rebuilt(_))));
        }
        let mut bad = dump.clone();
        bad.extra.push(0);
        reseal(&mut bad.extra);
        assert!(matches!(
            load(bad, params).last_load(),
            Some(GraphLoad::Rebuilt(GraphImageError::Malformed(_)))
        ));
    }

    #[test]
    fn an_empty_index_dumps_without_a_graph() {
        let a = HnswIndex::new(spec(), params()).unwrap();
        let dump = a.dump().unwrap();
        assert!(dump.extra.is_empty());
        let b = load(dump, params());
        assert!(b.is_empty());
    }

    #[test]
    fn the_leaked_loader_is_small() {
        // One leaked per graph loaded (see `image`): keep an eye on its size.
        assert!(std::mem::size_of::<hnsw_rs::hnswio::HnswIo>() <= 512);
    }
}
