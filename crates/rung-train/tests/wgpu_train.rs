//! The trainer on the wgpu backend takes the same steps as on the CPU.
//!
//! Only built with `--features wgpu`. Without a GPU it runs on Mesa's software Vulkan driver
//! (lavapipe), which is how CI exercises the GPU training path:
//!
//! ```sh
//! XDG_RUNTIME_DIR=/tmp CARGO_TARGET_DIR=target-wgpu cargo test -p rung-model -p rung-train \
//!     --features rung-model/wgpu,rung-train/wgpu --test wgpu_smoke --test wgpu_train
//! ```
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::Device;
use rung_train::Trainer;
use rung_train::optim::param_values;

use common::{config, step_losses, tmp};

#[test]
fn training_on_wgpu_matches_the_cpu_step_for_step() {
    assert_eq!(rung_model::device::backend_name(), "wgpu");
    let dir = tmp("wgpu");
    let steps = 12;
    let mut c = config(&dir, 2);
    c.batch_size = 1;
    c.epochs = 6;
    c.warmup_steps = 2;
    c.max_grad_norm = 1.0;

    // The GPU trainer, and a twin on the CPU that starts from the very same weights (its
    // optimizer runs on the host either way; the forward and backward passes run where the
    // model lives).
    let mut gpu = Trainer::new(c.clone()).unwrap();
    assert_eq!(gpu.model().device(), rung_model::autodiff_device());
    let start = gpu.save_checkpoint().unwrap();
    let mut cpu_config = c.clone();
    cpu_config.output_dir = dir.join("cpu");
    let mut cpu = Trainer::new(cpu_config).unwrap();
    let (weights, _, _) = rung_train::checkpoint::load(&start, &Device::flex().autodiff()).unwrap();
    cpu.set_model(weights);
    assert_ne!(cpu.model().device(), gpu.model().device());

    gpu.run_steps(Some(steps)).unwrap();
    cpu.run_steps(Some(steps)).unwrap();
    assert_eq!((gpu.step(), cpu.step()), (steps, steps));

    let on_gpu = step_losses(&dir.join("run"));
    let on_cpu = step_losses(&dir.join("cpu"));
    eprintln!("wgpu {on_gpu:.4?}\ncpu  {on_cpu:.4?}");
    assert_eq!(on_gpu.len(), steps);
    for (step, (g, c)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        assert!(
            (g - c).abs() <= 1e-3 * c.abs().max(1.0),
            "step {}: wgpu loss {g} vs cpu {c}",
            step + 1
        );
    }
    let (first, last) = (on_gpu[0], on_gpu[steps - 1]);
    assert!(last < 0.6 * first, "loss falls on wgpu: {first} -> {last}");

    let (g, c) = (param_values(gpu.model()), param_values(cpu.model()));
    let worst = g
        .iter()
        .flat_map(|(k, a)| a.iter().zip(&c[k]).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    eprintln!("after {steps} steps: max |wgpu - cpu| weight difference {worst:e}");
    assert!(worst <= 1e-3, "weights drift apart: {worst}");
}
