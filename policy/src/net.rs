//! The text policy network in burn (for updates) and its plain-Rust twin (for rollouts).
//!
//! Actor: a state encoder (two tanh layers over the state's bag of words), an action encoder
//! (one tanh layer over each admissible action's features), and a scorer (a tanh layer over
//! `[state, action, state * action]` then a linear output) that gives one logit per admissible
//! action; padded actions are masked. Critic: its own two tanh layers over the state features and
//! a linear output (CleanRL's separate 64x64 tanh actor and critic).
//!
//! Rollouts run thousands of single decisions whose first layer is a sparse sum: [`NativeNet`]
//! copies the weights after every update and evaluates the same function without tensor
//! overhead. A test holds the two to the same outputs.

use crate::batch::DenseBatch;
use crate::shape::NetShape;
use crate::text::SparseVec;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, tanh};
use burn::tensor::{Device, Tensor, TensorData};

/// The policy and value network (burn module).
#[derive(Module, Debug)]
pub struct PolicyNet {
    state1: Linear,
    state2: Linear,
    action1: Linear,
    score1: Linear,
    score2: Linear,
    critic1: Linear,
    critic2: Linear,
    critic3: Linear,
}

/// Masked action logits `[B, A]` and values `[B]` of a batch.
pub struct NetOutput {
    /// Log-probabilities over the padded action slots (padding gets ~-1e9).
    pub log_probs: Tensor<2>,
    /// State values.
    pub values: Tensor<1>,
}

fn linear(i: usize, o: usize, device: &Device) -> Linear {
    LinearConfig::new(i, o).init(device)
}

impl PolicyNet {
    /// A freshly initialised network of `shape` on `device`.
    pub fn new(shape: NetShape, device: &Device) -> Self {
        let h = shape.hidden;
        Self {
            state1: linear(shape.state_dim, h, device),
            state2: linear(h, h, device),
            action1: linear(shape.action_dim, h, device),
            score1: linear(3 * h, h, device),
            score2: linear(h, 1, device),
            critic1: linear(shape.state_dim, h, device),
            critic2: linear(h, h, device),
            critic3: linear(h, 1, device),
        }
    }

    /// The shape this network was built with.
    pub fn shape(&self) -> NetShape {
        let [state_dim, hidden] = self.state1.weight.dims();
        let [action_dim, _] = self.action1.weight.dims();
        NetShape {
            state_dim,
            action_dim,
            hidden,
        }
    }

    /// Forward pass over a dense batch on `device`.
    pub fn forward(&self, batch: &DenseBatch, device: &Device) -> NetOutput {
        let b = batch.batch;
        let a = batch.slots;
        let h = self.shape().hidden;
        let state = Tensor::<2>::from_data(
            TensorData::new(batch.state.clone(), [b, batch.state_dim]),
            device,
        );
        let actions = Tensor::<2>::from_data(
            TensorData::new(batch.actions.clone(), [b * a, batch.action_dim]),
            device,
        );
        let mask = Tensor::<2>::from_data(TensorData::new(batch.mask.clone(), [b, a]), device);

        let s = tanh(
            self.state2
                .forward(tanh(self.state1.forward(state.clone()))),
        );
        let act = tanh(self.action1.forward(actions));
        let s_rep = s.unsqueeze_dim::<3>(1).repeat_dim(1, a).reshape([b * a, h]);
        let joint = Tensor::cat(vec![s_rep.clone(), act.clone(), s_rep * act], 1);
        let logits = self
            .score2
            .forward(tanh(self.score1.forward(joint)))
            .reshape([b, a]);
        let logits = logits + (mask - 1.0) * 1e9;
        let log_probs = log_softmax(logits, 1);

        let v = tanh(self.critic1.forward(state));
        let v = tanh(self.critic2.forward(v));
        let values = self.critic3.forward(v).reshape([b]);
        NetOutput { log_probs, values }
    }
}

/// A dense layer in plain Rust: `y = x W + b`, `W` row-major `[input, output]`.
#[derive(Debug, Clone, Default)]
struct Dense {
    input: usize,
    output: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    let data = t.into_data().convert::<f32>();
    data.as_slice::<f32>()
        .map(<[f32]>::to_vec)
        .unwrap_or_default()
}

impl Dense {
    fn from_linear(l: &Linear) -> Self {
        let [input, output] = l.weight.dims();
        let weight = tensor_values(l.weight.val());
        let bias = l
            .bias
            .as_ref()
            .map(|b| tensor_values(b.val()))
            .unwrap_or(vec![0.0; output]);
        Self {
            input,
            output,
            weight,
            bias,
        }
    }

    fn dense(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        for (i, &xi) in x.iter().enumerate().take(self.input) {
            if xi == 0.0 {
                continue;
            }
            let row = &self.weight[i * self.output..(i + 1) * self.output];
            for (o, w) in out.iter_mut().zip(row) {
                *o += xi * w;
            }
        }
    }

    fn sparse(&self, x: &SparseVec, out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        for &(i, xi) in x {
            let i = i as usize;
            if i >= self.input {
                continue;
            }
            let row = &self.weight[i * self.output..(i + 1) * self.output];
            for (o, w) in out.iter_mut().zip(row) {
                *o += xi * w;
            }
        }
    }
}

fn tanh_in_place(v: &mut [f32]) {
    for x in v {
        *x = x.tanh();
    }
}

/// A plain-Rust copy of a [`PolicyNet`] for fast single-decision inference.
#[derive(Debug, Clone, Default)]
pub struct NativeNet {
    state1: Dense,
    state2: Dense,
    action1: Dense,
    score1: Dense,
    score2: Dense,
    critic1: Dense,
    critic2: Dense,
    critic3: Dense,
}

/// Log-probabilities over the admissible actions and the state value of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// One log-probability per admissible action.
    pub log_probs: Vec<f32>,
    /// The critic's value of the state.
    pub value: f32,
}

impl NativeNet {
    /// Copies the weights of `net`.
    pub fn from_net(net: &PolicyNet) -> Self {
        Self {
            state1: Dense::from_linear(&net.state1),
            state2: Dense::from_linear(&net.state2),
            action1: Dense::from_linear(&net.action1),
            score1: Dense::from_linear(&net.score1),
            score2: Dense::from_linear(&net.score2),
            critic1: Dense::from_linear(&net.critic1),
            critic2: Dense::from_linear(&net.critic2),
            critic3: Dense::from_linear(&net.critic3),
        }
    }

    /// The critic's value of a state.
    pub fn value(&self, state: &SparseVec) -> f32 {
        let mut a = Vec::new();
        let mut b = Vec::new();
        self.critic1.sparse(state, &mut a);
        tanh_in_place(&mut a);
        self.critic2.dense(&a, &mut b);
        tanh_in_place(&mut b);
        self.critic3.dense(&b, &mut a);
        a[0]
    }

    /// Action log-probabilities and value for one state and its admissible actions.
    pub fn decide(&self, state: &SparseVec, actions: &[SparseVec]) -> Decision {
        let h = self.state2.output;
        let mut t = Vec::new();
        let mut s = Vec::new();
        self.state1.sparse(state, &mut t);
        tanh_in_place(&mut t);
        self.state2.dense(&t, &mut s);
        tanh_in_place(&mut s);
        let mut joint = vec![0.0; 3 * h];
        joint[..h].copy_from_slice(&s);
        let mut act = Vec::new();
        let mut hid = Vec::new();
        let mut out = Vec::new();
        let mut logits = Vec::with_capacity(actions.len());
        for feats in actions {
            self.action1.sparse(feats, &mut act);
            tanh_in_place(&mut act);
            joint[h..2 * h].copy_from_slice(&act);
            for k in 0..h {
                joint[2 * h + k] = s[k] * act[k];
            }
            self.score1.dense(&joint, &mut hid);
            tanh_in_place(&mut hid);
            self.score2.dense(&hid, &mut out);
            logits.push(out[0]);
        }
        Decision {
            log_probs: log_softmax_vec(&logits),
            value: self.value(state),
        }
    }
}

/// Log-softmax of a slice (empty for an empty slice).
pub fn log_softmax_vec(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|x| (x - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|x| x - lse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::DenseBatch;

    #[test]
    fn native_twin_matches_burn_forward() {
        let device = Device::flex();
        device.seed(7);
        let shape = NetShape {
            state_dim: 12,
            action_dim: 6,
            hidden: 8,
        };
        let net = PolicyNet::new(shape, &device);
        assert_eq!(net.shape(), shape);
        let native = NativeNet::from_net(&net);
        let states: Vec<SparseVec> = vec![vec![(0, 1.0), (5, 0.5)], vec![(11, 0.7)]];
        let actions: Vec<Vec<SparseVec>> = vec![
            vec![vec![(0, 1.0)], vec![(2, 0.3), (5, 1.0)], vec![(4, 1.0)]],
            vec![vec![(1, 1.0)]],
        ];
        let batch = DenseBatch::build(
            shape,
            states.iter().zip(&actions).map(|(s, a)| (s, a.as_slice())),
        );
        let out = net.forward(&batch, &device);
        let lp = tensor_values(out.log_probs);
        let vals = tensor_values(out.values);
        for (b, (s, acts)) in states.iter().zip(&actions).enumerate() {
            let d = native.decide(s, acts);
            assert!(
                (d.value - vals[b]).abs() < 1e-4,
                "value {} vs {}",
                d.value,
                vals[b]
            );
            for (k, x) in d.log_probs.iter().enumerate() {
                let y = lp[b * batch.slots + k];
                assert!((x - y).abs() < 1e-4, "logp {x} vs {y}");
            }
            let total: f32 = d.log_probs.iter().map(|x| x.exp()).sum();
            assert!((total - 1.0).abs() < 1e-5);
            // padded slots get no probability
            for k in acts.len()..batch.slots {
                assert!(lp[b * batch.slots + k] < -1e6);
            }
        }
    }
}
