//! Backend selection by cargo feature, with no code change elsewhere.
//!
//! burn 0.22 tensors carry their backend in their [`Device`] (the dispatch API), so model code has
//! no backend type parameter; only the device constructor differs:
//!
//! | cargo feature | backend | device |
//! |---------------|---------|--------|
//! | (none)        | flex, burn's pure-Rust CPU backend (with `rayon` and `simd`) | `Device::flex()` |
//! | `wgpu`        | wgpu (Vulkan/Metal/DX12; lavapipe in CI) | `Device::wgpu(DeviceKind::DefaultDevice)` |
//! | `cuda`        | CUDA through cubecl | `Device::cuda(0)` |
//!
//! When several features are on, CUDA wins over wgpu, which wins over the CPU. `wgpu` and `cuda`
//! share one code path: both are cubecl runtimes behind the same dispatch device. Building `cuda`
//! needs network access once (cubecl's build script downloads an LLVM bundle), so it is never
//! built offline or in CI.
//!
//! Inference runs on a plain device; training needs the autodiff decoration of the same device
//! ([`autodiff_device`]). A module trained on the autodiff device becomes an inference module
//! with `Module::valid()`.

pub use burn::tensor::Device;

/// The device this build computes on: CUDA, else wgpu, else the flex CPU backend.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        Device::flex()
    }
}

/// The device for inference and evaluation: [`default_device`] without autodiff, so no graph
/// is recorded.
pub fn inference_device() -> Device {
    default_device()
}

/// The device for training: [`default_device`] with autodiff, so tensors created on it (and
/// parameters of modules built on it) record gradients.
pub fn autodiff_device() -> Device {
    default_device().autodiff()
}

/// A short name of the backend this build selects, for logs and benchmark reports.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "flex-cpu"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autodiff_device_is_autodiff_and_inference_is_not() {
        assert!(autodiff_device().is_autodiff());
        assert!(!inference_device().is_autodiff());
        assert_eq!(autodiff_device(), inference_device());
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        assert_eq!(backend_name(), "flex-cpu");
    }
}
