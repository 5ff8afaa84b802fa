//! Charts with [plotters]: every chart is written twice, as `STEM.svg` (vector, for reports and
//! the web) and `STEM.png` (raster, for viewers without SVG), both with title, axis labels and
//! legend.
//!
//! - [`line_chart`] draws a [`LineChart`]: several named [`Series`] of `(x, y)` points in
//!   distinct colours, linear or logarithmic x axis, markers on short series.
//! - [`loss_plots`] draws a run's loss curves (`loss.svg`, `loss.png`) from its
//!   `metrics.jsonl`, through [`loss_chart`] and [`line_chart`].
//! - [`register_font`] makes the bundled font known to plotters. The chart functions call it
//!   themselves; code that draws its own plotters charts (e.g. scatter plots in an experiment
//!   report) calls it once before drawing.
//!
//! # Why a bundled font
//!
//! plotters' raster backend needs glyph outlines. Its `ttf` feature finds system fonts through
//! font-kit (fontconfig), which a bare CI box lacks; the `ab_glyph` feature used here renders
//! from font bytes the program supplies instead. rung ships DejaVu Sans (`assets/`, Bitstream
//! Vera licence, see `assets/DejaVuSans-LICENSE.txt`) inside the binary, so a PNG has the same
//! text on every machine. The SVG files only name the family (`sans-serif`); the viewer picks
//! the font, but plotters still measures text with the bundled one to lay the chart out.

mod line;
mod loss;

use std::path::PathBuf;
use std::sync::Once;

use plotters::style::FontStyle;

pub use line::{LineChart, MARKER_LIMIT, SIZE, Series, line_chart};
pub use loss::{TRAIN_SERIES, VAL_SERIES, loss_chart, loss_plots};

/// DejaVu Sans 2.37, unmodified (see `assets/README.md`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The families the bundled font is registered under: plotters' generic families, so that
/// `("sans-serif", 16).into_font()`, `FontFamily::Serif` and `FontFamily::Monospace` all draw
/// instead of failing with "font unavailable".
pub const FONT_FAMILIES: [&str; 3] = ["sans-serif", "serif", "monospace"];

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create the folder of").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// plotters failed while drawing or encoding a chart file.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The chart file.
        path: PathBuf,
        /// plotters' error, as text (its error type is generic over the backend).
        message: String,
    },
}

/// Registers the bundled font with plotters under every name of [`FONT_FAMILIES`], in every
/// style (plotters falls back from bold or italic to the normal face). Idempotent and
/// thread-safe: the first call registers, later calls return at once.
///
/// Call it before drawing any plotters chart in a program that uses rung's plotters features
/// (`ab_glyph`): without a registered font, plotters cannot measure or draw text.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in FONT_FAMILIES {
            // The font is compiled in and parsed by the tests, so this cannot fail at run time.
            plotters::style::register_font(family, FontStyle::Normal, FONT)
                .unwrap_or_else(|_| panic!("the bundled DejaVu Sans does not parse"));
        }
    });
}
