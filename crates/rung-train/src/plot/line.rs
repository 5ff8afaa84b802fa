//! Line charts: [`LineChart`] and [`line_chart`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use super::{PlotError, register_font};

/// Size of both files, in pixels (the SVG's user units).
pub const SIZE: (u32, u32) = (800, 500);

/// Series with at most this many points get a marker on every point by [`Series::new`], so a
/// short series (one point per epoch, say) stays visible and its points countable.
pub const MARKER_LIMIT: usize = 30;

/// Tableau 10: distinct hues that stay distinguishable for most colour-vision deficiencies.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One named curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in order. Non-finite points (and, on a log axis, points with
    /// `x ≤ 0`) are left out.
    pub points: Vec<(f64, f64)>,
    /// Draw a marker on every point.
    pub markers: bool,
}

impl Series {
    /// A series with markers when it has at most [`MARKER_LIMIT`] points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        let markers = points.len() <= MARKER_LIMIT;
        Self {
            name: name.into(),
            points,
            markers,
        }
    }
}

/// A chart of one or more series against a shared x axis. Colours follow the series order
/// (Tableau 10, repeating after ten); the legend lists every series by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    /// Caption above the plot.
    pub title: String,
    /// Description of the x axis.
    pub x_label: String,
    /// Description of the y axis.
    pub y_label: String,
    /// Logarithmic x axis (e.g. model size or data size).
    pub log_x: bool,
    /// The curves.
    pub series: Vec<Series>,
}

impl LineChart {
    /// The points of each series that can be drawn: finite, and with `x > 0` on a log axis.
    fn drawable(&self) -> Vec<Vec<(f64, f64)>> {
        self.series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0))
                    .collect()
            })
            .collect()
    }
}

/// Writes `stem.svg` and `stem.png` (e.g. stem `runs/x/loss` gives `runs/x/loss.svg` and
/// `runs/x/loss.png`), creating the folder if needed. A chart without any drawable point is
/// still written (axes, title, legend), so a report never lacks a file it links to.
pub fn line_chart(stem: &Path, chart: &LineChart) -> Result<(), PlotError> {
    register_font();
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            action: "create the folder",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let points = chart.drawable();
    let svg = with_extension(stem, "svg");
    let png = with_extension(stem, "png");
    let result = draw(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        chart,
        &points,
    );
    result.map_err(|message| PlotError::Draw { path: svg, message })?;
    let result = draw(
        BitMapBackend::new(&png, SIZE).into_drawing_area(),
        chart,
        &points,
    );
    result.map_err(|message| PlotError::Draw { path: png, message })
}

/// `stem` with `.ext` appended (not replacing: a stem like `run.v2/loss` keeps its dots).
fn with_extension(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Draws on one backend and flushes it (`present` writes the PNG).
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &LineChart,
    points: &[Vec<(f64, f64)>],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(text)?;
    let (x, y) = bounds(points, chart.log_x);
    if chart.log_x {
        // plotters labels a log axis at 10^k only, or also at every k·10^k when the hint allows
        // ten points a decade; the latter (shown at 1, 2, 5 by `log_tick`) up to six decades.
        let decades = (x.end / x.start).log10().round() as usize;
        let labels = if decades <= 6 { 10 * decades } else { decades };
        draw_axes(&root, chart, points, x.log_scale(), y, labels)?;
    } else {
        draw_axes(&root, chart, points, x, y, 10)?;
    }
    root.present().map_err(text)
}

fn draw_axes<DB, X>(
    root: &DrawingArea<DB, Shift>,
    chart: &LineChart,
    points: &[Vec<(f64, f64)>],
    x: X,
    y: Range<f64>,
    x_labels: usize,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(text)?;
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .x_labels(x_labels)
        .x_label_formatter(&|v| if chart.log_x { log_tick(*v) } else { tick(*v) })
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(235, 235, 235))
        // On a log axis plotters spaces the light lines evenly in value, so they crowd into grey
        // bands below each decade; one between two labelled lines is enough.
        .x_max_light_lines(if chart.log_x { 1 } else { 10 })
        .draw()
        .map_err(text)?;
    for (i, (series, pts)) in chart.series.iter().zip(points).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(text)?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if series.markers {
            ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(text)?;
        }
    }
    if !chart.series.is_empty() {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(text)?;
    }
    Ok(())
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Axis ranges covering every point: x exactly, y with 5% headroom either side. Degenerate
/// ranges (no points, one point, a flat line) are widened so the axes still have extent.
pub(crate) fn bounds(points: &[Vec<(f64, f64)>], log_x: bool) -> (Range<f64>, Range<f64>) {
    let mut x = (f64::INFINITY, f64::NEG_INFINITY);
    let mut y = x;
    for &(px, py) in points.iter().flatten() {
        x = (x.0.min(px), x.1.max(px));
        y = (y.0.min(py), y.1.max(py));
    }
    if x.0 > x.1 {
        return (if log_x { 1.0..10.0 } else { 0.0..1.0 }, 0.0..1.0);
    }
    let x = if log_x {
        // Whole decades, so the axis always has labelled key points (plotters places them at
        // 10^k and k·10^k only).
        let low = x.0.log10().floor() as i32;
        let high = (x.1.log10().ceil() as i32).max(low + 1);
        10f64.powi(low)..10f64.powi(high)
    } else if x.0 < x.1 {
        x.0..x.1
    } else {
        x.0 - 0.5..x.0 + 0.5
    };
    let pad = if y.0 < y.1 {
        (y.1 - y.0) * 0.05
    } else {
        y.0.abs().max(1.0) * 0.05
    };
    (x, y.0 - pad..y.1 + pad)
}

/// Tick labels, short enough for a crowded (log) axis: integers below 10,000 as they are, larger
/// values with an SI suffix (`12.5k`, `3M`, `1.2G`), others with four significant digits, tiny
/// values in scientific notation.
pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e4 {
        let (scale, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
            .into_iter()
            .find(|&(scale, _)| a >= scale)
            .expect("a ≥ 1e4");
        return format!("{}{suffix}", significant(v / scale, 3));
    }
    if v == v.round() {
        format!("{v:.0}")
    } else if a != 0.0 && a < 1e-3 {
        format!("{v:.1e}")
    } else {
        significant(v, 4)
    }
}

/// Log-axis labels at 1, 2 and 5 × 10^k only: plotters puts a key point (and a grid line) at
/// every k × 10^k, whose labels would run into each other near the end of a decade.
fn log_tick(v: f64) -> String {
    let mantissa = (v / 10f64.powi(v.abs().log10().floor() as i32)).round();
    if [1.0, 2.0, 5.0, 10.0].contains(&mantissa) {
        tick(v)
    } else {
        String::new()
    }
}

/// `v` with `digits` significant digits, trailing zeros dropped.
fn significant(v: f64, digits: i32) -> String {
    let a = v.abs();
    let decimals = if a == 0.0 {
        0
    } else {
        (digits - 1 - a.log10().floor() as i32).clamp(0, 8) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_well() {
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(1200.0), "1200");
        assert_eq!(tick(12_500.0), "12.5k");
        assert_eq!(tick(3e6), "3M");
        assert_eq!(tick(4.7e7), "47M");
        assert_eq!(tick(9_999_999.9), "10M");
        assert_eq!(tick(1.25e9), "1.25G");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(2.34567), "2.346");
        assert_eq!(tick(0.000_12), "1.2e-4");
        assert_eq!(tick(-1.5), "-1.5");
        assert_eq!(log_tick(2e6), "2M");
        assert_eq!(log_tick(5e-2), "0.05");
        assert_eq!(log_tick(7e6), "");
        assert_eq!(log_tick(9.999_999e6), "10M");
    }

    #[test]
    fn bounds_cover_the_points_and_widen_degenerate_ranges() {
        let (x, y) = bounds(&[vec![(1.0, 2.0), (3.0, 4.0)]], false);
        assert_eq!(x, 1.0..3.0);
        assert!((y.start - 1.9).abs() < 1e-12 && (y.end - 4.1).abs() < 1e-12);
        let (x, y) = bounds(&[vec![(5.0, 2.0)]], false);
        assert_eq!(x, 4.5..5.5);
        assert!(y.start < 2.0 && y.end > 2.0);
        assert_eq!(bounds(&[vec![(4.0, 1.0)]], true).0, 1.0..10.0);
        assert_eq!(bounds(&[vec![(1e6, 1.0), (4.7e7, 2.0)]], true).0, 1e6..1e8);
        assert_eq!(
            bounds(&[vec![(0.02, 1.0), (100.0, 2.0)]], true).0,
            0.01..100.0
        );
        assert_eq!(bounds(&[], true).0, 1.0..10.0);
    }

    #[test]
    fn log_axes_drop_non_positive_x_and_every_axis_drops_non_finite_points() {
        let chart = LineChart {
            log_x: true,
            series: vec![Series::new(
                "a",
                vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (-1.0, 2.0)],
            )],
            ..LineChart::default()
        };
        assert_eq!(chart.drawable(), vec![vec![(2.0, 3.0)]]);
        assert!(chart.series[0].markers);
        assert!(!Series::new("long", vec![(0.0, 0.0); MARKER_LIMIT + 1]).markers);
    }
}
