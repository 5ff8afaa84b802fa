//! A run's loss curves, from its `metrics.jsonl`.

use std::path::Path;

use super::{LineChart, PlotError, Series, line_chart};

/// Legend entry of the training curve.
pub const TRAIN_SERIES: &str = "training loss (per step)";
/// Legend entry of the validation curve.
pub const VAL_SERIES: &str = "validation loss (per epoch)";

/// The loss chart of the run in `run_dir`: training loss of every optimizer step (`kind:
/// "step"` records) and validation loss of every epoch (`kind: "epoch"` records), placed at the
/// epoch's last step so both share the step axis. Non-finite losses and lines that are not JSON
/// are skipped (a run stopped by a NaN still gets its curve up to the NaN).
pub fn loss_chart(run_dir: &Path) -> Result<LineChart, PlotError> {
    let path = run_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|source| PlotError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = record["step"].as_f64() else {
            continue;
        };
        let (field, curve) = match record["kind"].as_str() {
            Some("step") => ("loss", &mut train),
            Some("epoch") => ("val_loss", &mut val),
            _ => continue,
        };
        if let Some(loss) = record[field].as_f64().filter(|l| l.is_finite()) {
            curve.push((step, loss));
        }
    }
    let mut series = vec![Series::new(TRAIN_SERIES, train)];
    if !val.is_empty() {
        series.push(Series::new(VAL_SERIES, val));
    }
    Ok(LineChart {
        title: "Loss".into(),
        x_label: "optimizer step".into(),
        y_label: "loss (mean over supervised tokens)".into(),
        log_x: false,
        series,
    })
}

/// Writes `loss.svg` and `loss.png` into `run_dir` (see [`loss_chart`]).
pub fn loss_plots(run_dir: &Path) -> Result<(), PlotError> {
    line_chart(&run_dir.join("loss"), &loss_chart(run_dir)?)
}
