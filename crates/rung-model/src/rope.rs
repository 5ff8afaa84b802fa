//! Rotary position embeddings in the Hugging Face "rotate half" convention.
//!
//! HF Qwen2/Llama rotate the pair `(x[i], x[i + d/2])` of each head by the angle
//! `position · inv_freq[i]`, `inv_freq[i] = theta^(-2i/d)`; burn-nn's `RotaryEncoding` rotates
//! adjacent pairs `(x[2i], x[2i+1])` instead, which would need permuted q/k weights to load HF
//! checkpoints. Angles are computed from explicit position ids on every forward rather than read
//! from a table, so positions are not capped and packed samples can restart their positions.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::{ModelConfig, RopeScaling};

/// The inverse frequencies of the rotary embedding (a constant, not a parameter).
#[derive(Module, Debug)]
pub struct RotaryEmbedding {
    /// `[head_dim / 2]` inverse frequencies, after any long-context rescaling.
    inv_freq: Tensor<1>,
}

/// Cosines and sines for one forward pass, shared by every layer: `[batch, 1, seq, head_dim]`.
#[derive(Debug, Clone)]
pub struct RopeAngles {
    /// `cos(position · inv_freq)`, duplicated over both halves of the head.
    pub cos: Tensor<4>,
    /// `sin(position · inv_freq)`, duplicated over both halves of the head.
    pub sin: Tensor<4>,
}

/// Inverse frequencies `theta^(-2i/d)` for `i < d/2`, rescaled as the config says. Computed in
/// f64 and rounded once to f32, which is within one ulp of transformers' f32 computation.
pub fn inverse_frequencies(config: &ModelConfig) -> Vec<f32> {
    let dim = config.head_dim;
    let base: Vec<f64> = (0..dim / 2)
        .map(|i| 1.0 / config.rope_theta.powf((2 * i) as f64 / dim as f64))
        .collect();
    let scaled = match config.rope_scaling {
        None => base,
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            let old_context = original_max_position_embeddings as f64;
            let low_freq_wavelen = old_context / low_freq_factor;
            let high_freq_wavelen = old_context / high_freq_factor;
            base.into_iter()
                .map(|freq| {
                    let wavelen = 2.0 * std::f64::consts::PI / freq;
                    if wavelen < high_freq_wavelen {
                        freq
                    } else if wavelen > low_freq_wavelen {
                        freq / factor
                    } else {
                        let smooth = (old_context / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * freq / factor + smooth * freq
                    }
                })
                .collect()
        }
    };
    scaled.into_iter().map(|f| f as f32).collect()
}

impl RotaryEmbedding {
    /// The rotary embedding of `config` on `device`.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let inv_freq = inverse_frequencies(config);
        let len = inv_freq.len();
        Self {
            inv_freq: Tensor::from_data(TensorData::new(inv_freq, [len]), device),
        }
    }

    /// Angles for `positions` (`[batch, seq]`), ready for [`apply_rotary`].
    pub fn angles(&self, positions: Tensor<2, Int>) -> RopeAngles {
        let [batch, seq] = positions.dims();
        let [half] = self.inv_freq.dims();
        let freqs = positions.float().reshape([batch, seq, 1])
            * self.inv_freq.clone().reshape([1, 1, half]);
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2).unsqueeze_dim::<4>(1);
        RopeAngles {
            cos: emb.clone().cos(),
            sin: emb.sin(),
        }
    }
}

/// Rotate `x` (`[batch, heads, seq, head_dim]`): `x·cos + rotate_half(x)·sin`, where
/// `rotate_half(x) = [-x2, x1]` for the halves `x1, x2` of the head dimension.
pub fn apply_rotary(x: Tensor<4>, angles: &RopeAngles) -> Tensor<4> {
    let [_, _, _, dim] = x.dims();
    let half = dim / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * angles.cos.clone() + rotated * angles.sin.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_matches_closed_form() {
        let device = Device::flex();
        let mut config = ModelConfig::preset("tiny").unwrap();
        config.head_dim = 4;
        let rope = RotaryEmbedding::new(&config, &device);
        let positions = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64], [1, 1]), &device);
        let angles = rope.angles(positions);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 1, 4]),
            &device,
        );
        let out: Vec<f32> = apply_rotary(x, &angles).try_into_vec_as::<f32>().unwrap();
        let f = [1.0f64, 1.0 / 10_000f64.powf(0.5)];
        let (a0, a1) = (3.0 * f[0], 3.0 * f[1]);
        let expected = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + 1.0 * a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        for (got, want) in out.iter().zip(expected) {
            assert!(
                (f64::from(*got) - want).abs() < 1e-5,
                "{out:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn llama3_scaling_divides_low_frequencies() {
        let mut config = ModelConfig::preset("tiny").unwrap();
        let plain = inverse_frequencies(&config);
        config.rope_scaling = Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        });
        let scaled = inverse_frequencies(&config);
        // Highest frequency (wavelength 2π < 16) untouched, lowest divided by the factor.
        assert_eq!(plain[0], scaled[0]);
        let last = plain.len() - 1;
        assert!((plain[last] / 8.0 - scaled[last]).abs() < 1e-12);
    }
}
