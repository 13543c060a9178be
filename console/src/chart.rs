//! Small line charts drawn on the server as SVG: no script, no inline
//! style (the CSP forbids both), colours from the stylesheet's classes.

use std::fmt::Write;

/// One line: its name and its (x, y) points.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Shown in the legend (escaped).
    pub name: String,
    /// Points in any order of x; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

/// At most this many points of one series are drawn; more are thinned
/// evenly (a 10,000-point history draws in full).
const MAX_POINTS: usize = 20_000;

/// Colours cycle through this many stylesheet classes.
const PALETTE: usize = 6;

/// An SVG chart of `series`, `width` × `height` user units, with the y
/// range labelled and a legend. Empty when no series has a finite point.
pub fn svg(series: &[Series], width: u32, height: u32) -> String {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all = series.iter().flat_map(|s| s.points.iter().filter(finite));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return String::new();
    }
    if x1 - x0 <= 0.0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    if y1 - y0 <= 0.0 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let (w, h) = (f64::from(width), f64::from(height));
    let (left, right, top, bottom) = (48.0, 8.0, 8.0, 20.0 + 14.0 * series.len() as f64);
    let plot_w = (w - left - right).max(1.0);
    let plot_h = (h - top - bottom).max(1.0);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * plot_w;
    let py = |y: f64| top + (y1 - y) / (y1 - y0) * plot_h;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">"#
    );
    let _ = write!(
        out,
        r#"<rect class="frame" x="{left}" y="{top}" width="{plot_w:.1}" height="{plot_h:.1}"/>"#
    );
    let _ = write!(
        out,
        r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
        left - 4.0,
        top + 10.0,
        number(y1),
        left - 4.0,
        top + plot_h,
        number(y0)
    );
    for (i, s) in series.iter().enumerate() {
        let points: Vec<&(f64, f64)> = s.points.iter().filter(finite).collect();
        let stride = points.len().div_ceil(MAX_POINTS).max(1);
        let mut path = String::new();
        for (x, y) in points.iter().step_by(stride) {
            let _ = write!(path, "{:.1},{:.1} ", px(*x), py(*y));
        }
        let class = i % PALETTE;
        let _ = write!(
            out,
            r#"<polyline class="line c{class}" points="{}"/>"#,
            path.trim_end()
        );
        if points.len() == 1
            && let Some((x, y)) = points.first()
        {
            let _ = write!(
                out,
                r#"<circle class="dot c{class}" cx="{:.1}" cy="{:.1}" r="3"/>"#,
                px(*x),
                py(*y)
            );
        }
        let _ = write!(
            out,
            r#"<text class="legend c{class}" x="{left}" y="{:.1}">{}</text>"#,
            top + plot_h + 16.0 + 14.0 * i as f64,
            escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// A short label for an axis value.
fn number(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// `text` safe inside SVG text.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_scaled_into_the_plot_and_the_range_is_labelled() {
        let s = Series {
            name: "auc".into(),
            points: vec![(1.0, 0.5), (2.0, 1.0), (3.0, f64::NAN)],
        };
        let svg = svg(&[s], 248, 70);
        // x 1..2 spans 48..240, y 0.5..1 spans 42..8 (70 − 20 − 14 − 8 = 28 high + 8).
        assert!(svg.contains(r#"points="48.0,36.0 240.0,8.0""#), "{svg}");
        assert!(
            svg.contains(">1</text>") && svg.contains(">0.500</text>"),
            "{svg}"
        );
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn names_are_escaped_and_nothing_is_drawn_without_points() {
        let s = Series {
            name: "<script>alert(1)</script>".into(),
            points: vec![(0.0, 1.0)],
        };
        let svg = svg(&[s], 200, 80);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("<circle"), "a single point is a dot: {svg}");
        assert_eq!(super::svg(&[Series::default()], 200, 80), "");
    }

    #[test]
    fn ten_thousand_points_are_all_drawn_and_more_are_thinned() {
        let many = |n: usize| Series {
            name: "loss".into(),
            points: (0..n).map(|i| (i as f64, (i as f64).sin())).collect(),
        };
        let count = |svg: &str| {
            svg.split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .map_or(0, |p| p.split(' ').count())
        };
        assert_eq!(count(&svg(&[many(10_000)], 600, 200)), 10_000);
        assert!(count(&svg(&[many(50_000)], 600, 200)) <= MAX_POINTS);
    }
}
