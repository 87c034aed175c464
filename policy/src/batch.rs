//! Dense, padded batches of decisions for the burn network.

use crate::shape::NetShape;
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

/// How many action slots a batch gets.
///
/// A GPU backend (wgpu) compiles its kernels for each tensor shape it meets, which costs seconds
/// per new shape (tens of seconds on a software adapter), and the longest admissible-action list
/// of a minibatch changes from one minibatch to the next: rounded up to a multiple of 8, a run
/// meets a few shapes instead of dozens, for at most 7 padded slots of extra work (a power of two
/// doubled the work of some batches and was slower overall on lavapipe). Padded slots are masked, so the result is the same up to
/// floating-point summation order; burn's CPU backend keeps exact shapes (bit-identical runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotCount {
    /// The longest action list of the batch.
    Exact,
    /// The longest action list rounded up to a multiple of 8.
    MultipleOfEight,
}

impl SlotCount {
    /// `MultipleOfEight` on devices that compile kernels per shape (anything but burn's `flex` CPU
    /// backend), `Exact` on `flex`.
    pub fn for_device(device: &burn::tensor::Device) -> Self {
        if device.clone().without_autodiff() == burn::tensor::Device::flex() {
            SlotCount::Exact
        } else {
            SlotCount::MultipleOfEight
        }
    }
}

fn scatter(row: &mut [f32], feats: &SparseVec) {
    for &(i, x) in feats {
        if let Some(slot) = row.get_mut(i as usize) {
            *slot += x;
        }
    }
}

impl DenseBatch {
    /// Densifies `(state, actions)` pairs for a network of `shape`, with as many slots as the
    /// longest action list.
    pub fn build<'a>(
        shape: NetShape,
        items: impl IntoIterator<Item = (&'a SparseVec, &'a [SparseVec])>,
    ) -> Self {
        Self::build_with_slots(shape, items, SlotCount::Exact)
    }

    /// [`Self::build`] with the slot count rounded as `slots` says.
    pub fn build_with_slots<'a>(
        shape: NetShape,
        items: impl IntoIterator<Item = (&'a SparseVec, &'a [SparseVec])>,
        slots: SlotCount,
    ) -> Self {
        let items: Vec<_> = items.into_iter().collect();
        let batch = items.len();
        let longest = items.iter().map(|(_, a)| a.len()).max().unwrap_or(1).max(1);
        let slots = match slots {
            SlotCount::Exact => longest,
            SlotCount::MultipleOfEight => longest.next_multiple_of(8),
        };
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
    fn slots_round_up_to_a_multiple_of_eight_on_request() {
        let shape = NetShape {
            state_dim: 2,
            action_dim: 2,
            hidden: 4,
        };
        let s: SparseVec = vec![(0, 1.0)];
        let a: Vec<SparseVec> = vec![vec![(1, 1.0)]; 5];
        let exact = DenseBatch::build_with_slots(shape, [(&s, a.as_slice())], SlotCount::Exact);
        let padded =
            DenseBatch::build_with_slots(shape, [(&s, a.as_slice())], SlotCount::MultipleOfEight);
        assert_eq!((exact.slots, padded.slots), (5, 8));
        assert_eq!(padded.mask, vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            SlotCount::for_device(&burn::tensor::Device::flex()),
            SlotCount::Exact
        );
        assert_eq!(
            SlotCount::for_device(&burn::tensor::Device::flex().autodiff()),
            SlotCount::Exact
        );
    }

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
