//! Loss curves: `loss.svg` (axes, labels, legend) and `loss.png` (the same curves rasterised,
//! without text) from `metrics.jsonl`. Training loss per step (blue), validation loss per epoch
//! at the epoch's last step (red). Drawn directly (no plotting crate) to keep dependencies small.

use std::path::Path;

struct Series {
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

fn read(out: &Path) -> Series {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
    let mut s = Series {
        train: Vec::new(),
        val: Vec::new(),
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let step = v["step"].as_f64().unwrap_or(0.0);
        match v["kind"].as_str() {
            Some("step") => {
                if let Some(l) = v["loss"].as_f64().filter(|l| l.is_finite()) {
                    s.train.push((step, l));
                }
            }
            Some("epoch") => {
                if let Some(l) = v["val_loss"].as_f64().filter(|l| l.is_finite()) {
                    s.val.push((step, l));
                }
            }
            _ => {}
        }
    }
    s
}

const W: usize = 640;
const H: usize = 400;
const M: f64 = 50.0;

fn bounds(s: &Series) -> (f64, f64, f64, f64) {
    let all = s.train.iter().chain(&s.val);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let y0 = y0.min(0.0);
    (x0, x1.max(x0 + 1.0), y0, y1.max(y0 + 1e-6))
}

fn project(b: (f64, f64, f64, f64), (x, y): (f64, f64)) -> (f64, f64) {
    let px = M + (x - b.0) / (b.1 - b.0) * (W as f64 - 2.0 * M);
    let py = H as f64 - M - (y - b.2) / (b.3 - b.2) * (H as f64 - 2.0 * M);
    (px, py)
}

/// Write `loss.svg` and `loss.png` into `out`.
pub fn loss_plots(out: &Path) -> anyhow::Result<()> {
    let s = read(out);
    let b = bounds(&s);
    std::fs::write(out.join("loss.svg"), svg(&s, b))?;
    png_plot(&s, b, &out.join("loss.png"))?;
    Ok(())
}

fn svg(s: &Series, b: (f64, f64, f64, f64)) -> String {
    let poly = |pts: &[(f64, f64)]| {
        pts.iter()
            .map(|&p| {
                let (x, y) = project(b, p);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (l, r, t, bo) = (M, W as f64 - M, M, H as f64 - M);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{l}" y1="{bo}" x2="{r}" y2="{bo}" stroke="black"/>
<line x1="{l}" y1="{t}" x2="{l}" y2="{bo}" stroke="black"/>
<text x="{cx}" y="{ly}" text-anchor="middle">step</text>
<text x="12" y="{cy}" transform="rotate(-90 12 {cy})" text-anchor="middle">loss</text>
<text x="{l}" y="{ty}" text-anchor="middle">{x0}</text>
<text x="{r}" y="{ty}" text-anchor="middle">{x1}</text>
<text x="{yl}" y="{bo}" text-anchor="end">{y0:.3}</text>
<text x="{yl}" y="{t}" text-anchor="end">{y1:.3}</text>
<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{train}"/>
<polyline fill="none" stroke="crimson" stroke-width="2" points="{val}"/>
<text x="{lx}" y="20" fill="steelblue">training loss</text>
<text x="{lx2}" y="20" fill="crimson">validation loss</text>
"#,
        cx = W as f64 / 2.0,
        ly = H as f64 - 12.0,
        cy = H as f64 / 2.0,
        ty = bo + 16.0,
        yl = l - 4.0,
        x0 = b.0,
        x1 = b.1,
        y0 = b.2,
        y1 = b.3,
        train = poly(&s.train),
        val = poly(&s.val),
        lx = M,
        lx2 = M + 120.0,
    );
    for &p in &s.val {
        let (x, y) = project(b, p);
        out.push_str(&format!(
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="crimson"/>"#
        ));
        out.push('\n');
    }
    out.push_str("</svg>\n");
    out
}

fn png_plot(s: &Series, b: (f64, f64, f64, f64), path: &Path) -> anyhow::Result<()> {
    let mut px = vec![255u8; W * H * 3];
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = (y as usize * W + x as usize) * 3;
            px[i..i + 3].copy_from_slice(&c);
        }
    };
    let line =
        |a: (f64, f64), z: (f64, f64), c: [u8; 3], put: &mut dyn FnMut(i64, i64, [u8; 3])| {
            let n = ((z.0 - a.0).abs().max((z.1 - a.1).abs()).ceil() as usize).max(1);
            for k in 0..=n {
                let t = k as f64 / n as f64;
                let (x, y) = (a.0 + (z.0 - a.0) * t, a.1 + (z.1 - a.1) * t);
                put(x.round() as i64, y.round() as i64, c);
                put(x.round() as i64, y.round() as i64 + 1, c);
            }
        };
    let black = [0, 0, 0];
    line(
        (M, H as f64 - M),
        (W as f64 - M, H as f64 - M),
        black,
        &mut put,
    );
    line((M, M), (M, H as f64 - M), black, &mut put);
    for (pts, c) in [(&s.train, [70u8, 130, 180]), (&s.val, [220, 20, 60])] {
        for w in pts.windows(2) {
            line(project(b, w[0]), project(b, w[1]), c, &mut put);
        }
        if pts.len() == 1 {
            let p = project(b, pts[0]);
            line((p.0 - 3.0, p.1), (p.0 + 3.0, p.1), c, &mut put);
        }
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W as u32, H as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&px)?;
    Ok(())
}
