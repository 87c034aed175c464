//! Dense, padded batches of decisions for the burn network.

use crate::net::NetShape;
use crate::text::SparseVec;

/// Decisions densified for one forward pass: `batch` states, each with `slots` action slots
/// (the largest admissible-action count in the batch; shorter lists are padded and masked).
#[derive(Debug, Clone, Default)]
pub struct DenseBatch {
    /// Number of decisions.
    pub batch: usize,
    /// Action slots per decision.
    pub slots: usize,
    /// State feature dimension.
    pub state_dim: usize,
    /// Action feature dimension.
    pub action_dim: usize,
    /// `[batch, state_dim]` row-major.
    pub state: Vec<f32>,
    /// `[batch * slots, action_dim]` row-major.
    pub actions: Vec<f32>,
    /// `[batch, slots]`: 1 for a real action, 0 for padding.
    pub mask: Vec<f32>,
}

fn scatter(row: &mut [f32], feats: &SparseVec) {
    for &(i, x) in feats {
        if let Some(slot) = row.get_mut(i as usize) {
            *slot += x;
        }
    }
}

impl DenseBatch {
    /// Densifies `(state, actions)` pairs for a network of `shape`.
    pub fn build<'a>(
        shape: NetShape,
        items: impl IntoIterator<Item = (&'a SparseVec, &'a [SparseVec])>,
    ) -> Self {
        let items: Vec<_> = items.into_iter().collect();
        let batch = items.len();
        let slots = items.iter().map(|(_, a)| a.len()).max().unwrap_or(1).max(1);
        let mut out = Self {
            batch,
            slots,
            state_dim: shape.state_dim,
            action_dim: shape.action_dim,
            state: vec![0.0; batch * shape.state_dim],
            actions: vec![0.0; batch * slots * shape.action_dim],
            mask: vec![0.0; batch * slots],
        };
        for (b, (state, actions)) in items.into_iter().enumerate() {
            scatter(
                &mut out.state[b * shape.state_dim..(b + 1) * shape.state_dim],
                state,
            );
            for (k, feats) in actions.iter().enumerate() {
                let row = (b * slots + k) * shape.action_dim;
                scatter(&mut out.actions[row..row + shape.action_dim], feats);
                out.mask[b * slots + k] = 1.0;
            }
        }
        out
    }

    /// A `[batch, slots]` one-hot matrix of the chosen action indices.
    pub fn one_hot(&self, chosen: &[usize]) -> Vec<f32> {
        let mut m = vec![0.0; self.batch * self.slots];
        for (b, &k) in chosen.iter().enumerate() {
            m[b * self.slots + k] = 1.0;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_masks_variable_action_counts() {
        let shape = NetShape {
            state_dim: 4,
            action_dim: 3,
            hidden: 2,
        };
        let s0: SparseVec = vec![(1, 2.0)];
        let s1: SparseVec = vec![(3, 1.0)];
        let a0 = vec![vec![(0, 1.0)], vec![(2, 1.0)]];
        let a1 = vec![vec![(1, 1.0)]];
        let b = DenseBatch::build(shape, [(&s0, a0.as_slice()), (&s1, a1.as_slice())]);
        assert_eq!((b.batch, b.slots), (2, 2));
        assert_eq!(b.state, vec![0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(b.mask, vec![1.0, 1.0, 1.0, 0.0]);
        assert_eq!(&b.actions[9..12], &[0.0, 0.0, 0.0], "padding row is zero");
        assert_eq!(b.one_hot(&[1, 0]), vec![0.0, 1.0, 1.0, 0.0]);
    }
}
