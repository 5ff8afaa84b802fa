//! Padding waste and training throughput with and without sequence packing, on a real
//! trajectory file (say, `rung data gen` expert data), for one role.
//!
//! ```sh
//! cargo run --release -p rung-train --example padding_waste -- DATA.jsonl executor 2 2048 6
//! ```
//!
//! Arguments: data, role, batch size (rows), `max_seq_len`, measured steps (0: padding only).
//! For each of "no packing" and "packing to `max_seq_len`" it prints the first epoch's rows,
//! real and padded tokens (padding = the share of computed positions that are padding), the
//! literal tokens' share of the supervised ones (`rung_curriculum::literal`) and,
//! with steps > 0, the trainer's tokens/s over that many steps after one warmup step. Packing
//! trades padding for longer rows: attention over a packed row costs its full length squared
//! (masked block-diagonally), so only the measured tokens/s says whether it pays.

use std::path::PathBuf;
use std::time::Instant;

use rung_curriculum::{Curriculum, Schedule};
use rung_train::{ModelSpec, TrainConfig, Trainer};
use rung_trajectory::Role;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, role, batch, seq, steps] = args.as_slice() else {
        anyhow::bail!("usage: padding_waste DATA ROLE BATCH MAX_SEQ_LEN STEPS");
    };
    let role: Role = serde_json::from_value(serde_json::Value::String(role.clone()))?;
    let (batch, seq, steps): (usize, usize, usize) = (batch.parse()?, seq.parse()?, steps.parse()?);
    for pack in [None, Some(seq)] {
        let dir =
            std::env::temp_dir().join(format!("rung-padding-{}-{pack:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = TrainConfig::new(PathBuf::from(data), dir.join("run"));
        c.model = ModelSpec::Preset("tiny".into());
        c.roles = vec![role];
        c.curriculum = Curriculum {
            schedule: Schedule::All,
            ..Curriculum::default()
        };
        c.batch_size = batch;
        c.max_seq_len = seq;
        c.pack_length = pack;
        c.validation_fraction = 0.0;
        c.progress = false;
        c.epochs = 1;
        let mut t = Trainer::new(c)?;
        let batches = t.epoch_batches(1);
        let rows: usize = batches.iter().map(|b| b.rows).sum();
        let samples: usize = batches.iter().flat_map(|b| &b.samples).map(Vec::len).sum();
        let real: usize = batches.iter().flat_map(|b| &b.lengths).sum();
        let padded: usize = batches.iter().map(|b| b.rows * b.seq_len).sum();
        let supervised: usize = batches.iter().map(|b| b.supervised_tokens()).sum();
        let literal: usize = batches
            .iter()
            .flat_map(|b| &b.literal_mask)
            .filter(|&&l| l == 1)
            .count();
        let measured: usize = batches
            .iter()
            .skip(1)
            .take(steps)
            .flat_map(|b| &b.lengths)
            .sum();
        let n_batches = batches.len();
        print!(
            "pack {pack:?}: {n_batches} steps, {rows} rows for {samples} samples, {real} real of \
             {padded} computed tokens (padding {:.1}%), supervised {:.1}% of real, literal \
             {:.1}% of supervised",
            100.0 * (padded - real) as f64 / padded as f64,
            100.0 * supervised as f64 / real as f64,
            100.0 * literal as f64 / supervised.max(1) as f64
        );
        if steps > 0 && n_batches > steps {
            t.run_steps(Some(1))?;
            let t0 = Instant::now();
            t.run_steps(Some(steps))?;
            print!(
                ", {:.0} tok/s",
                measured as f64 / t0.elapsed().as_secs_f64()
            );
        }
        println!();
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
