//! Vector indexes for top-k retrieval by cosine similarity over unit vectors.
//!
//! [`ExactIndex`] keeps all vectors in one contiguous row-major array and scans it with an
//! unrolled dot product and a bounded top-k; [`ApproxIndex`] wraps an HNSW graph (`hnsw_rs`) for
//! large buffers.

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;
use std::collections::HashMap;

/// One retrieval result: the record id and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Id of the record (as given to `add`).
    pub id: u64,
    /// Cosine similarity (dot product of unit vectors).
    pub score: f32,
}

/// Dot product, unrolled into 8 independent accumulators so the compiler vectorises it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
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

/// Keeps the `k` best hits seen so far, best first.
struct TopK {
    k: usize,
    hits: Vec<Hit>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            hits: Vec::with_capacity(k + 1),
        }
    }
    #[inline]
    fn threshold(&self) -> f32 {
        if self.hits.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.hits[self.k - 1].score
        }
    }
    #[inline]
    fn push(&mut self, hit: Hit) {
        if self.k == 0 || hit.score <= self.threshold() {
            return;
        }
        let pos = self.hits.partition_point(|h| h.score >= hit.score);
        self.hits.insert(pos, hit);
        self.hits.truncate(self.k);
    }
}

/// Exact top-k search over all vectors; supports removal.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dim: usize,
    data: Vec<f32>,
    ids: Vec<u64>,
    pos: HashMap<u64, usize>,
}

impl ExactIndex {
    /// An empty index of vectors of length `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            ids: Vec::new(),
            pos: HashMap::new(),
        }
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Add (or replace) the vector of `id`.
    pub fn add(&mut self, id: u64, v: &[f32]) {
        assert_eq!(v.len(), self.dim, "vector has the wrong dimension");
        if let Some(&p) = self.pos.get(&id) {
            self.data[p * self.dim..(p + 1) * self.dim].copy_from_slice(v);
            return;
        }
        self.pos.insert(id, self.ids.len());
        self.ids.push(id);
        self.data.extend_from_slice(v);
    }

    /// Remove `id` (swap-remove: O(dim)); returns whether it was present.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(p) = self.pos.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if p != last {
            let (head, tail) = self.data.split_at_mut(last * self.dim);
            head[p * self.dim..(p + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            let moved = self.ids[last];
            self.ids[p] = moved;
            self.pos.insert(moved, p);
        }
        self.ids.pop();
        self.data.truncate(last * self.dim);
        true
    }

    /// The vector stored for `id`.
    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        self.pos
            .get(&id)
            .map(|&p| &self.data[p * self.dim..(p + 1) * self.dim])
    }

    /// All (id, vector) pairs, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.ids
            .iter()
            .copied()
            .zip(self.data.chunks_exact(self.dim))
    }

    /// The `k` most similar vectors to `query`, best first (ties: earlier-added first).
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        self.search_filtered(query, k, |_| true)
    }

    /// Like [`search`](Self::search), only over ids for which `keep` is true.
    pub fn search_filtered(&self, query: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<Hit> {
        assert_eq!(query.len(), self.dim, "query has the wrong dimension");
        let mut top = TopK::new(k);
        for (row, &id) in self.data.chunks_exact(self.dim).zip(&self.ids) {
            let score = dot(row, query);
            if score > top.threshold() && keep(id) {
                top.push(Hit { id, score });
            }
        }
        top.hits
    }
}

/// Cosine distance `1 - a·b` of unit vectors, clamped at 0 (rounding can push `a·b` past 1,
/// which `anndists`' own `DistDot` rejects with a panic).
#[derive(Debug, Clone, Copy, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Build parameters of the approximate index.
#[derive(Debug, Clone, Copy)]
pub struct ApproxParams {
    /// Links per node (HNSW `M`).
    pub max_connections: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Candidate list size while searching (raise for recall, lower for speed).
    pub ef_search: usize,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self {
            max_connections: 32,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// Approximate top-k search: an HNSW graph (`hnsw_rs`) over the *distinct* vectors, each node
/// holding the ids of every record with that vector. Replay buffers hold many identical
/// transitions; collapsing them keeps the graph navigable and the build short.
pub struct ApproxIndex {
    hnsw: Hnsw<'static, f32, CosineDistance>,
    ids: Vec<Vec<u64>>,
    len: usize,
    params: ApproxParams,
    dim: usize,
}

impl ApproxIndex {
    /// Build an index over `(id, vector)` pairs (inserted in parallel on all cores: the graph,
    /// and so which near neighbours a search finds, may differ from build to build).
    pub fn build<'a>(
        dim: usize,
        items: impl IntoIterator<Item = (u64, &'a [f32])>,
        params: ApproxParams,
    ) -> Self {
        Self::build_with(dim, items, params, true)
    }

    /// Like [`build`](Self::build), inserting one vector after another: slower, but the same
    /// items give the same graph and the same search results every time (for runs that must be
    /// deterministic given a seed).
    pub fn build_serial<'a>(
        dim: usize,
        items: impl IntoIterator<Item = (u64, &'a [f32])>,
        params: ApproxParams,
    ) -> Self {
        Self::build_with(dim, items, params, false)
    }

    fn build_with<'a>(
        dim: usize,
        items: impl IntoIterator<Item = (u64, &'a [f32])>,
        params: ApproxParams,
        parallel: bool,
    ) -> Self {
        let mut node_of: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut vecs: Vec<&[f32]> = vec![];
        let mut ids: Vec<Vec<u64>> = vec![];
        let mut len = 0;
        for (id, v) in items {
            len += 1;
            let key: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
            let node = *node_of.entry(key).or_insert_with(|| {
                vecs.push(v);
                ids.push(vec![]);
                vecs.len() - 1
            });
            ids[node].push(id);
        }
        let n = vecs.len().max(1);
        let layers = 16.min(((n as f32).ln().ceil() as usize).max(1));
        let hnsw = Hnsw::<f32, CosineDistance>::new(
            params.max_connections,
            n,
            layers,
            params.ef_construction,
            CosineDistance,
        );
        let owned: Vec<Vec<f32>> = vecs.iter().map(|v| v.to_vec()).collect();
        let refs: Vec<(&Vec<f32>, usize)> = owned.iter().enumerate().map(|(i, v)| (v, i)).collect();
        if parallel {
            hnsw.parallel_insert(&refs);
        } else {
            for &(v, i) in &refs {
                hnsw.insert((v.as_slice(), i));
            }
        }
        Self {
            hnsw,
            ids,
            len,
            params,
            dim,
        }
    }

    /// Number of indexed records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of distinct vectors (graph nodes).
    pub fn distinct(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Change the search candidate list size.
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef;
    }

    /// The approximately `k` most similar records, best first (records with identical vectors in
    /// insertion order).
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        self.search_filtered(query, k, |_| true)
    }

    /// Like [`search`](Self::search), skipping ids for which `keep` is false.
    pub fn search_filtered(&self, query: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<Hit> {
        assert_eq!(query.len(), self.dim, "query has the wrong dimension");
        if self.ids.is_empty() || k == 0 {
            return vec![];
        }
        let ef = self.params.ef_search.max(k);
        let mut out = Vec::with_capacity(k);
        for n in self.hnsw.search(query, k, ef) {
            let score = 1.0 - n.distance;
            for &id in &self.ids[n.d_id] {
                if keep(id) {
                    out.push(Hit { id, score });
                    if out.len() == k {
                        return out;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::normalise;
    use rand::{RngExt, SeedableRng};

    fn random_unit(rng: &mut impl rand::Rng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        normalise(&mut v);
        v
    }

    fn brute(data: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
        let mut s: Vec<(f32, u64)> = data
            .iter()
            .map(|(id, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), *id))
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn exact_matches_brute_force_and_handles_removal() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let data: Vec<(u64, Vec<f32>)> = (0..500)
            .map(|i| (i * 3, random_unit(&mut rng, 37)))
            .collect();
        let mut idx = ExactIndex::new(37);
        for (id, v) in &data {
            idx.add(*id, v);
        }
        for _ in 0..20 {
            let q = random_unit(&mut rng, 37);
            let got: Vec<u64> = idx.search(&q, 10).iter().map(|h| h.id).collect();
            assert_eq!(got, brute(&data, &q, 10));
        }
        // remove half and compare again
        let kept: Vec<(u64, Vec<f32>)> =
            data.iter().filter(|(id, _)| id % 2 == 0).cloned().collect();
        for (id, _) in data.iter().filter(|(id, _)| id % 2 == 1) {
            assert!(idx.remove(*id));
        }
        assert!(!idx.remove(1));
        assert_eq!(idx.len(), kept.len());
        let q = random_unit(&mut rng, 37);
        let got: Vec<u64> = idx.search(&q, 10).iter().map(|h| h.id).collect();
        assert_eq!(got, brute(&kept, &q, 10));
        assert_eq!(idx.vector(kept[3].0).unwrap(), &kept[3].1[..]);
    }

    #[test]
    fn approx_survives_duplicate_vectors() {
        // identical unit vectors give a dot product that rounds above 1
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let base: Vec<Vec<f32>> = (0..20).map(|_| random_unit(&mut rng, 16)).collect();
        let data: Vec<(u64, &[f32])> = (0..2000)
            .map(|i| (i as u64, base[i % 20].as_slice()))
            .collect();
        let idx = ApproxIndex::build(16, data, ApproxParams::default());
        let hits = idx.search(&base[3], 10);
        assert_eq!(hits.len(), 10);
        assert!(
            hits.iter()
                .all(|h| (h.score - 1.0).abs() < 1e-4 && h.id % 20 == 3)
        );
    }

    #[test]
    fn approx_has_high_recall_on_clustered_data() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let centers: Vec<Vec<f32>> = (0..50).map(|_| random_unit(&mut rng, 32)).collect();
        let data: Vec<(u64, Vec<f32>)> = (0..3000)
            .map(|i| {
                let c = &centers[i % 50];
                let mut v: Vec<f32> = c
                    .iter()
                    .map(|x| x + rng.random_range(-0.3f32..0.3))
                    .collect();
                normalise(&mut v);
                (i as u64, v)
            })
            .collect();
        let idx = ApproxIndex::build(
            32,
            data.iter().map(|(i, v)| (*i, v.as_slice())),
            ApproxParams::default(),
        );
        let mut found = 0;
        for _ in 0..50 {
            let q = random_unit(&mut rng, 32);
            let truth = brute(&data, &q, 10);
            let got: Vec<u64> = idx.search(&q, 10).iter().map(|h| h.id).collect();
            found += truth.iter().filter(|t| got.contains(t)).count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall >= 0.9, "recall {recall}");
    }
}
