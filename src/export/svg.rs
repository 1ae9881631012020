//! Minimal SVG charts for the bench report: line charts (one series per line, optional dashed
//! reference curves) and stacked bars. Plain SVG 1.1, no scripts, readable in any browser.

use std::fmt::Write;

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points, drawn in order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (reference curves).
    pub dashed: bool,
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

const W: f64 = 600.0;
const H: f64 = 360.0;
const L: f64 = 70.0;
const R: f64 = 170.0;
const T: f64 = 48.0;
const B: f64 = 50.0;

/// Escapes text for XML and HTML (`&`, `<`, `>`, `"`).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick label: compact, at most 4 significant digits.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.3}k", v / 1e3)
    } else if a >= 1.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{v:.3}")
    }
}

/// "Nice" axis ticks covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).floor() * step;
    let mut out = Vec::new();
    // the last tick is at or above `hi`, so it can be the axis maximum
    loop {
        out.push(v);
        if v >= hi - step * 1e-9 {
            break;
        }
        v += step;
    }
    out
}

/// The SVG header and title; a second title line (after `\n`) is drawn smaller.
fn frame(out: &mut String, title: &str, width: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let mut lines = title.splitn(2, '\n');
    let head = lines.next().unwrap_or("");
    let _ = write!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        width / 2.0,
        esc(head)
    );
    if let Some(sub) = lines.next() {
        let _ = write!(
            out,
            r#"<text x="{}" y="34" text-anchor="middle" font-size="11">{}</text>"#,
            width / 2.0,
            esc(sub)
        );
    }
}

/// Horizontal grid lines and labels at the ticks `yt` of a y axis from 0 to `ymax`.
fn y_grid(out: &mut String, width: f64, yt: &[f64], ymax: f64) {
    for &y in yt {
        let yy = H - B - y / ymax * (H - T - B);
        let _ = write!(
            out,
            r##"<line x1="{L}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
            x2 = width - R,
            tx = L - 6.0,
            ty = yy + 4.0,
            label = tick(y)
        );
    }
}

/// The two axes and their labels.
fn axes(out: &mut String, width: f64, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{0}" stroke="#000"/><line x1="{L}" x2="{1}" y1="{0}" y2="{0}" stroke="#000"/><text x="{2}" y="{3}" text-anchor="middle">{4}</text><text transform="translate(16,{5}) rotate(-90)" text-anchor="middle">{6}</text>"##,
        H - B,
        width - R,
        (L + width - R) / 2.0,
        H - 12.0,
        esc(x_label),
        (T + H - B) / 2.0,
        esc(y_label)
    );
}

/// A line chart; `log_x` spaces x logarithmically (batch sizes). Empty series are skipped.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> String {
    let mut out = String::new();
    frame(&mut out, title, W);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    if pts.is_empty() {
        out.push_str(r#"<text x="280" y="180" text-anchor="middle">no data</text></svg>"#);
        return out;
    }
    let fx = |x: f64| if log_x { x.max(1e-12).log2() } else { x };
    let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(fx(p.0)), b.max(fx(p.0)))
    });
    if x1 - x0 < 1e-12 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let y1 = pts.iter().map(|p| p.1).fold(0f64, f64::max);
    let yt = ticks(0.0, if y1 > 0.0 { y1 * 1.05 } else { 1.0 });
    let ymax = *yt.last().unwrap_or(&1.0);
    let px = |x: f64| L + (fx(x) - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - y / ymax * (H - T - B);
    // axes and grid
    y_grid(&mut out, W, &yt, ymax);
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for &x in &xs {
        let _ = write!(
            out,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2}" stroke="#eee"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            px(x),
            T,
            H - B,
            H - B + 16.0,
            tick(x)
        );
    }
    axes(&mut out, W, x_label, y_label);
    for (i, s) in series.iter().filter(|s| !s.points.is_empty()).enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for &(x, y) in &s.points {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                px(x),
                py(y)
            );
        }
        let ly = T + 10.0 + 18.0 * i as f64;
        let _ = write!(
            out,
            r#"<line x1="{0}" x2="{1}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/><text x="{2}" y="{3}">{4}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 35.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Stacked vertical bars: one bar per category, one stacked part per `(name, values)`.
pub fn stacked_bars(
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    parts: &[(&str, Vec<f64>)],
) -> String {
    let width = (L + R + 28.0 * categories.len() as f64).max(W);
    let mut out = String::new();
    frame(&mut out, title, width);
    let totals: Vec<f64> = (0..categories.len())
        .map(|i| {
            parts
                .iter()
                .map(|p| p.1.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let top = totals.iter().copied().fold(0f64, f64::max);
    if categories.is_empty() || top <= 0.0 {
        out.push_str(r#"<text x="280" y="180" text-anchor="middle">no data</text></svg>"#);
        return out;
    }
    let yt = ticks(0.0, top * 1.05);
    let ymax = *yt.last().unwrap_or(&1.0);
    let py = |y: f64| H - B - y / ymax * (H - T - B);
    let slot = (width - L - R) / categories.len() as f64;
    y_grid(&mut out, width, &yt, ymax);
    for (i, cat) in categories.iter().enumerate() {
        let x = L + slot * i as f64 + slot * 0.15;
        let mut base = 0.0;
        for (j, (_, vals)) in parts.iter().enumerate() {
            let v = vals.get(i).copied().unwrap_or(0.0);
            if v > 0.0 {
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                    py(base + v),
                    slot * 0.7,
                    py(base) - py(base + v),
                    COLOURS[j % COLOURS.len()]
                );
            }
            base += v;
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x + slot * 0.35,
            H - B + 16.0,
            esc(cat)
        );
    }
    axes(&mut out, width, x_label, y_label);
    for (j, (name, _)) in parts.iter().enumerate() {
        let ly = T + 10.0 + 18.0 * j as f64;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="14" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            width - R + 10.0,
            ly - 6.0,
            COLOURS[j % COLOURS.len()],
            width - R + 30.0,
            ly + 4.0,
            esc(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A heatmap: `values[r][c]` as the shade of cell (row `r`, column `c`), white at 0 to dark
/// blue at `max` (the largest value when `None`), with row labels, a column axis and a scale.
pub fn heatmap(
    title: &str,
    x_label: &str,
    y_label: &str,
    rows: &[String],
    values: &[Vec<f64>],
    max: Option<f64>,
) -> String {
    let cols = values.iter().map(Vec::len).max().unwrap_or(0);
    let (cell_w, cell_h) = (
        (440.0 / cols.max(1) as f64).clamp(2.0, 24.0),
        (260.0 / rows.len().max(1) as f64).clamp(2.0, 24.0),
    );
    let width = L + cols as f64 * cell_w + R;
    let height = T + rows.len() as f64 * cell_h + B;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let mut lines = title.splitn(2, '\n');
    let _ = write!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        width / 2.0,
        esc(lines.next().unwrap_or(""))
    );
    if let Some(sub) = lines.next() {
        let _ = write!(
            out,
            r#"<text x="{}" y="34" text-anchor="middle" font-size="11">{}</text>"#,
            width / 2.0,
            esc(sub)
        );
    }
    if cols == 0 || rows.is_empty() {
        out.push_str(r#"<text x="100" y="80">no data</text></svg>"#);
        return out;
    }
    let top = values.iter().flatten().copied().fold(0f64, f64::max);
    let vmax = max.unwrap_or(top).max(f64::MIN_POSITIVE);
    let shade = |v: f64| {
        let f = (v / vmax).clamp(0.0, 1.0);
        let c = |w: f64, d: f64| (w + (d - w) * f).round() as u8;
        format!(
            "#{:02x}{:02x}{:02x}",
            c(255.0, 8.0),
            c(255.0, 48.0),
            c(255.0, 107.0)
        )
    };
    let label_every = rows.len().div_ceil(16).max(1);
    for (r, row) in values.iter().enumerate() {
        let y = T + r as f64 * cell_h;
        if r % label_every == 0 {
            let _ = write!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"#,
                L - 4.0,
                y + cell_h / 2.0 + 3.0,
                esc(&rows[r])
            );
        }
        for (c, &v) in row.iter().enumerate() {
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.2}" height="{:.2}" fill="{}"><title>{} {}: {}</title></rect>"#,
                L + c as f64 * cell_w,
                y,
                cell_w,
                cell_h,
                shade(v),
                esc(&rows[r]),
                c,
                tick(v)
            );
        }
    }
    let bottom = T + rows.len() as f64 * cell_h;
    let col_every = cols.div_ceil(16).max(1);
    for c in (0..cols).step_by(col_every) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{c}</text>"#,
            L + (c as f64 + 0.5) * cell_w,
            bottom + 14.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(14,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        L + cols as f64 * cell_w / 2.0,
        bottom + 34.0,
        esc(x_label),
        T + rows.len() as f64 * cell_h / 2.0,
        esc(y_label)
    );
    // the scale: five steps from 0 to the maximum
    let sx = L + cols as f64 * cell_w + 20.0;
    for i in 0..5 {
        let v = vmax * (4 - i) as f64 / 4.0;
        let y = T + i as f64 * 18.0;
        let _ = write!(
            out,
            r##"<rect x="{sx:.1}" y="{y:.1}" width="14" height="14" fill="{}" stroke="#999"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
            shade(v),
            sx + 20.0,
            y + 11.0,
            tick(v)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A radar chart: one spoke per axis, each series a closed polygon of its values in [0, 1]
/// (1 at the rim); a missing value sits at the centre and is marked `n/a` in the legend.
pub fn radar(title: &str, axes: &[&str], series: &[(String, Vec<Option<f64>>)]) -> String {
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    ];
    let (w, h, cx, cy, r) = (720.0, 400.0, 200.0, 215.0, 150.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        w / 2.0,
        esc(title)
    );
    let n = axes.len().max(1) as f64;
    let at = |i: usize, v: f64| {
        let a = -std::f64::consts::FRAC_PI_2 + i as f64 * 2.0 * std::f64::consts::PI / n;
        (cx + r * v * a.cos(), cy + r * v * a.sin())
    };
    for ring in [0.25, 0.5, 0.75, 1.0] {
        let pts: Vec<String> = (0..axes.len())
            .map(|i| {
                let (x, y) = at(i, ring);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        out += &format!(
            "<polygon points=\"{}\" fill=\"none\" stroke=\"#ccc\"/>\n",
            pts.join(" ")
        );
    }
    for (i, name) in axes.iter().enumerate() {
        let (x, y) = at(i, 1.0);
        let (lx, ly) = at(i, 1.14);
        out += &format!(
            "<line x1=\"{cx}\" y1=\"{cy}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"#999\"/>\n<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" dominant-baseline=\"middle\">{}</text>\n",
            esc(name)
        );
    }
    for (k, (name, vals)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (x, y) = at(i, v.unwrap_or(0.0).clamp(0.0, 1.0));
                format!("{x:.1},{y:.1}")
            })
            .collect();
        out += &format!(
            "<polygon class=\"series\" points=\"{}\" fill=\"{color}\" fill-opacity=\"0.18\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            pts.join(" ")
        );
        let missing: Vec<&str> = vals
            .iter()
            .zip(axes)
            .filter(|(v, _)| v.is_none())
            .map(|(_, a)| *a)
            .collect();
        let ly = 60.0 + k as f64 * 20.0;
        out += &format!(
            "<rect x=\"385\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\n<text x=\"402\" y=\"{ly}\">{}{}</text>\n",
            ly - 10.0,
            esc(name),
            if missing.is_empty() {
                String::new()
            } else {
                format!(" ({} n/a)", missing.join(", "))
            }
        );
    }
    out += "</svg>\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed() {
        let s = line_chart(
            "a < b",
            "batch",
            "tokens/s",
            &[Series {
                name: "p=128".into(),
                points: vec![(1.0, 10.0), (4.0, 30.0), (16.0, 70.0)],
                dashed: false,
            }],
            true,
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("a &lt; b") && s.contains("<polyline"));
        assert_eq!(s.matches("<circle").count(), 3);
        let b = stacked_bars(
            "t",
            "layer",
            "ms",
            &["0".into(), "1".into()],
            &[("attn", vec![1.0, 2.0]), ("moe", vec![3.0, 0.0])],
        );
        assert_eq!(
            b.matches("<rect x=").count(),
            3 + 2,
            "three bar parts and two legend keys"
        );
        assert!(line_chart("e", "x", "y", &[], false).contains("no data"));
        assert_eq!(ticks(0.0, 1.0).first(), Some(&0.0));
        assert!(ticks(0.0, 73.5).last().unwrap() >= &73.5);
    }
}
