//! The report's plots, as SVG and PNG: the Pareto front, sub-task error rates by index, and
//! validation-loss curves against epochs and against training FLOPs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use rung_train::plot::{LineChart, Series, line_chart, register_font};
use rung_trajectory::SystemKind;

use crate::ExperimentError;
use crate::plan::short;
use crate::results::{ConfigSummary, RunResult, Stat};

const SIZE: (u32, u32) = (900, 560);

/// Colour per system.
fn system_colour(system: SystemKind) -> RGBColor {
    match system {
        SystemKind::Single => RGBColor(31, 119, 180),
        SystemKind::TwoAgent => RGBColor(214, 39, 40),
        SystemKind::ThreeAgent => RGBColor(44, 160, 44),
    }
}

/// TGC against FLOPs per task (log axis), one point per configuration, coloured by system,
/// shaped by schedule (circle `prost`, triangle `all`, square others), the Pareto front drawn
/// as a step line through its labelled points. Writes `stem.svg` and `stem.png`.
pub fn pareto(
    stem: &Path,
    summaries: &[ConfigSummary],
    split: &str,
) -> Result<(), ExperimentError> {
    register_font();
    let svg = with_extension(stem, "svg");
    let png = with_extension(stem, "png");
    draw_pareto(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        summaries,
        split,
    )
    .map_err(|message| plot_error(&svg, message))?;
    draw_pareto(
        BitMapBackend::new(&png, SIZE).into_drawing_area(),
        summaries,
        split,
    )
    .map_err(|message| plot_error(&png, message))
}

fn draw_pareto<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    summaries: &[ConfigSummary],
    split: &str,
) -> Result<(), String> {
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(text)?;
    let points: Vec<(&ConfigSummary, f64, f64)> = summaries
        .iter()
        .filter(|s| s.flops_per_task.mean > 0.0 && s.tgc.mean.is_finite())
        .map(|s| (s, s.flops_per_task.mean, s.tgc.mean))
        .collect();
    let (mut x0, mut x1) = points.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if !x0.is_finite() {
        (x0, x1) = (1e6, 1e9);
    }
    let (x0, x1) = (x0 / 2.0, x1 * 2.0);
    let y1 = points
        .iter()
        .map(|p| p.2 + p.0.tgc.std)
        .fold(10.0f64, f64::max)
        .min(100.0)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Effectiveness against cost on {split} (Pareto front in black)"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(62)
        .y_label_area_size(55)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("FLOPs per task (log scale)")
        .y_desc("TGC (%)")
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(text)?;
    // Seed spread as vertical bars.
    chart
        .draw_series(points.iter().filter(|p| p.0.tgc.n > 1).map(|(s, x, y)| {
            PathElement::new(
                vec![(*x, (y - s.tgc.std).max(0.0)), (*x, y + s.tgc.std)],
                system_colour(s.configuration.system).mix(0.5),
            )
        }))
        .map_err(text)?;
    let mut front: Vec<(f64, f64, String)> = points
        .iter()
        .filter(|p| p.0.pareto)
        .map(|(s, x, y)| (*x, *y, s.label.clone()))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut steps = Vec::new();
    for (i, (x, y, _)) in front.iter().enumerate() {
        if i > 0 {
            steps.push((*x, front[i - 1].1));
        }
        steps.push((*x, *y));
    }
    chart
        .draw_series(LineSeries::new(steps, BLACK.stroke_width(2)))
        .map_err(text)?;
    for system in [
        SystemKind::Single,
        SystemKind::TwoAgent,
        SystemKind::ThreeAgent,
    ] {
        let colour = system_colour(system);
        let mine: Vec<&(&ConfigSummary, f64, f64)> = points
            .iter()
            .filter(|p| p.0.configuration.system == system)
            .collect();
        if mine.is_empty() {
            continue;
        }
        chart
            .draw_series(
                mine.iter()
                    .map(|(s, x, y)| marker(&s.configuration.schedule, (*x, *y), colour)),
            )
            .map_err(text)?
            .label(format!("{} ({})", short(system), system.name()))
            .legend(move |(x, y)| Circle::new((x, y), 5, colour.filled()));
    }
    // Each front point gets a black ring (a one-point front has no line to show it) and its
    // label beside the marker rather than over it.
    chart
        .draw_series(front.iter().map(|(x, y, label)| {
            EmptyElement::at((*x, *y))
                + Circle::new((0, 0), 9, BLACK.stroke_width(2))
                + Text::new(label.clone(), (12, -18), ("sans-serif", 13).into_font())
        }))
        .map_err(text)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(text)?;
    root.draw(&Text::new(
        "circle: prost   triangle: all   square: other schedules   bars: ±1 std over seeds",
        (60, SIZE.1 as i32 - 16),
        ("sans-serif", 13).into_font(),
    ))
    .map_err(text)?;
    root.present().map_err(text)
}

fn marker<DB: DrawingBackend>(
    schedule: &str,
    at: (f64, f64),
    colour: RGBColor,
) -> DynElement<'static, DB, (f64, f64)> {
    let style = colour.filled();
    match schedule {
        "prost" => Circle::new(at, 6, style).into_dyn(),
        "all" => TriangleMarker::new(at, 7, style).into_dyn(),
        _ => Rectangle::new([at, at], style).into_dyn(),
    }
}

/// Sub-task error rate by sub-task index, one chart per system (`stem-<system>`), one series
/// per allocation and schedule (mean over seeds). Returns the stems written.
pub fn subtask_errors(
    stem: &Path,
    summaries: &[ConfigSummary],
    split: &str,
) -> Result<Vec<PathBuf>, ExperimentError> {
    let mut written = Vec::new();
    let mut by_system: BTreeMap<SystemKind, Vec<&ConfigSummary>> = BTreeMap::new();
    for s in summaries
        .iter()
        .filter(|s| !s.subtask_error_by_index.is_empty())
    {
        by_system.entry(s.configuration.system).or_default().push(s);
    }
    for (system, configs) in by_system {
        let series = configs
            .iter()
            .map(|s| {
                let points = s
                    .subtask_error_by_index
                    .iter()
                    .enumerate()
                    .filter(|(_, stat)| stat.n > 0)
                    .map(|(i, stat)| ((i + 1) as f64, stat.mean))
                    .collect();
                Series::new(
                    format!(
                        "{} {}",
                        s.configuration.allocation(),
                        s.configuration.schedule
                    ),
                    points,
                )
            })
            .collect();
        let chart = LineChart {
            title: format!(
                "{} ({}): sub-task error rate by index on {split}",
                short(system),
                system.name()
            ),
            x_label: "sub-task (1 = first)".into(),
            y_label: "error rate (%)".into(),
            log_x: false,
            series,
        };
        let path = PathBuf::from(format!("{}-{}", stem.display(), system.name()));
        line_chart(&path, &chart).map_err(|e| plot_error(&path, e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

/// Validation loss per epoch, mean over the training jobs (roles, systems, seeds) of each
/// model and schedule: against epochs (`stem-epochs`) and against cumulative training FLOPs
/// (`stem-flops`, the equal-compute view: ProST's early epochs are cheaper).
pub fn loss_curves(stem: &Path, runs: &[RunResult]) -> Result<Vec<PathBuf>, ExperimentError> {
    // (model, schedule) → epoch → (val losses, cumulative FLOPs), one entry per distinct job.
    type Curves = BTreeMap<(String, String), BTreeMap<usize, (Vec<f64>, Vec<f64>)>>;
    let mut curves: Curves = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for run in runs {
        for (role, training) in &run.training {
            let model = &run.run.configuration.models[role];
            if !seen.insert(training.model_dir.clone()) {
                continue;
            }
            let curve = curves
                .entry((model.clone(), run.run.configuration.schedule.clone()))
                .or_default();
            for epoch in &training.epochs {
                let entry = curve.entry(epoch.epoch).or_default();
                if let Some(v) = epoch.val_loss {
                    entry.0.push(v);
                    entry.1.push(epoch.cumulative_flops);
                }
            }
        }
    }
    let mut by_epoch = Vec::new();
    let mut by_flops = Vec::new();
    for ((model, schedule), epochs) in &curves {
        let name = format!("{model} {schedule}");
        let mut e = Vec::new();
        let mut f = Vec::new();
        for (epoch, (losses, flops)) in epochs {
            if losses.is_empty() {
                continue;
            }
            let loss = Stat::of(losses).mean;
            e.push((*epoch as f64, loss));
            f.push((Stat::of(flops).mean, loss));
        }
        by_epoch.push(Series::new(name.clone(), e));
        by_flops.push(Series::new(name, f));
    }
    let mut written = Vec::new();
    for (suffix, x_label, log_x, series) in [
        ("epochs", "epoch", false, by_epoch),
        (
            "flops",
            "training FLOPs of the role's model (log scale)",
            true,
            by_flops,
        ),
    ] {
        let chart = LineChart {
            title: "Validation loss (every sub-task supervised), mean over roles and seeds".into(),
            x_label: x_label.into(),
            y_label: "validation loss (nats/token)".into(),
            log_x,
            series,
        };
        let path = PathBuf::from(format!("{}-{suffix}", stem.display()));
        line_chart(&path, &chart).map_err(|e| plot_error(&path, e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

/// The learning curve: TGC and validation literal-token accuracy (percent) against the
/// training tokens the run's role models had seen.
pub fn learning_curve(
    stem: &Path,
    curve: &crate::curve::LearningCurve,
) -> Result<(), ExperimentError> {
    let tgc: Vec<(f64, f64)> = curve
        .points
        .iter()
        .map(|p| (p.tokens as f64, p.tgc))
        .collect();
    let literal: Vec<(f64, f64)> = curve
        .points
        .iter()
        .filter_map(|p| Some((p.tokens as f64, 100.0 * p.val_literal_accuracy?)))
        .collect();
    let chart = LineChart {
        title: format!("Learning curve of {} on {}", curve.run, curve.split),
        x_label: "training tokens over the run's role models".into(),
        y_label: "percent".into(),
        log_x: false,
        series: vec![
            Series::new(format!("TGC on {}", curve.split), tgc),
            Series::new("validation literal-token accuracy", literal),
        ],
    };
    line_chart(stem, &chart).map_err(|e| plot_error(stem, e.to_string()))
}

fn with_extension(stem: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", stem.display()))
}

fn plot_error(path: &Path, message: String) -> ExperimentError {
    ExperimentError::Plot {
        path: path.display().to_string(),
        message,
    }
}
