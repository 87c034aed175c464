//! The policy network's sizes, which the network and its dense batches both follow (a file of
//! its own so that neither imports the other for it).

use serde::{Deserialize, Serialize};

/// Sizes of the policy network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetShape {
    /// State feature dimension.
    pub state_dim: usize,
    /// Action feature dimension.
    pub action_dim: usize,
    /// Hidden width of every layer.
    pub hidden: usize,
}
