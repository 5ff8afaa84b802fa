//! Trainer tests on the tiny preset with hand-built single-agent trajectories.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use rung_model::{LoraConfig, LoraTarget};
use rung_train::loss::{MicroBatch, micro_loss, micro_loss_dense};
use rung_train::optim::{HostGrads, collect_grads, param_values};
use rung_train::{TrainConfig, Trainer};

mod common;

use common::{TmpDir, assert_same, config, step_losses, tmp};

#[test]
fn loss_falls_and_model_reproduces_its_trajectory() {
    let dir = tmp("overfit");
    let mut c = config(&dir, 1);
    c.batch_size = 1;
    c.epochs = 40;
    c.lr = 3e-3;
    c.warmup_steps = 2;
    c.max_grad_norm = 1.0;
    c.weight_decay = 0.0;
    let mut t = Trainer::new(c).unwrap();
    let summary = t.run().unwrap();
    assert_eq!(summary.steps, 40);
    let losses = step_losses(&dir.join("run"));
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("loss {first:.4} -> {last:.4}: {losses:.3?}");
    assert!(first > 5.0, "initial loss near ln(vocab): {first}");
    assert!(last < 0.1 * first, "loss falls clearly: {first} -> {last}");

    // Greedy decoding reproduces every supervised token: teacher-forced argmax equals the target
    // on all of them, and free-running greedy from the prompt regenerates the first turn.
    let model = t.model().valid();
    let batch = t.epoch_batches(40)[0].clone();
    let mb = &MicroBatch::split(&batch, 1, false)[0];
    let ml = micro_loss(&model, mb, 1.0).unwrap();
    assert_eq!(
        ml.correct, ml.supervised,
        "greedy reproduces every supervised token"
    );
    let first_sup = mb.mask.iter().position(|&m| m == 1).unwrap();
    let turn_end = first_sup + mb.mask[first_sup..].iter().position(|&m| m == 0).unwrap();
    let mut ids: Vec<u32> = mb.ids[..first_sup].to_vec();
    while ids.len() < turn_end {
        let input: Vec<i64> = ids.iter().map(|&x| i64::from(x)).collect();
        let n = input.len();
        let x = Tensor::<2, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(input, [1, n]),
            &model.device(),
        );
        let logits = model.forward(x);
        let v = logits.dims()[2];
        let next = logits
            .slice([0..1, n - 1..n, 0..v])
            .argmax(2)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap()[0];
        ids.push(next as u32);
    }
    assert_eq!(&ids[first_sup..], &mb.ids[first_sup..turn_end]);
    assert!(dir.join("run/loss.svg").is_file() && dir.join("run/loss.png").is_file());
    assert!(dir.join("run/summary.json").is_file());
}

fn loss_and_grads(t: &Trainer, mb: &MicroBatch) -> (f64, HostGrads) {
    let ml = micro_loss(t.model(), mb, mb.supervised() as f64).unwrap();
    let g = ml.loss.backward();
    let gp = GradientsParams::from_grads(g, t.model());
    let mut grads = HostGrads::new();
    collect_grads(t.model(), &gp, &mut grads);
    (ml.loss_sum, grads)
}

#[test]
fn masked_tokens_do_not_change_loss_or_gradients() {
    let dir = tmp("mask");
    let c = config(&dir, 2);
    let t = Trainer::new(c).unwrap();
    let batch = t.epoch_batches(1)[0].clone();
    let mb = MicroBatch::split(&batch, 2, false).remove(0);
    // Append a masked 20-token turn (say, an environment observation after the last supervised
    // turn) to every row, once with content A and once with content B.
    let extend = |offset: u32| {
        let extra = 20;
        let seq = mb.seq + extra;
        let mut e = MicroBatch {
            seq,
            ids: vec![],
            mask: vec![],
            literal: vec![],
            positions: vec![],
            segments: vec![],
            ..mb.clone()
        };
        for r in 0..mb.rows {
            let row = r * mb.seq..(r + 1) * mb.seq;
            let len = mb.lengths[r];
            for i in 0..seq {
                if i < len {
                    let j = row.start + i;
                    e.ids.push(mb.ids[j]);
                    e.mask.push(mb.mask[j]);
                    e.literal.push(mb.literal[j]);
                    e.positions.push(mb.positions[j]);
                    e.segments.push(mb.segments[j]);
                } else if i < len + extra {
                    e.ids.push(10 + offset + (i as u32 * 13) % 200);
                    e.mask.push(0);
                    e.literal.push(0);
                    e.positions.push(i as u32);
                    e.segments.push(1);
                } else {
                    e.ids.push(0);
                    e.mask.push(0);
                    e.literal.push(0);
                    e.positions.push(0);
                    e.segments.push(0);
                }
            }
            e.lengths[r] = len + extra;
        }
        e
    };
    let original = extend(0);
    let changed = extend(57);
    assert_ne!(original.ids, changed.ids);
    let (loss, grads) = loss_and_grads(&t, &original);
    let (base_loss, _) = loss_and_grads(&t, &mb);
    assert!(
        (loss - base_loss).abs() < 1e-4,
        "trailing masked tokens add nothing: {loss} vs {base_loss}"
    );
    let (loss2, grads2) = loss_and_grads(&t, &changed);
    assert_eq!(loss.to_bits(), loss2.to_bits());
    assert_eq!(grads.len(), grads2.len());
    for (k, g) in &grads {
        assert_eq!(g, &grads2[k], "gradient of {k}");
    }
    // And unmasking them does change the loss (the mask is what excludes them).
    let mut unmasked = changed.clone();
    unmasked.mask.iter_mut().for_each(|m| *m = 1);
    unmasked.segments.iter_mut().for_each(|s| *s = 1);
    let (loss3, _) = loss_and_grads(&t, &unmasked);
    assert_ne!(loss.to_bits(), loss3.to_bits());
}

#[test]
fn micro_batching_gives_the_same_loss_and_update() {
    let dir = tmp("micro");
    // The accumulated gradient of one step equals the one-batch gradient.
    {
        let mut c = config(&dir.join("g"), 4);
        c.batch_size = 4;
        let t = Trainer::new(c).unwrap();
        let batch = t.epoch_batches(1)[0].clone();
        let whole = MicroBatch::split(&batch, 4, false).remove(0);
        let n = whole.supervised() as f64;
        let grads_of = |mbs: Vec<MicroBatch>| {
            let mut grads = HostGrads::new();
            let mut loss = 0.0;
            for mb in mbs {
                let ml = micro_loss(t.model(), &mb, n).unwrap();
                loss += ml.loss_sum;
                let gp = GradientsParams::from_grads(ml.loss.backward(), t.model());
                collect_grads(t.model(), &gp, &mut grads);
            }
            (loss / n, grads)
        };
        let (l1, g1) = grads_of(vec![whole]);
        let (l4, g4) = grads_of(MicroBatch::split(&batch, 1, false));
        let gmax = g1
            .iter()
            .flat_map(|(k, v)| v.iter().zip(&g4[k]).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max);
        eprintln!("loss {l1} vs {l4}, max |Δgrad| {gmax:e}");
        assert!((l1 - l4).abs() <= 1e-6 && gmax <= 1e-6);
    }
    let mut a = config(&dir.join("a"), 4);
    a.batch_size = 4;
    a.epochs = 1;
    a.eps = 1e-6;
    let mut b = a.clone();
    b.output_dir = dir.join("b");
    b.micro_batch = Some(1);
    let mut ta = Trainer::new(a).unwrap();
    let mut tb = Trainer::new(b).unwrap();
    assert_same(&param_values(ta.model()), &param_values(tb.model()));
    ta.run().unwrap();
    tb.run().unwrap();
    let (pa, pb) = (param_values(ta.model()), param_values(tb.model()));
    let mut max = 0f32;
    for (k, va) in &pa {
        for (x, y) in va.iter().zip(&pb[k]) {
            max = max.max((x - y).abs());
        }
    }
    eprintln!("max |Δw| micro-batch 1 vs 4: {max:e}");
    assert!(max <= 1e-6, "max difference {max}");
    let step_loss = |run: &str| {
        let m = std::fs::read_to_string(dir.join(run).join("metrics.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(m.lines().next().unwrap()).unwrap();
        v["loss"].as_f64().unwrap()
    };
    let (la, lb) = (step_loss("a/run"), step_loss("b"));
    assert!((la - lb).abs() <= 1e-6, "loss {la} vs {lb}");
}

#[test]
fn lora_trains_only_the_adapter() {
    let dir = tmp("lora");
    let mut c = config(&dir, 2);
    c.lora = Some(LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        ..LoraConfig::default()
    });
    let mut t = Trainer::new(c).unwrap();
    let before = param_values(t.model());
    let summary = t.run().unwrap();
    let after = param_values(t.model());
    let (mut base, mut adapter_changed) = (0, 0);
    for (k, v) in &before {
        if k.starts_with("adapter") {
            if v != &after[k] {
                adapter_changed += 1;
            }
        } else {
            base += 1;
            assert!(
                v.iter()
                    .zip(&after[k])
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "base weight {k} changed"
            );
        }
    }
    let adapters = before.keys().filter(|k| k.starts_with("adapter")).count();
    assert!(
        base > 10 && adapters == 3 * 2 * 2,
        "{base} base, {adapters} adapter tensors"
    );
    assert_eq!(adapter_changed, adapters, "every adapter tensor trained");
    assert!(dir.join("run/adapter/adapter_config.json").is_file());
    assert!(dir.join("run/adapter/adapter_model.safetensors").is_file());
    assert_eq!(
        summary.trainable_params,
        t.model().adapter().unwrap().num_params()
    );
}

#[test]
fn resume_after_drop_is_bitwise_identical() {
    let dir = tmp("resume");
    let mut c = config(&dir, 4);
    c.epochs = 3;
    c.checkpoint_every = 1;
    c.validation_fraction = 0.25;
    let mut full = Trainer::new(TrainConfig {
        output_dir: dir.join("full"),
        ..c.clone()
    })
    .unwrap();
    let total = full.total_steps();
    full.run().unwrap();

    let k = 3; // mid-epoch 2
    let mut part = Trainer::new(c.clone()).unwrap();
    assert!(part.run_steps(Some(k)).unwrap().is_none());
    drop(part);
    let mut resumed = Trainer::resume(&c.output_dir).unwrap();
    assert_eq!(resumed.step(), k);
    let summary = resumed.run().unwrap();
    assert_eq!(summary.steps, total);
    assert_same(&param_values(full.model()), &param_values(resumed.model()));
    // The metrics are those of the uninterrupted run.
    let lines = |p: &Path| {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for f in ["tokens_per_s", "seconds"] {
                    v.as_object_mut().unwrap().remove(f);
                }
                v
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&dir.join("full")), lines(&c.output_dir));
}

/// The run the kill tests interrupt: 5 epochs of 2 steps, a checkpoint after every step; with
/// `lora`, a rank-4 adapter on every projection whose dropout (0.1) draws from the seeded RNG.
fn kill_config(dir: &Path, lora: bool) -> TrainConfig {
    let mut c = config(dir, 4);
    c.epochs = 5;
    c.checkpoint_every = 1;
    if lora {
        c.lora = Some(LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.1,
            use_rslora: false,
            target_modules: LoraTarget::ALL.to_vec(),
        });
    }
    c
}

/// Not a test by itself: a child process of the kill tests. Trains `kill_config` into
/// `RUNG_TRAIN_CHILD_DIR/RUNG_TRAIN_CHILD_OUT` (LoRA when `RUNG_TRAIN_CHILD_LORA` is set), or
/// resumes the run there when `RUNG_TRAIN_CHILD_RESUME` is set.
///
/// Every run of the kill tests has a process of its own because dropout draws from the
/// backend's process-global RNG, which other tests of this binary re-seed concurrently.
#[test]
#[ignore]
fn child_training_process() {
    let Ok(dir) = std::env::var("RUNG_TRAIN_CHILD_DIR") else {
        return;
    };
    let out = Path::new(&dir).join(std::env::var("RUNG_TRAIN_CHILD_OUT").unwrap());
    if std::env::var_os("RUNG_TRAIN_CHILD_RESUME").is_some() {
        rung_train::resume(&out).unwrap();
    } else {
        let lora = std::env::var_os("RUNG_TRAIN_CHILD_LORA").is_some();
        let mut c = kill_config(Path::new(&dir), lora);
        c.output_dir = out;
        rung_train::train(c).unwrap();
    }
}

/// A child process running `child_training_process` on `dir/out`.
fn spawn_child(dir: &Path, out: &str, lora: bool, resume: bool) -> std::process::Child {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--ignored",
            "--exact",
            "child_training_process",
            "--test-threads=1",
        ])
        .env("RUNG_TRAIN_CHILD_DIR", dir)
        .env("RUNG_TRAIN_CHILD_OUT", out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if lora {
        child.env("RUNG_TRAIN_CHILD_LORA", "1");
    }
    if resume {
        child.env("RUNG_TRAIN_CHILD_RESUME", "1");
    }
    child.spawn().unwrap()
}

fn finish(mut child: std::process::Child, what: &str) {
    let status = child.wait().unwrap();
    assert!(status.success(), "{what} failed: {status}");
}

/// The parameters of the newest checkpoint of the run in `run`.
fn final_params(run: &Path) -> BTreeMap<String, Vec<f32>> {
    let ckpt = rung_train::checkpoint::latest(&run.join("checkpoints")).unwrap();
    let (model, _, _) =
        rung_train::checkpoint::load(&ckpt, &rung_model::autodiff_device()).unwrap();
    param_values(&model)
}

/// Trains `kill_config` uninterrupted into `<dir>/reference`; trains it again into `<dir>/run`,
/// killing that process at a random moment just after a random step's checkpoint; resumes the
/// killed run to the end. Returns the folder and the final parameters of both runs.
fn kill_and_resume(name: &str, lora: bool) -> (TmpDir, ParamMap, ParamMap) {
    let dir = tmp(name);
    finish(
        spawn_child(&dir, "reference", lora, false),
        "the reference run",
    );
    let total = rung_train::checkpoint::list(&dir.join("reference/checkpoints"))
        .last()
        .unwrap()
        .0;

    let mut child = spawn_child(&dir, "run", lora, false);
    // A random step in 1..total-1 and a random delay of up to 20 ms after its checkpoint: the
    // child dies somewhere inside the next step (or its checkpoint write), never after the end.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let target = 1 + nanos % (total - 2);
    let wait = (nanos / 7) % 20;
    let ckpts = dir.join("run/checkpoints");
    let newest = || {
        rung_train::checkpoint::list(&ckpts)
            .last()
            .map_or(0, |c| c.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while newest() < target && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(wait as u64));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = newest();
    eprintln!("killed {wait} ms after step {target}; newest checkpoint at step {killed_at}");
    assert!(
        (1..total).contains(&killed_at),
        "the child was killed mid-run (newest checkpoint {killed_at} of {total} steps)"
    );
    finish(spawn_child(&dir, "run", lora, true), "the resumed run");
    assert_eq!(newest(), total, "the resumed run finished");
    let reference = final_params(&dir.join("reference"));
    let resumed = final_params(&dir.join("run"));
    (dir, reference, resumed)
}

type ParamMap = BTreeMap<String, Vec<f32>>;

#[test]
fn killed_child_resumes_exactly() {
    let (_dir, reference, resumed) = kill_and_resume("kill", false);
    assert_same(&reference, &resumed);
}

#[test]
fn killed_lora_child_with_dropout_resumes_exactly() {
    let (dir, reference, resumed) = kill_and_resume("kill-lora", true);
    let adapter = |params: &ParamMap| -> ParamMap {
        params
            .iter()
            .filter(|(k, _)| k.starts_with("adapter"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let expected = adapter(&reference);
    assert_eq!(
        expected.len(),
        7 * 2 * 3,
        "A and B of 7 projections × 3 layers"
    );
    assert_same(&expected, &adapter(&resumed));
    assert_same(&reference, &resumed);
    let peft = |run: &str| std::fs::read(dir.join(run).join("adapter/adapter_model.safetensors"));
    assert_eq!(
        peft("reference").unwrap(),
        peft("run").unwrap(),
        "the exported PEFT adapters are byte-identical"
    );
    // Dropout was in effect: the same run without it ends with other adapter weights, so the
    // identity above depends on restoring the dropout RNG exactly. (No dropout: no RNG, so this
    // run may share the process with other tests.)
    let mut c = kill_config(&dir.join("no-dropout"), true);
    if let Some(lora) = &mut c.lora {
        lora.dropout = 0.0;
    }
    let mut plain = Trainer::new(c).unwrap();
    plain.run().unwrap();
    assert_ne!(
        adapter(&param_values(plain.model())),
        expected,
        "dropout changes the trained adapter"
    );
}

struct Poison;
impl ModuleMapper for Poison {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let r = t.is_require_grad();
            let (device, shape) = (t.device(), t.shape());
            let n = shape.num_elements();
            let t = Tensor::<D>::from_data(
                burn::tensor::TensorData::new(vec![f32::NAN; n], shape),
                &device,
            );
            if r { t.require_grad() } else { t }
        })
    }
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tmp("nan");
    let mut c = config(&dir, 2);
    c.epochs = 4;
    c.checkpoint_every = 1;
    let mut t = Trainer::new(c).unwrap();
    t.run_steps(Some(2)).unwrap();
    let poisoned = t.model().clone().map(&mut Poison);
    t.set_model(poisoned);
    let err = t.run().unwrap_err().to_string();
    assert!(
        err.contains("non-finite loss") && err.contains("at step 3"),
        "{err}"
    );
    assert!(err.contains("step-00000002"), "{err}");
    let resumed = Trainer::resume(&dir.join("run")).unwrap();
    assert_eq!(resumed.step(), 2);
    assert!(
        param_values(resumed.model())
            .values()
            .flatten()
            .all(|x| x.is_finite())
    );
}

#[test]
fn bad_configs_and_checkpoints_are_clear_errors() {
    let err = TrainConfig::from_toml("data = \"d\"\noutput_dir = \"o\"\nlearning_rate = 1.0\n")
        .unwrap_err();
    assert!(format!("{err:#}").contains("learning_rate"), "{err:#}");
    let err = TrainConfig::from_toml(
        "data = \"d\"\noutput_dir = \"o\"\nbatch_size = 2\nmicro_batch = 3\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("micro_batch"), "{err}");

    let dir = tmp("bad");
    let mut c = config(&dir, 2);
    c.max_seq_len = 4096;
    let err = Trainer::new(c.clone()).err().unwrap().to_string();
    assert!(err.contains("exceeds the model's context of 2048"), "{err}");
    c.max_seq_len = 256;
    c.memory_limit_bytes = Some(1 << 20);
    let err = Trainer::new(c.clone()).err().unwrap().to_string();
    assert!(err.contains("exceeds memory_limit_bytes"), "{err}");
    c.memory_limit_bytes = Some(1 << 32);
    c.checkpoint_every = 1;
    let mut t = Trainer::new(c.clone()).unwrap();
    t.run_steps(Some(1)).unwrap();
    drop(t);
    let err = Trainer::new(c.clone()).err().unwrap().to_string();
    assert!(err.contains("already holds"), "{err}");
    let ckpt = rung_train::checkpoint::latest(&c.output_dir.join("checkpoints")).unwrap();
    let file = ckpt.join("trainer.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let err = Trainer::resume(&c.output_dir).err().unwrap().to_string();
    assert!(
        err.contains("corrupt trainer state") && err.contains("checksum"),
        "{err}"
    );
    bytes[n - 3] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    std::fs::write(ckpt.join("model.bpk"), b"garbage").unwrap();
    let err = Trainer::resume(&c.output_dir).err().unwrap().to_string();
    assert!(err.contains("cannot load the model of checkpoint"), "{err}");
}

/// Loss sum, correct, supervised and gradients of `mbs` (one step, divisor `n`) by `f`.
type LossFn =
    fn(&rung_model::CausalLm, &MicroBatch, f64) -> anyhow::Result<rung_train::loss::MicroLoss>;

fn step_of(t: &Trainer, mbs: &[MicroBatch], n: f64, f: LossFn) -> (f64, usize, usize, HostGrads) {
    let (mut loss, mut correct, mut sup) = (0.0, 0, 0);
    let mut grads = HostGrads::new();
    for mb in mbs {
        let ml = f(t.model(), mb, n).unwrap();
        loss += ml.loss_sum;
        correct += ml.correct;
        sup += ml.supervised;
        let gp = GradientsParams::from_grads(ml.loss.backward(), t.model());
        collect_grads(t.model(), &gp, &mut grads);
    }
    (loss, correct, sup, grads)
}

/// Every gradient of `a` equals `b`'s within `tol` relative to the tensor's largest entry.
fn assert_grads_close(a: &HostGrads, b: &HostGrads, tol: f32, what: &str) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: same parameters"
    );
    let (mut worst, mut nonzero) = (0f32, 0);
    for (k, ga) in a {
        let gb = &b[k];
        let scale = ga.iter().chain(gb).fold(0f32, |m, x| m.max(x.abs()));
        if scale == 0.0 {
            assert!(gb.iter().all(|&x| x == 0.0), "{what}: gradient of {k}");
            continue;
        }
        nonzero += 1;
        let diff = ga
            .iter()
            .zip(gb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max(diff / scale);
        assert!(
            diff <= tol * scale,
            "{what}: gradient of {k}: {diff:e} vs scale {scale:e}"
        );
    }
    assert!(nonzero > 0, "{what}: some gradient is non-zero");
    eprintln!("{what}: {nonzero} gradients, worst relative difference {worst:e}");
}

fn assert_rel(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * a.abs().max(b.abs()),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn supervised_only_loss_equals_the_dense_path() {
    for lora in [false, true] {
        for pack in [None, Some(256)] {
            let dir = tmp(&format!("sparse-{lora}-{pack:?}"));
            let mut c = config(&dir, 5);
            c.batch_size = 3;
            c.pack_length = pack;
            if lora {
                c.lora = Some(LoraConfig {
                    rank: 4,
                    alpha: 8.0,
                    dropout: 0.0,
                    use_rslora: false,
                    target_modules: LoraTarget::ALL.to_vec(),
                });
            }
            let t = Trainer::new(c).unwrap();
            if pack.is_some() {
                let rows: usize = t.epoch_batches(1).iter().map(|b| b.rows).sum();
                assert!(rows < 5, "packing puts two samples in a row: {rows} rows");
            }
            for batch in t.epoch_batches(1) {
                let what = format!("lora {lora}, pack {pack:?}, {} rows", batch.rows);
                let whole = MicroBatch::split(batch, batch.rows, pack.is_some());
                let n = whole[0].supervised() as f64;
                let dense = step_of(&t, &whole, n, micro_loss_dense);
                for micro in [batch.rows, 1] {
                    let mbs = MicroBatch::split(batch, micro, pack.is_some());
                    let sparse = step_of(&t, &mbs, n, micro_loss);
                    assert_rel(sparse.0, dense.0, 1e-5, &what);
                    assert_eq!((sparse.1, sparse.2), (dense.1, dense.2), "{what}");
                    for mb in &mbs {
                        let (a, b) = (
                            micro_loss(t.model(), mb, n).unwrap(),
                            micro_loss_dense(t.model(), mb, n).unwrap(),
                        );
                        assert_eq!(
                            (a.literal, a.literal_correct),
                            (b.literal, b.literal_correct)
                        );
                    }
                    assert!(dense.2 > 0 && dense.0 > 0.0);
                    assert_grads_close(&sparse.3, &dense.3, 1e-5, &what);
                }
            }
        }
    }
}

#[test]
fn packed_batches_give_the_unpacked_loss_and_gradient() {
    let dir = tmp("packing");
    let mut c = config(&dir.join("plain"), 6);
    c.batch_size = 2;
    let mut p = c.clone();
    p.output_dir = dir.join("packed");
    p.pack_length = Some(p.max_seq_len);
    let (plain, packed) = (Trainer::new(c).unwrap(), Trainer::new(p).unwrap());
    assert_same(&param_values(plain.model()), &param_values(packed.model()));
    let epoch = |t: &Trainer, pack: bool| {
        let mbs: Vec<MicroBatch> = t
            .epoch_batches(1)
            .iter()
            .flat_map(|b| MicroBatch::split(b, b.rows, pack))
            .collect();
        let n: usize = mbs.iter().map(MicroBatch::supervised).sum();
        (mbs.len(), step_of(t, &mbs, n as f64, micro_loss))
    };
    let (rows_plain, a) = epoch(&plain, false);
    let (rows_packed, b) = epoch(&packed, true);
    let packed_rows: usize = packed.epoch_batches(1).iter().map(|b| b.rows).sum();
    let samples: usize = packed
        .epoch_batches(1)
        .iter()
        .flat_map(|b| &b.samples)
        .map(Vec::len)
        .sum();
    eprintln!(
        "{rows_plain} plain batches, {rows_packed} packed batches, {packed_rows} packed rows for {samples} samples"
    );
    assert!(packed_rows < samples, "some row holds two samples");
    assert_eq!(a.2, b.2, "same supervised targets");
    assert_rel(a.0, b.0, 1e-5, "epoch loss");
    assert_grads_close(&a.3, &b.3, 1e-5, "packed vs plain");
}

/// Argmax predictions of every position of `mb`'s rows, by the full forward pass.
fn argmax_all(t: &Trainer, mb: &MicroBatch) -> Vec<u32> {
    let ids: Vec<i64> = mb.ids.iter().map(|&x| i64::from(x)).collect();
    let x = Tensor::<2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(ids, [mb.rows, mb.seq]),
        &t.model().device(),
    );
    let options = rung_model::ForwardOptions {
        attention_mask: Some(rung_model::AttentionMask::right_padded(&mb.lengths, mb.seq).unwrap()),
        position_ids: Some(mb.positions.iter().map(|&p| i64::from(p)).collect()),
        segment_ids: None,
    };
    let logits = t.model().forward_with(x, &options, None).unwrap();
    logits
        .argmax(2)
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

#[test]
fn literal_accuracy_counts_only_literal_targets() {
    let dir = tmp("literal-acc");
    let t = Trainer::new(config(&dir, 2)).unwrap();
    let batch = t.epoch_batches(1)[0].clone();
    let mut mb = MicroBatch::split(&batch, 1, false).remove(0);
    let predicted = argmax_all(&t, &mb);
    // Mark four supervised targets as literal by hand: two the model gets right and two it
    // gets wrong where it has them, else any four.
    let supervised: Vec<usize> = (1..mb.lengths[0]).filter(|&i| mb.mask[i] == 1).collect();
    let (right, wrong): (Vec<usize>, Vec<usize>) = supervised
        .iter()
        .partition(|&&i| predicted[i - 1] == mb.ids[i]);
    let chosen: Vec<usize> = right
        .iter()
        .take(2)
        .chain(wrong.iter().take(2))
        .copied()
        .collect();
    mb.literal = vec![0; mb.ids.len()];
    for &i in &chosen {
        mb.literal[i] = 1;
    }
    // A literal flag on an unsupervised token does not count.
    let unsupervised = (1..mb.lengths[0]).find(|&i| mb.mask[i] == 0).unwrap();
    mb.literal[unsupervised] = 1;
    let want = chosen
        .iter()
        .filter(|&&i| predicted[i - 1] == mb.ids[i])
        .count();
    let ml = micro_loss(t.model(), &mb, 1.0).unwrap();
    assert_eq!(ml.literal, chosen.len());
    assert_eq!(ml.literal_correct, want);
    assert_eq!(ml.literal_correct, right.len().min(2));
    let dense = micro_loss_dense(t.model(), &mb, 1.0).unwrap();
    assert_eq!(
        (dense.literal, dense.literal_correct),
        (ml.literal, ml.literal_correct)
    );
    // A literal mask of the wrong length is refused.
    mb.literal.pop();
    assert!(micro_loss(t.model(), &mb, 1.0).is_err());
}

#[test]
fn validation_reports_literal_accuracy_on_copied_values() {
    let dir = tmp("literal-val");
    // Episodes 10.. copy their two-digit index from the instruction into both code cells.
    let mut c = config(&dir, 14);
    c.validation_fraction = 0.25;
    c.epochs = 1;
    let mut t = Trainer::new(c).unwrap();
    let tok = rung_model::tokenizer::Tokenizer::from_file(dir.join("run/tokenizer.json")).unwrap();
    let mut runs = Vec::new();
    for batch in t.epoch_batches(1) {
        for r in 0..batch.rows {
            let row = r * batch.seq_len..(r + 1) * batch.seq_len;
            let (ids, lit, mask) = (
                &batch.input_ids[row.clone()],
                &batch.literal_mask[row.clone()],
                &batch.loss_mask[row],
            );
            assert!(
                lit.iter().zip(mask).all(|(&l, &m)| l <= m),
                "literal ⊆ supervised"
            );
            let mut i = 0;
            while i < ids.len() {
                if lit[i] == 1 {
                    let start = i;
                    while i < ids.len() && lit[i] == 1 {
                        i += 1;
                    }
                    runs.push(tok.decode(&ids[start..i]).unwrap());
                } else {
                    i += 1;
                }
            }
        }
    }
    // Training holds episodes 10 (its "10" twice); 0..9 have one-digit values only.
    assert!(!runs.is_empty());
    for run in &runs {
        let digits: String = run.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(
            digits, "10",
            "a literal run decodes to the copied value: {run:?}"
        );
    }
    assert_eq!(runs.len(), 2, "{runs:?}");
    let summary = t.run().unwrap();
    let n = summary.final_val_literal_tokens.unwrap();
    assert!(n >= 6, "3 validation episodes copy their index twice: {n}");
    let acc = summary.final_val_literal_accuracy.unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let metrics = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let epoch: serde_json::Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["kind"] == "epoch")
        .unwrap();
    assert_eq!(epoch["val_literal_tokens"].as_u64(), Some(n as u64));
    assert_eq!(epoch["val_literal_accuracy"].as_f64(), Some(acc));
    let v = t.validate().unwrap().unwrap();
    assert_eq!(v.literal_tokens, n);
}
