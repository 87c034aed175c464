//! The clipped policy objective shared by PPO and GRPO, and the epoch/minibatch loop that runs
//! it: one gradient step ([`minibatch_step`]: clipped surrogate, (clipped) value loss, entropy
//! bonus, optional KL to a reference policy, global-norm gradient clipping and a finite check
//! before the optimizer touches the weights), behaviour cloning's step ([`bc_step`]), and
//! [`optimise`]: shuffled passes of minibatches.

use crate::PolicyError;
use crate::batch::{DenseBatch, SlotCount};
use crate::net::PolicyNet;
use crate::rollout::Decided;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Coefficients of the loss. Every field is optional in a config file (`loss: (ent_coef: 0.02)`
/// keeps the other defaults: CleanRL's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Surrogate clip range.
    pub clip: f32,
    /// Clip the value loss around the old values (CleanRL's `clip_vloss`).
    pub clip_value: bool,
    /// Value-loss coefficient (0: no critic, as in GRPO).
    pub vf_coef: f32,
    /// Entropy bonus coefficient.
    pub ent_coef: f32,
    /// KL-to-reference coefficient (GRPO; 0 = off).
    pub kl_coef: f32,
    /// Global gradient-norm limit.
    pub max_grad_norm: f32,
}

impl LossConfig {
    /// Checks every coefficient's range (NaN and infinities included): the first one outside
    /// is the error, named as in the config (`loss.clip`).
    pub fn validate(&self) -> Result<(), String> {
        let in_range = |name: &str, x: f32, ok: bool, allowed: &str| {
            if x.is_finite() && ok {
                Ok(())
            } else {
                Err(format!("`loss.{name}` must be {allowed}, got {x}"))
            }
        };
        in_range(
            "clip",
            self.clip,
            self.clip > 0.0,
            "a number > 0 (e.g. 0.2)",
        )?;
        in_range(
            "vf_coef",
            self.vf_coef,
            self.vf_coef >= 0.0,
            "a number >= 0",
        )?;
        in_range(
            "ent_coef",
            self.ent_coef,
            self.ent_coef >= 0.0,
            "a number >= 0",
        )?;
        in_range(
            "kl_coef",
            self.kl_coef,
            self.kl_coef >= 0.0,
            "a number >= 0",
        )?;
        in_range(
            "max_grad_norm",
            self.max_grad_norm,
            self.max_grad_norm > 0.0,
            "a number > 0 (e.g. 0.5)",
        )
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            clip: 0.2,
            clip_value: true,
            vf_coef: 0.5,
            ent_coef: 0.01,
            kl_coef: 0.0,
            max_grad_norm: 0.5,
        }
    }
}

/// One training sample: a decision with its advantage and return target.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The decision.
    pub decided: &'a Decided,
    /// Its advantage.
    pub advantage: f32,
    /// Its return target for the critic.
    pub ret: f32,
}

/// Diagnostics of one minibatch step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Clipped surrogate loss.
    pub policy_loss: f32,
    /// Value loss.
    pub value_loss: f32,
    /// Mean policy entropy.
    pub entropy: f32,
    /// Approximate KL between the old and new policy (`(r - 1) - ln r`).
    pub approx_kl: f32,
    /// Fraction of samples whose ratio was clipped.
    pub clip_frac: f32,
    /// KL to the reference policy (k3 estimator).
    pub ref_kl: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
}

struct GradNorm<'a> {
    grads: &'a GradientsParams,
    sum_sq: f32,
}

impl ModuleVisitor for GradNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum_sq += g.square().sum().into_scalar::<f32>();
        }
    }
}

struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    scale: f32,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g * self.scale);
        }
    }
}

fn vector(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::<1>::from_data(TensorData::new(values, [n]), device)
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}

/// Densifies the samples' decisions for `net` and one-hot encodes the chosen actions.
fn chosen_batch(
    net: &PolicyNet,
    samples: &[Sample<'_>],
    device: &Device,
) -> (DenseBatch, Tensor<2>) {
    let batch = DenseBatch::build_with_slots(
        net.shape(),
        samples.iter().map(|s| {
            (
                &s.decided.encoded.state,
                s.decided.encoded.actions.as_slice(),
            )
        }),
        SlotCount::for_device(device),
    );
    let chosen: Vec<usize> = samples.iter().map(|s| s.decided.action).collect();
    let one_hot = Tensor::<2>::from_data(
        TensorData::new(batch.one_hot(&chosen), [batch.batch, batch.slots]),
        device,
    );
    (batch, one_hot)
}

/// The gradients of `net`, rescaled to global norm at most `max_norm`, and the norm before
/// rescaling; an error when that norm is not finite.
fn clipped_gradients(
    net: &PolicyNet,
    grads: burn::tensor::Gradients,
    max_norm: f32,
) -> Result<(GradientsParams, f32), PolicyError> {
    let mut grads = GradientsParams::from_grads(grads, net);
    let mut norm = GradNorm {
        grads: &grads,
        sum_sq: 0.0,
    };
    net.visit(&mut norm);
    let grad_norm = norm.sum_sq.sqrt();
    if !grad_norm.is_finite() {
        return Err(PolicyError::NonFinite {
            what: "gradient norm".into(),
            value: grad_norm,
        });
    }
    if grad_norm > max_norm {
        let mut scale = GradScale {
            grads: &mut grads,
            scale: max_norm / (grad_norm + 1e-6),
        };
        net.visit(&mut scale);
    }
    Ok((grads, grad_norm))
}

/// Takes one optimizer step on `samples`; returns the updated network, or an error (and the
/// network untouched, since the caller keeps its copy) when the loss or gradient is not finite.
/// With `critic_only` the loss is the value loss alone: the actor's parameters get no gradient,
/// so the optimizer leaves them (and their moments) as they are.
pub fn minibatch_step(
    net: PolicyNet,
    optim: &mut ModuleOptimizer,
    samples: &[Sample<'_>],
    loss_cfg: &LossConfig,
    lr: f64,
    critic_only: bool,
    device: &Device,
) -> Result<(PolicyNet, StepStats), PolicyError> {
    let (batch, one_hot) = chosen_batch(&net, samples, device);
    let b = batch.batch;
    let old_logp = vector(samples.iter().map(|s| s.decided.log_prob).collect(), device);
    let ref_logp = vector(
        samples.iter().map(|s| s.decided.ref_log_prob).collect(),
        device,
    );
    let adv = vector(samples.iter().map(|s| s.advantage).collect(), device);
    let ret = vector(samples.iter().map(|s| s.ret).collect(), device);
    let old_v = vector(samples.iter().map(|s| s.decided.value).collect(), device);

    let out = net.forward(&batch, device);
    let logp = (out.log_probs.clone() * one_hot).sum_dim(1).reshape([b]);
    let log_ratio = logp.clone() - old_logp;
    let ratio = log_ratio.clone().exp();
    let c = loss_cfg.clip;
    let pg1 = -adv.clone() * ratio.clone();
    let pg2 = -adv * ratio.clone().clamp(1.0 - c, 1.0 + c);
    let policy_loss = pg1.max_pair(pg2).mean();

    let probs = out.log_probs.clone().exp();
    let entropy = -(probs * out.log_probs).sum_dim(1).mean();

    let value_loss = if loss_cfg.clip_value {
        let unclipped = (out.values.clone() - ret.clone()).square();
        let clipped_v = old_v.clone() + (out.values - old_v).clamp(-c, c);
        let clipped = (clipped_v - ret).square();
        unclipped.max_pair(clipped).mean() * 0.5
    } else {
        (out.values - ret).square().mean() * 0.5
    };

    let d_ref = ref_logp - logp;
    let ref_kl = (d_ref.clone().exp() - d_ref - 1.0).mean();

    let mut loss = if critic_only {
        // the actor's outputs stay out of the graph: no gradient reaches its parameters
        value_loss.clone() * loss_cfg.vf_coef
    } else {
        policy_loss.clone() - entropy.clone() * loss_cfg.ent_coef
    };
    if !critic_only && loss_cfg.vf_coef != 0.0 {
        loss = loss + value_loss.clone() * loss_cfg.vf_coef;
    }
    if !critic_only && loss_cfg.kl_coef != 0.0 {
        loss = loss + ref_kl.clone() * loss_cfg.kl_coef;
    }

    let loss_value = scalar(loss.clone());
    if !loss_value.is_finite() {
        return Err(PolicyError::NonFinite {
            what: "loss".into(),
            value: loss_value,
        });
    }
    let grads = loss.backward();
    let (grads, grad_norm) = clipped_gradients(&net, grads, loss_cfg.max_grad_norm)?;

    let stats = StepStats {
        policy_loss: scalar(policy_loss.detach()),
        value_loss: scalar(value_loss.detach()),
        entropy: scalar(entropy.detach()),
        approx_kl: scalar(((ratio.clone() - 1.0) - log_ratio).detach().mean()),
        clip_frac: scalar((ratio.detach() - 1.0).abs().greater_elem(c).float().mean()),
        ref_kl: scalar(ref_kl.detach()),
        grad_norm,
    };
    let net = optim.step(lr, net, grads);
    Ok((net, stats))
}

/// One behaviour-cloning step: maximise the log-probability of the demonstrated actions and fit
/// the critic to the demonstrations' discounted returns (`Sample::ret`). Returns the updated
/// network and the mean negative log-likelihood.
pub fn bc_step(
    net: PolicyNet,
    optim: &mut ModuleOptimizer,
    samples: &[Sample<'_>],
    max_grad_norm: f32,
    lr: f64,
    device: &Device,
) -> Result<(PolicyNet, f32), PolicyError> {
    let (batch, one_hot) = chosen_batch(&net, samples, device);
    let ret = vector(samples.iter().map(|s| s.ret).collect(), device);
    let out = net.forward(&batch, device);
    let nll = -(out.log_probs * one_hot).sum_dim(1).mean();
    let value_loss = (out.values - ret).square().mean() * 0.5;
    let loss = nll.clone() + value_loss;
    let loss_value = scalar(loss.clone());
    if !loss_value.is_finite() {
        return Err(PolicyError::NonFinite {
            what: "behaviour-cloning loss".into(),
            value: loss_value,
        });
    }
    let (grads, _) = clipped_gradients(&net, loss.backward(), max_grad_norm)?;
    let nll = scalar(nll.detach());
    Ok((optim.step(lr, net, grads), nll))
}

/// Averages step statistics.
pub fn mean_stats(stats: &[StepStats]) -> StepStats {
    let n = stats.len().max(1) as f32;
    let mut m = StepStats::default();
    for s in stats {
        m.policy_loss += s.policy_loss / n;
        m.value_loss += s.value_loss / n;
        m.entropy += s.entropy / n;
        m.approx_kl += s.approx_kl / n;
        m.clip_frac += s.clip_frac / n;
        m.ref_kl += s.ref_kl / n;
        m.grad_norm += s.grad_norm / n;
    }
    m
}
/// Normalises advantages to mean 0 and standard deviation 1 (CleanRL's `norm_adv`).
fn normalise(samples: &mut [Sample<'_>]) {
    let n = samples.len() as f32;
    if samples.len() < 2 {
        return;
    }
    let mean = samples.iter().map(|s| s.advantage).sum::<f32>() / n;
    let var = samples
        .iter()
        .map(|s| (s.advantage - mean).powi(2))
        .sum::<f32>()
        / (n - 1.0);
    let std = var.sqrt();
    for s in samples {
        s.advantage = (s.advantage - mean) / (std + 1e-8);
    }
}

/// Settings of the epoch/minibatch loop.
#[derive(Debug, Clone, Copy)]
pub struct EpochPlan {
    /// Passes over the data.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Normalise advantages per minibatch.
    pub norm_adv: bool,
    /// Learning rate of this iteration.
    pub lr: f64,
    /// Train the critic only, the policy frozen (sim-to-real's critic warm-up).
    pub critic_only: bool,
}

/// Runs `plan.epochs` shuffled passes of minibatch steps over `samples`.
pub fn optimise(
    net: PolicyNet,
    optim: &mut ModuleOptimizer,
    samples: &[Sample<'_>],
    loss: &LossConfig,
    plan: EpochPlan,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<(PolicyNet, Vec<StepStats>), PolicyError> {
    let mb_size = samples.len().div_ceil(plan.minibatches.max(1));
    let (net, per_epoch) = run_epochs(net, samples, plan.epochs, mb_size, rng, |net, mb| {
        let mut mb = mb.to_vec();
        if plan.norm_adv {
            normalise(&mut mb);
        }
        minibatch_step(net, optim, &mb, loss, plan.lr, plan.critic_only, device)
    })?;
    Ok((net, per_epoch.into_iter().flatten().collect()))
}

/// The epoch/minibatch loop every update shares (PPO, GRPO, behaviour cloning): `epochs`
/// passes over `samples` in a fresh shuffled order each, in minibatches of `mb_size` (at least
/// 1), each given to `step`; returns the trained network and what `step` reported, per epoch.
pub fn run_epochs<T>(
    mut net: PolicyNet,
    samples: &[Sample<'_>],
    epochs: usize,
    mb_size: usize,
    rng: &mut impl Rng,
    mut step: impl FnMut(PolicyNet, &[Sample<'_>]) -> Result<(PolicyNet, T), PolicyError>,
) -> Result<(PolicyNet, Vec<Vec<T>>), PolicyError> {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let mut out = vec![];
    for _ in 0..epochs {
        order.shuffle(rng);
        let mut this_epoch = vec![];
        for chunk in order.chunks(mb_size.max(1)) {
            let mb: Vec<Sample<'_>> = chunk.iter().map(|&i| samples[i]).collect();
            let (next, t) = step(net, &mb)?;
            net = next;
            this_epoch.push(t);
        }
        out.push(this_epoch);
    }
    Ok((net, out))
}
