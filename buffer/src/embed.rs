//! Embedders turn the text of a transition into a unit vector for retrieval.

/// Turns text into a fixed-size, L2-normalised vector (cosine similarity = dot product).
pub trait Embedder: Send + Sync {
    /// Length of the vectors this embedder produces.
    fn dim(&self) -> usize;
    /// Write the embedding of `text` into `out` (`out.len() == self.dim()`), L2-normalised
    /// (all zeros when the text has no tokens).
    fn embed_into(&self, text: &str, out: &mut [f32]);
    /// Convenience: a freshly allocated embedding.
    fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0; self.dim()];
        self.embed_into(text, &mut v);
        v
    }
}

/// The text a transition is embedded from: the state lines, then the action on a marked line.
pub fn transition_text(state_lines: &[String], action: &str) -> String {
    let mut s = String::with_capacity(
        state_lines.iter().map(|l| l.len() + 1).sum::<usize>() + action.len() + 8,
    );
    for l in state_lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("action: ");
    s.push_str(action);
    s
}

/// The default embedder: signed feature hashing of lower-cased word unigrams and bigrams.
/// Needs no model; the words of the line starting with `action:` are hashed into their own
/// feature space and weighted up, so that the same state with another action is far away.
#[derive(Debug, Clone)]
pub struct HashedNgramEmbedder {
    dim: usize,
    action_weight: f32,
}

impl HashedNgramEmbedder {
    /// A hashed embedder of `dim` dimensions (at least 8).
    pub fn new(dim: usize) -> Self {
        Self {
            dim: dim.max(8),
            action_weight: 2.0,
        }
    }
}

impl Default for HashedNgramEmbedder {
    fn default() -> Self {
        Self::new(128)
    }
}

#[inline]
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= b.to_ascii_lowercase() as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // final avalanche so that the low bits used for the bucket are well mixed
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl Embedder for HashedNgramEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_into(&self, text: &str, out: &mut [f32]) {
        assert_eq!(out.len(), self.dim, "embedding buffer has the wrong length");
        out.fill(0.0);
        let mut add = |h: u64, w: f32| {
            let idx = (h % self.dim as u64) as usize;
            out[idx] += if h >> 63 == 0 { w } else { -w };
        };
        for line in text.lines() {
            let (seed, weight, body) = match line.strip_prefix("action:") {
                Some(rest) => (0x9e37_79b9_7f4a_7c15u64, self.action_weight, rest),
                None => (0u64, 1.0, line),
            };
            let mut prev: Option<u64> = None;
            for word in body
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let h = fnv1a(seed, word.as_bytes());
                add(h, weight);
                if let Some(p) = prev {
                    add(p.rotate_left(17) ^ h.wrapping_mul(31), weight * 0.5);
                }
                prev = Some(h);
            }
        }
        normalise(out);
    }
}

/// Scale `v` to unit length (leaves an all-zero vector as it is).
pub fn normalise(v: &mut [f32]) {
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn similar_texts_are_closer_than_different_ones() {
        let e = HashedNgramEmbedder::default();
        let s = vec!["[apple1] object: a red apple on the table".to_string()];
        let a = e.embed(&transition_text(&s, "take apple1 from table"));
        let b = e.embed(&transition_text(&s, "take apple1 from table"));
        let c = e.embed(&transition_text(&s, "go to fridge"));
        let d = e.embed(&transition_text(
            &["[door] door: the blue door is locked".to_string()],
            "open door",
        ));
        assert!((cos(&a, &b) - 1.0).abs() < 1e-5);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5, "unit length");
        assert!(
            cos(&a, &c) < 0.9 && cos(&a, &c) > cos(&a, &d),
            "{} {}",
            cos(&a, &c),
            cos(&a, &d)
        );
    }

    #[test]
    fn empty_text_is_zero() {
        let e = HashedNgramEmbedder::new(16);
        assert!(e.embed("").iter().all(|&x| x == 0.0));
    }
}
