//! `rung train`: supervised fine-tuning with rung-train.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use rung_train::{Summary, TrainConfig};

/// Train a model (or LoRA adapter) on expert trajectories, or resume a run.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training config (TOML, or JSON when the name ends in `.json`).
    #[arg(long, conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Resume the run in this output directory from its newest checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Override the config's output directory.
    #[arg(long, requires = "config")]
    output_dir: Option<PathBuf>,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let summary = match (&args.config, &args.resume) {
        (Some(path), None) => {
            let mut config = TrainConfig::from_file(path)?;
            if let Some(out) = &args.output_dir {
                config.output_dir = out.clone();
            }
            rung_train::train(config)?
        }
        (None, Some(dir)) => rung_train::resume(dir)?,
        _ => bail!("give either --config FILE or --resume DIR"),
    };
    print_summary(&summary);
    Ok(())
}

fn print_summary(s: &Summary) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!(
        "trained {} steps over {} epochs ({} trainable parameters) in {:.1}s, {:.0} tokens/s",
        s.steps, s.epochs, s.trainable_params, s.wall_s, s.tokens_per_s
    );
    println!(
        "final train loss {}  val loss {}  val token accuracy {}  best val loss {} (epoch {})",
        f(s.final_train_loss),
        f(s.final_val_loss),
        f(s.final_val_accuracy),
        f(s.best_val_loss),
        s.best_epoch.map_or("-".to_string(), |e| e.to_string())
    );
    println!(
        "output {} (metrics.jsonl, loss.svg, loss.png, summary.json; best checkpoint {})",
        s.output_dir.display(),
        s.best_checkpoint
            .as_ref()
            .map_or("-".to_string(), |p| p.display().to_string())
    );
}
