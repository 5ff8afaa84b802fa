//! AdamW, the learning-rate schedule and gradient clipping, computed on the host.
//!
//! Parameters, gradients and moments are keyed by the parameter's module path
//! (`layers.0.self_attn.q_proj.weight`), not by burn's `ParamId`, so optimizer state survives a
//! checkpoint round trip (ids are regenerated on load). The update runs on host `f32` vectors:
//! deterministic, bit-exact after resume, and trivially serialisable. It costs a device→host→
//! device copy of the trainable parameters per step (negligible for the CPU presets and for LoRA
//! adapters; a device-side path would be the next step for full fine-tuning on GPUs).

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::{Decay, TrainConfig};

/// Per-parameter host gradients, summed over the micro-batches of a step.
pub type HostGrads = BTreeMap<String, Vec<f32>>;

struct Path(Vec<String>);

impl Path {
    fn join(&self, leaf: &str) -> String {
        let mut parts = self.0.clone();
        if !leaf.is_empty() {
            parts.push(leaf.to_owned());
        }
        parts.join(".")
    }
}

/// Collects the trainable (require-grad) parameters' gradients into host vectors, adding to
/// what is there.
struct GradCollector<'a> {
    path: Path,
    grads: &'a GradientsParams,
    out: &'a mut HostGrads,
}

impl ModuleVisitor for GradCollector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.0.push(name.to_owned());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.0.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.get::<D>(param.id) else {
            return;
        };
        let values = grad
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 gradient");
        let key = self.path.join("");
        match self.out.get_mut(&key) {
            Some(acc) => acc.iter_mut().zip(&values).for_each(|(a, v)| *a += v),
            None => {
                self.out.insert(key, values);
            }
        }
    }
}

/// Add the gradients of `model`'s trainable parameters to `out`.
pub fn collect_grads<M: Module>(model: &M, grads: &GradientsParams, out: &mut HostGrads) {
    model.visit(&mut GradCollector {
        path: Path(Vec::new()),
        grads,
        out,
    });
}

/// All float parameters of a module as host vectors, keyed by path (for tests and checks).
pub fn param_values<M: Module>(model: &M) -> BTreeMap<String, Vec<f32>> {
    struct V {
        path: Path,
        out: BTreeMap<String, Vec<f32>>,
    }
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.0.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v = param
                .val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 parameter");
            self.out.insert(self.path.join(""), v);
        }
    }
    let mut v = V {
        path: Path(Vec::new()),
        out: BTreeMap::new(),
    };
    model.visit(&mut v);
    v.out
}

/// Re-initialise every matrix (rank ≥ 2, including embeddings and adapter `A` factors that are
/// not all zero) with `N(0, std²)` drawn from a counter-based generator keyed by `(seed, path)`,
/// leaving vectors (norm weights) and all-zero tensors (LoRA `B`) as they are. The result depends
/// only on the seed, not on thread scheduling or on the backend's global RNG.
pub fn seeded_init<M: Module>(model: M, seed: u64, std: f64) -> M {
    struct Init {
        path: Path,
        seed: u64,
        std: f64,
    }
    impl ModuleMapper for Init {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.0.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.0.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if D < 2 {
                return param;
            }
            let key = self.path.join("");
            let mut h: u64 = 0xcbf29ce484222325;
            for b in key.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
            }
            let (seed, std) = (self.seed, self.std);
            param.map(|t| {
                let device = t.device();
                let require_grad = t.is_require_grad();
                let shape = t.shape();
                let old = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
                if old.iter().all(|&x| x == 0.0) {
                    let new = Tensor::<D>::from_data(TensorData::new(old, shape), &device);
                    return if require_grad {
                        new.require_grad()
                    } else {
                        new
                    };
                }
                let mut state =
                    rung_curriculum::rng::Rng::new(rung_curriculum::rng::mix(&[seed, h]));
                let mut uniform = || ((state.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                let values: Vec<f32> = (0..old.len())
                    .map(|_| {
                        let (u1, u2) = (uniform(), uniform());
                        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std)
                            as f32
                    })
                    .collect();
                let new = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
                if require_grad {
                    new.require_grad()
                } else {
                    new
                }
            })
        }
    }
    model.map(&mut Init {
        path: Path(Vec::new()),
        seed,
        std,
    })
}

/// Whether weight decay applies to a parameter: matrices only, and not embeddings (norms and
/// biases are vectors).
pub fn decays(path: &str, dims: usize) -> bool {
    dims >= 2 && !path.contains("embed")
}

/// AdamW moments of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
}

/// Host AdamW (decoupled weight decay, bias-corrected).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdamW {
    /// Moments by parameter path (only trainable parameters ever get one).
    pub moments: BTreeMap<String, Moments>,
    /// Optimizer steps taken.
    pub step: u64,
}

/// Hyper-parameters of one update.
#[derive(Debug, Clone, Copy)]
pub struct AdamWParams {
    /// Learning rate of this step.
    pub lr: f64,
    /// Betas.
    pub betas: (f64, f64),
    /// Epsilon.
    pub eps: f64,
    /// Weight decay (for parameters where [`decays`]).
    pub weight_decay: f64,
}

struct Updater<'a> {
    path: Path,
    grads: &'a HostGrads,
    opt: &'a mut AdamW,
    hp: AdamWParams,
}

impl ModuleMapper for Updater<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.0.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.0.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path.join("");
        let Some(grad) = self.grads.get(&key) else {
            return param;
        };
        let hp = self.hp;
        let t = self.opt.step as i32;
        let moments = self
            .opt
            .moments
            .entry(key.clone())
            .or_insert_with(|| Moments {
                m: vec![0.0; grad.len()],
                v: vec![0.0; grad.len()],
            });
        param.map(|tensor| {
            let device = tensor.device();
            let require_grad = tensor.is_require_grad();
            let shape = tensor.shape();
            let mut w = tensor
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 parameter");
            let (b1, b2) = hp.betas;
            let bc1 = 1.0 - b1.powi(t);
            let bc2 = 1.0 - b2.powi(t);
            let lr = hp.lr as f32;
            let wd = if decays(&key, shape.num_dims()) {
                hp.weight_decay as f32
            } else {
                0.0
            };
            let (b1f, b2f, eps) = (b1 as f32, b2 as f32, hp.eps as f32);
            let (bc1, bc2) = (bc1 as f32, bc2 as f32);
            for i in 0..w.len() {
                let g = grad[i];
                let m = b1f * moments.m[i] + (1.0 - b1f) * g;
                let v = b2f * moments.v[i] + (1.0 - b2f) * g * g;
                moments.m[i] = m;
                moments.v[i] = v;
                let update = (m / bc1) / ((v / bc2).sqrt() + eps);
                w[i] -= lr * (update + wd * w[i]);
            }
            let new = Tensor::<D>::from_data(TensorData::new(w, shape), &device);
            if require_grad {
                new.require_grad()
            } else {
                new
            }
        })
    }
}

impl AdamW {
    /// Apply one update with `grads` (already clipped) to the trainable parameters of `model`.
    pub fn step<M: Module>(&mut self, model: M, grads: &HostGrads, hp: AdamWParams) -> M {
        self.step += 1;
        model.map(&mut Updater {
            path: Path(Vec::new()),
            grads,
            opt: self,
            hp,
        })
    }
}

/// Global L2 norm of the gradients.
pub fn grad_norm(grads: &HostGrads) -> f64 {
    grads
        .values()
        .flat_map(|g| g.iter())
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Scale gradients so that their global norm is at most `max_norm` (0: no clipping). Returns
/// the norm before clipping.
pub fn clip(grads: &mut HostGrads, max_norm: f64) -> f64 {
    let norm = grad_norm(grads);
    if max_norm > 0.0 && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        grads
            .values_mut()
            .for_each(|g| g.iter_mut().for_each(|x| *x *= scale));
    }
    norm
}

/// The learning rate of optimizer step `step` (0-based) of `total`: linear warmup over
/// `warmup_steps` (step `s` gets `lr · (s+1) / warmup`), then the decay to `min_lr_ratio · lr`
/// at the last step.
pub fn lr_at(config: &TrainConfig, step: usize, total: usize) -> f64 {
    let peak = config.lr;
    let warmup = config.warmup_steps;
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let floor = peak * config.min_lr_ratio;
    let span = total.saturating_sub(warmup).saturating_sub(1).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
    match config.decay {
        Decay::Constant => peak,
        Decay::Linear => peak - (peak - floor) * progress,
        Decay::Cosine => {
            floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Serialisable optimizer state (moments as raw bytes in the checkpoint's `trainer.bin`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MomentsIndex {
    /// Parameter path.
    pub path: String,
    /// Number of values.
    pub len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let mut c = TrainConfig::new("d", "o");
        c.lr = 1.0;
        c.warmup_steps = 4;
        c.min_lr_ratio = 0.1;
        let lrs: Vec<f64> = (0..14).map(|s| lr_at(&c, s, 14)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert!((lrs[4] - 1.0).abs() < 1e-12 && (lrs[13] - 0.1).abs() < 1e-12);
        assert!(lrs[4..].windows(2).all(|w| w[1] <= w[0]));
        c.decay = Decay::Linear;
        assert!((lr_at(&c, 8, 14) - (1.0 - 0.9 * 4.0 / 9.0)).abs() < 1e-12);
        c.decay = Decay::Constant;
        assert_eq!(lr_at(&c, 13, 14), 1.0);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut g = HostGrads::new();
        g.insert("a".into(), vec![3.0, 0.0]);
        g.insert("b".into(), vec![0.0, 4.0]);
        assert_eq!(clip(&mut g, 1.0), 5.0);
        assert!((grad_norm(&g) - 1.0).abs() < 1e-5);
        assert_eq!(clip(&mut g, 0.0), grad_norm(&g));
    }

    #[test]
    fn decay_skips_vectors_and_embeddings() {
        assert!(decays("layers.0.mlp.up_proj.weight", 2));
        assert!(!decays("layers.0.input_layernorm.gamma", 1));
        assert!(!decays("layers.0.self_attn.q_proj.bias", 1));
        assert!(!decays("embed_tokens.weight", 2));
    }
}
