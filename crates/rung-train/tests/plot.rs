//! Charts: both files are written, the PNG decodes and carries text, the SVG names what it shows.

use std::path::{Path, PathBuf};

use rung_train::plot::{self, LineChart, Series};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rung-plot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A decoded RGB(A) image.
struct Image {
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        pixels.truncate(info.buffer_size());
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        Image {
            width: info.width as usize,
            height: info.height as usize,
            channels: info.color_type.samples(),
            pixels,
        }
    }

    fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * self.channels;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Pixels in the rectangle that satisfy `f`.
    fn count(
        &self,
        xs: std::ops::Range<usize>,
        ys: std::ops::Range<usize>,
        f: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| f(self.rgb(x, y)))
            .count()
    }
}

fn dark(c: [u8; 3]) -> bool {
    c.iter().all(|&v| v < 100)
}

fn chart() -> LineChart {
    LineChart {
        title: "Throughput by model size".into(),
        x_label: "parameters".into(),
        y_label: "tokens per second".into(),
        log_x: true,
        series: vec![
            Series::new(
                "rung <flex>",
                vec![(1e6, 900.0), (1e7, 300.0), (4.7e7, 80.0)],
            ),
            Series::new(
                "PyTorch",
                (0..100)
                    .map(|i| (1e6 * 1.04f64.powi(i), 1000.0 / (1.0 + i as f64)))
                    .collect(),
            ),
        ],
    }
}

#[test]
fn line_chart_writes_an_svg_naming_its_series_and_axes() {
    let dir = tmp("svg");
    plot::line_chart(&dir.join("nested/speed"), &chart()).unwrap();
    let svg = std::fs::read_to_string(dir.join("nested/speed.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    for text in [
        "Throughput by model size",
        "parameters",
        "tokens per second",
        "rung &lt;flex&gt;",
        "PyTorch",
    ] {
        assert!(svg.contains(text), "the SVG lacks {text:?}");
    }
    // Each series is a curve and a legend line in its own colour (Tableau blue, then red).
    for colour in ["#1F77B4", "#D62728"] {
        let lines = svg.matches(&format!("stroke=\"{colour}\"")).count();
        assert_eq!(lines, 2, "{colour}: curve and legend line");
    }
    // Log-axis ticks are short (SI suffixes), markers only on the short series (3 circles).
    assert!(
        svg.contains("\n1M\n") && svg.contains("\n50M\n"),
        "x ticks 1M, 2M, 5M … 100M"
    );
    assert!(!svg.contains("\n7M\n"), "no crowded 7M, 8M, 9M labels");
    assert_eq!(svg.matches("<circle").count(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn line_chart_writes_a_png_with_text_and_curves() {
    let dir = tmp("png");
    plot::line_chart(&dir.join("speed"), &chart()).unwrap();
    let image = Image::read(&dir.join("speed.png"));
    assert_eq!((image.width, image.height), (800, 500));
    let (w, h) = (image.width, image.height);
    let non_white = image.count(0..w, 0..h, |c| c != [255, 255, 255]);
    assert!(
        non_white > w * h / 100,
        "the PNG is nearly blank: {non_white} non-white pixels"
    );
    // The title, centred in the top 40 pixels, is drawn in black glyphs.
    let title = image.count(w / 4..3 * w / 4, 0..40, dark);
    assert!(
        title > 200,
        "no title text: {title} dark pixels in the title band"
    );
    // The y-axis description, rotated in the left margin.
    let y_label = image.count(0..40, h / 4..3 * h / 4, dark);
    assert!(
        y_label > 100,
        "no y label: {y_label} dark pixels in the left margin"
    );
    // Both series colours appear (Tableau blue and red).
    let blue = image.count(0..w, 0..h, |c| c == [31, 119, 180]);
    let red = image.count(0..w, 0..h, |c| c == [214, 39, 40]);
    assert!(
        blue > 100 && red > 100,
        "curves: {blue} blue, {red} red pixels"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_chart_is_still_written() {
    let dir = tmp("empty");
    plot::register_font();
    plot::register_font();
    let empty = LineChart {
        title: "Nothing yet".into(),
        ..LineChart::default()
    };
    plot::line_chart(&dir.join("empty"), &empty).unwrap();
    let svg = std::fs::read_to_string(dir.join("empty.svg")).unwrap();
    assert!(svg.contains("Nothing yet"));
    let image = Image::read(&dir.join("empty.png"));
    assert!(image.count(0..image.width, 0..40, dark) > 50);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn loss_plots_show_training_and_validation_curves() {
    let dir = tmp("loss");
    let mut metrics = String::new();
    for step in 1..=40 {
        let loss = 6.0 / step as f64;
        metrics.push_str(&format!(
            "{{\"kind\":\"step\",\"step\":{step},\"loss\":{loss}}}\n"
        ));
        if step % 10 == 0 {
            let val = 7.0 / step as f64;
            metrics.push_str(&format!(
                "{{\"kind\":\"epoch\",\"epoch\":{},\"step\":{step},\"val_loss\":{val}}}\n",
                step / 10
            ));
        }
    }
    metrics.push_str("not json\n{\"kind\":\"step\",\"step\":41,\"loss\":null}\n");
    std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
    let chart = plot::loss_chart(&dir).unwrap();
    assert_eq!(chart.series.len(), 2);
    assert_eq!(chart.series[0].points.len(), 40);
    assert_eq!(chart.series[0].points[3], (4.0, 1.5));
    assert_eq!(
        chart.series[1].points,
        vec![(10.0, 0.7), (20.0, 0.35), (30.0, 7.0 / 30.0), (40.0, 0.175)]
    );
    assert!(!chart.series[0].markers && chart.series[1].markers);
    plot::loss_plots(&dir).unwrap();
    let svg = std::fs::read_to_string(dir.join("loss.svg")).unwrap();
    for text in [
        plot::TRAIN_SERIES,
        plot::VAL_SERIES,
        "optimizer step",
        "loss (mean",
    ] {
        assert!(svg.contains(text), "loss.svg lacks {text:?}");
    }
    let image = Image::read(&dir.join("loss.png"));
    assert!(
        image.count(0..image.width, 0..40, dark) > 50,
        "loss.png has a title"
    );
    let err = plot::loss_plots(&dir.join("missing")).unwrap_err();
    assert!(err.to_string().contains("metrics.jsonl"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
