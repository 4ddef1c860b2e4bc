//! The HNSW part of a vector index image ([`VectorDump::extra`]): the graph itself, so that a
//! load does not rebuild it.
//!
//! hnsw_rs writes and reloads graphs only through files (`Hnsw::file_dump`, `HnswIo`). A dump
//! writes them into a private temporary directory and copies them into the image; a load writes
//! them back into another one and reloads them. Layout (integers little-endian):
//!
//! | part | what |
//! |---|---|
//! | 1 byte | format, [`GRAPH_FORMAT_V1`] (an empty part: vectors only, the graph is rebuilt) |
//! | 1 byte + 1 byte | `usize` width and byte order of the machine that wrote the files |
//! | u64 | XXH3-64 of everything after it |
//! | u64 + per slot | the adapter's slots by hnsw data id: `0` (tombstone) or `1` + core id |
//! | 3 × (u64 length + bytes) | the files' base name, `<base>.hnsw.graph`, `<base>.hnsw.data` |
//!
//! hnsw_rs's reload trusts its files: it `assert!`s, `unwrap`s, exits the process or reads out
//! of bounds on malformed ones. So nothing reaches it unless the part's own checksum matches
//! *and* [`check_files`] walked both files completely, bounds-checking every length and
//! reference, and found them to describe exactly the slots and vectors being loaded. The reload
//! then still runs under `catch_unwind`; any failure is a [`GraphImageError`] and the caller
//! rebuilds from the vectors.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use statemesh_core::search::VectorDump;

use crate::CoreDistance;

/// Format byte of the HNSW part of an image.
pub const GRAPH_FORMAT_V1: u8 = 1;

const BASENAME: &str = "graph";
const ENDIAN: u8 = if cfg!(target_endian = "little") { 1 } else { 2 };
const USIZE: usize = std::mem::size_of::<usize>();

// hnsw_rs 0.3.5's file magics (src/hnswio.rs).
const MAGIC_DESCR_4: u32 = 0x002a_6779;
const MAGIC_LAYER: u32 = 0x000a_676f;
const MAGIC_POINT: u32 = 0x000a_678f;
const MAGIC_DATA: u32 = 0xa67f_0000;
const NB_LAYER_MAX: u8 = 16;
/// hnsw_rs refuses longer distance and type names.
const NAME_MAX: usize = 256;

/// Why the graph in an image was not used (the graph was rebuilt from the vectors instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphImageError {
    #[error("the image holds no graph (vectors only, an older or empty image)")]
    NoGraph,
    #[error("unknown HNSW image format {0}")]
    UnknownFormat(u8),
    #[error("graph written on another platform (usize width or byte order)")]
    Platform,
    #[error("HNSW image checksum mismatch")]
    Checksum,
    #[error("malformed HNSW image: {0}")]
    Malformed(String),
    #[error("the graph does not match this index: {0}")]
    Mismatch(String),
    #[error("graph file io: {0}")]
    Io(String),
    #[error("hnsw_rs failed to dump or reload the graph: {0}")]
    Hnsw(String),
}

fn malformed(what: impl Into<String>) -> GraphImageError {
    GraphImageError::Malformed(what.into())
}

fn mismatch(what: impl Into<String>) -> GraphImageError {
    GraphImageError::Mismatch(what.into())
}

fn io(e: std::io::Error) -> GraphImageError {
    GraphImageError::Io(e.to_string())
}

/// What a graph has to agree with to be loaded.
pub(crate) struct Expect {
    pub dimension: usize,
    /// hnsw's M as the graph is built with it.
    pub m: usize,
    pub ef_construction: usize,
}

/// The HNSW part of an image for `graph`, whose data id `i` is `slots[i]` (`None`: tombstone).
pub(crate) fn dump(
    graph: &Hnsw<'static, f32, CoreDistance>,
    slots: &[Option<u64>],
) -> Result<Vec<u8>, GraphImageError> {
    let dir = tempfile::tempdir().map_err(io)?;
    let base = graph
        .file_dump(dir.path(), BASENAME)
        .map_err(|e| GraphImageError::Hnsw(e.to_string()))?;
    let graph_file = std::fs::read(dir.path().join(format!("{base}.hnsw.graph"))).map_err(io)?;
    let data_file = std::fs::read(dir.path().join(format!("{base}.hnsw.data"))).map_err(io)?;
    let mut rest = Vec::with_capacity(graph_file.len() + data_file.len() + slots.len() * 9 + 64);
    rest.extend_from_slice(&(slots.len() as u64).to_le_bytes());
    for slot in slots {
        match slot {
            None => rest.push(0),
            Some(id) => {
                rest.push(1);
                rest.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
    for blob in [base.as_bytes(), &graph_file, &data_file] {
        rest.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        rest.extend_from_slice(blob);
    }
    let mut out = Vec::with_capacity(rest.len() + 11);
    out.extend_from_slice(&[GRAPH_FORMAT_V1, USIZE as u8, ENDIAN]);
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&rest).to_le_bytes());
    out.extend_from_slice(&rest);
    Ok(out)
}

/// A graph loaded from an image, with the slots it was dumped with.
pub(crate) struct Loaded {
    pub graph: Hnsw<'static, f32, CoreDistance>,
    /// By data id: the core id, or `None` for a tombstone.
    pub slots: Vec<Option<u64>>,
}

/// Reloads the graph in `dump.extra`, checking it against `dump`'s vectors and `expect`.
pub(crate) fn load(
    dump: &VectorDump,
    metric: CoreDistance,
    expect: &Expect,
) -> Result<Loaded, GraphImageError> {
    let part = parse(&dump.extra)?;
    // Every core id of the dump in exactly one live slot, and nothing else live.
    let d = expect.dimension;
    let by_id: std::collections::HashMap<u64, usize> = dump
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let mut vectors: Vec<Option<&[f32]>> = Vec::with_capacity(part.slots.len());
    let mut live = 0usize;
    for slot in &part.slots {
        vectors.push(match slot {
            None => None,
            Some(id) => {
                let i = by_id
                    .get(id)
                    .ok_or_else(|| mismatch("a live slot's id has no vector"))?;
                live += 1;
                Some(
                    dump.data
                        .get(i * d..(i + 1) * d)
                        .ok_or_else(|| mismatch("a vector is missing"))?,
                )
            }
        });
    }
    if live != dump.ids.len() || live != by_id.len() {
        return Err(mismatch("the slots do not hold every vector exactly once"));
    }
    check_files(part.graph, part.data, expect, &vectors)?;

    let dir = tempfile::tempdir().map_err(io)?;
    for (suffix, bytes) in [("graph", part.graph), ("data", part.data)] {
        let mut f = std::fs::File::create(dir.path().join(format!("{BASENAME}.hnsw.{suffix}")))
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
    }
    // `load_hnsw_with_dist` returns a graph that borrows the loader (for memory-mapped data,
    // which is not used here), and the workspace forbids `unsafe`; so the loader is leaked to
    // get a `'static` graph: one `HnswIo` (a few hundred bytes with its path) per graph loaded,
    // that is once per HNSW index per open.
    let loader: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir.path(), BASENAME)));
    let reloaded = catch_unwind(AssertUnwindSafe(|| {
        loader.load_hnsw_with_dist::<f32, CoreDistance>(metric)
    }));
    let mut graph = match reloaded {
        Ok(Ok(graph)) => graph,
        Ok(Err(e)) => return Err(GraphImageError::Hnsw(e.to_string())),
        Err(_) => return Err(GraphImageError::Hnsw("the reload panicked".into())),
    };
    if graph.get_nb_point() != part.slots.len() {
        return Err(mismatch("reloaded graph has another number of points"));
    }
    // A reload turns candidate extension on; a graph made by `Hnsw::new` has it off, and later
    // inserts must link exactly as they would have without the restart.
    graph.set_extend_candidates(false);
    Ok(Loaded {
        graph,
        slots: part.slots,
    })
}

struct Part<'a> {
    slots: Vec<Option<u64>>,
    graph: &'a [u8],
    data: &'a [u8],
}

fn parse(extra: &[u8]) -> Result<Part<'_>, GraphImageError> {
    let (&format, rest) = extra.split_first().ok_or(GraphImageError::NoGraph)?;
    if format != GRAPH_FORMAT_V1 {
        return Err(GraphImageError::UnknownFormat(format));
    }
    let mut r = Reader::new(rest);
    if r.u8()? as usize != USIZE || r.u8()? != ENDIAN {
        return Err(GraphImageError::Platform);
    }
    let sum = r.u64_le()?;
    if xxhash_rust::xxh3::xxh3_64(r.rest()) != sum {
        return Err(GraphImageError::Checksum);
    }
    let n = r.len_le(1)?;
    let mut slots = Vec::with_capacity(n);
    for _ in 0..n {
        slots.push(match r.u8()? {
            0 => None,
            1 => Some(r.u64_le()?),
            _ => return Err(malformed("bad slot tag")),
        });
    }
    let base_len = r.len_le(1)?;
    let base = r.bytes(base_len)?;
    if base != BASENAME.as_bytes() {
        return Err(malformed("unexpected graph file name"));
    }
    let graph_len = r.len_le(1)?;
    let graph = r.bytes(graph_len)?;
    let data_len = r.len_le(1)?;
    let data = r.bytes(data_len)?;
    r.end()?;
    Ok(Part { slots, graph, data })
}

/// Walks hnsw_rs's graph and data files as its reload will, checking every length, magic and
/// reference, that they describe `vectors.len()` points built with `expect`'s parameters, and
/// that every live point's vector is bit for bit the one in `vectors`.
fn check_files(
    graph: &[u8],
    data: &[u8],
    expect: &Expect,
    vectors: &[Option<&[f32]>],
) -> Result<(), GraphImageError> {
    let d = expect.dimension;
    let n = vectors.len();
    let mut g = Reader::new(graph);
    // Description.
    if g.u32()? != MAGIC_DESCR_4 {
        return Err(malformed("graph description magic"));
    }
    if g.u8()? != 1 {
        return Err(malformed("not a full dump"));
    }
    if g.u8()? as usize != expect.m {
        return Err(mismatch("M differs"));
    }
    let scale = g.f64()?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(malformed("level scale"));
    }
    let nb_layer = g.u8()?;
    if nb_layer != NB_LAYER_MAX {
        return Err(malformed("layer count"));
    }
    if g.usize()? != expect.ef_construction {
        return Err(mismatch("ef_construction differs"));
    }
    if g.usize()? != n {
        return Err(mismatch("point count differs from the slots"));
    }
    if g.usize()? != d {
        return Err(mismatch("dimension differs"));
    }
    for name in [
        std::any::type_name::<CoreDistance>(),
        std::any::type_name::<f32>(),
    ] {
        let len = g.usize()?;
        if len > NAME_MAX || g.bytes(len)? != name.as_bytes() {
            return Err(mismatch("distance or value type differs"));
        }
    }
    // Data header.
    let mut v = Reader::new(data);
    if v.u32()? != MAGIC_DATA || v.usize()? != d {
        return Err(malformed("data header"));
    }
    // Layers: every point once, in rank order, its neighbours' references checked afterwards.
    let layers = g.u8()?;
    if layers > NB_LAYER_MAX {
        return Err(malformed("too many layers"));
    }
    let mut origin_at: Vec<Vec<usize>> = Vec::with_capacity(layers as usize);
    let mut seen = vec![false; n];
    let mut loaded = 0usize;
    // (layer, rank, data id) of every neighbour.
    let mut refs: Vec<(u8, i32, usize)> = Vec::new();
    // One neighbour takes 17 bytes: a count beyond what is left is malformed.
    const NEIGHBOUR: usize = USIZE + 1 + 4 + 4;
    for l in 0..layers {
        if g.u32()? != MAGIC_LAYER {
            return Err(malformed("layer magic"));
        }
        let count = g.usize()?;
        if count > n - loaded {
            return Err(malformed("more points than described"));
        }
        let mut origins = Vec::with_capacity(count);
        for r in 0..count {
            if g.u32()? != MAGIC_POINT {
                return Err(malformed("point magic"));
            }
            let origin = g.usize()?;
            if origin >= n || std::mem::replace(&mut seen[origin], true) {
                return Err(malformed("point id out of range or repeated"));
            }
            if g.u8()? != l || usize::try_from(g.i32()?).ok() != Some(r) {
                return Err(malformed("point stored out of place"));
            }
            for _ in 0..nb_layer {
                let neighbours = g.usize()?;
                if neighbours > g.remaining() / NEIGHBOUR {
                    return Err(malformed("neighbour count"));
                }
                for _ in 0..neighbours {
                    let d_id = g.usize()?;
                    let layer = g.u8()?;
                    let rank = g.i32()?;
                    let dist = g.f32()?;
                    if !dist.is_finite() {
                        return Err(malformed("neighbour distance"));
                    }
                    refs.push((layer, rank, d_id));
                }
            }
            // Its vector, in the data file in the same order.
            if v.u32()? != MAGIC_DATA
                || usize::try_from(v.u64()?).ok() != Some(origin)
                || usize::try_from(v.u64()?).ok() != d.checked_mul(4)
            {
                return Err(malformed("data record header"));
            }
            let stored = v.bytes(d * 4)?;
            if let Some(Some(expected)) = vectors.get(origin) {
                let same = expected
                    .iter()
                    .zip(stored.chunks_exact(4))
                    .all(|(x, b)| x.to_ne_bytes() == [b[0], b[1], b[2], b[3]]);
                if !same {
                    return Err(mismatch("a vector differs from the image's"));
                }
            }
            origins.push(origin);
            loaded += 1;
        }
        origin_at.push(origins);
    }
    if loaded != n {
        return Err(malformed("fewer points than described"));
    }
    let at = |layer: u8, rank: i32| -> Option<usize> {
        let rank = usize::try_from(rank).ok()?;
        origin_at.get(layer as usize)?.get(rank).copied()
    };
    if !refs.iter().all(|&(l, r, id)| at(l, r) == Some(id)) {
        return Err(malformed("a neighbour reference is dangling"));
    }
    // Entry point.
    let entry = g.usize()?;
    let (l, r) = (g.u8()?, g.i32()?);
    if n > 0 && at(l, r) != Some(entry) {
        return Err(malformed("entry point"));
    }
    g.end()?;
    v.end()
}

/// Bounds-checked reading; the hnsw files are native-endian, the adapter's own fields
/// little-endian.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], GraphImageError> {
        if n > self.buf.len() {
            return Err(malformed("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GraphImageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn end(&self) -> Result<(), GraphImageError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(malformed("trailing bytes"))
        }
    }

    fn u8(&mut self) -> Result<u8, GraphImageError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, GraphImageError> {
        Ok(u32::from_ne_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, GraphImageError> {
        Ok(i32::from_ne_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GraphImageError> {
        Ok(u64::from_ne_bytes(self.array()?))
    }

    fn usize(&mut self) -> Result<usize, GraphImageError> {
        Ok(usize::from_ne_bytes(self.array()?))
    }

    fn f32(&mut self) -> Result<f32, GraphImageError> {
        Ok(f32::from_ne_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, GraphImageError> {
        Ok(f64::from_ne_bytes(self.array()?))
    }

    fn u64_le(&mut self) -> Result<u64, GraphImageError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A little-endian count of items of at least `min_size` bytes each that must fit in what
    /// is left.
    fn len_le(&mut self, min_size: usize) -> Result<usize, GraphImageError> {
        let n = usize::try_from(self.u64_le()?).map_err(|_| malformed("length"))?;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(malformed("length past the end"));
        }
        Ok(n)
    }
}
