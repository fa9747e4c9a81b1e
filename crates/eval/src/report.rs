//! Evaluation reports: one JSON document and one self-contained HTML page (tables and inline SVG
//! charts, no scripts, no external resources).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::choice::ChoiceResult;
use crate::code::CodeEvalResult;
use crate::compare::{Comparison, Direction};
use crate::error::Result;
use crate::grid::GridResult;
use crate::io::write_atomic;
use crate::perplexity::PerplexityResult;

/// A result with the name of the suite that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Named<T> {
    /// Suite name (e.g. `domain-text`, `humaneval`, `general_knowledge`).
    pub name: String,
    /// The result.
    pub result: T,
}

/// Everything one `infuse eval` run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalReport {
    /// Page title.
    pub title: String,
    /// Model identifier (path or name).
    pub model: String,
    /// Baseline model of the comparisons, if any.
    pub baseline_model: Option<String>,
    /// Perplexity suites.
    pub perplexity: Vec<Named<PerplexityResult>>,
    /// Code suites.
    pub code: Vec<Named<CodeEvalResult>>,
    /// Multiple-choice suites.
    pub choice: Vec<Named<ChoiceResult>>,
    /// Before/after comparisons.
    pub comparisons: Vec<Comparison>,
    /// Decoding grid searches.
    pub grid: Vec<Named<GridResult>>,
}

impl EvalReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Read a report written by [`Self::write_json`].
    pub fn from_json(text: &str) -> Result<Self> {
        Ok(serde_json::from_str(text)?)
    }

    /// Write the JSON atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json()?.as_bytes())
    }

    /// Write the HTML page atomically.
    pub fn write_html(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_html().as_bytes())
    }

    /// The HTML page.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let title = if self.title.is_empty() {
            "infuse evaluation"
        } else {
            self.title.as_str()
        };
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{CSS}</style></head><body>\n<h1>{}</h1>\n<p>Model: <code>{}</code>",
            esc(title),
            esc(title),
            esc(&self.model)
        );
        if let Some(b) = &self.baseline_model {
            let _ = write!(h, " &middot; baseline: <code>{}</code>", esc(b));
        }
        h.push_str("</p>\n");
        if !self.comparisons.is_empty() {
            self.html_comparisons(&mut h);
        }
        if !self.perplexity.is_empty() {
            self.html_perplexity(&mut h);
        }
        for c in &self.code {
            html_code(&mut h, c);
        }
        for c in &self.choice {
            html_choice(&mut h, c);
        }
        for g in &self.grid {
            html_grid(&mut h, g);
        }
        h.push_str("</body></html>\n");
        h
    }

    fn html_comparisons(&self, h: &mut String) {
        h.push_str("<h2>Before / after</h2>\n<table><tr><th>metric</th><th>before</th><th>after</th><th>delta</th><th>CI</th><th>n</th><th>verdict</th></tr>\n");
        for c in &self.comparisons {
            let verdict = if c.regression {
                "<span class=\"bad\">REGRESSION</span>"
            } else if c.significant
                && ((c.delta > 0.0) == (c.direction == Direction::HigherIsBetter))
            {
                "<span class=\"good\">improved</span>"
            } else {
                "unchanged"
            };
            let _ = writeln!(
                h,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{:+.4}</td><td>[{:+.4}, {:+.4}] ({:.0}%)</td><td>{}</td><td>{}</td></tr>",
                if c.regression {
                    " class=\"regress\""
                } else {
                    ""
                },
                esc(&c.metric),
                fmt(c.before),
                fmt(c.after),
                c.delta,
                c.ci_low,
                c.ci_high,
                c.confidence * 100.0,
                c.paired,
                verdict
            );
        }
        h.push_str("</table>\n");
        let bars: Vec<Bar> = self
            .comparisons
            .iter()
            .map(|c| Bar {
                label: c.metric.clone(),
                value: c.delta,
                interval: Some((c.ci_low, c.ci_high)),
                highlight: c.regression,
            })
            .collect();
        h.push_str(&bar_chart(
            "Delta (after - before) with bootstrap interval",
            &bars,
        ));
    }

    fn html_perplexity(&self, h: &mut String) {
        h.push_str("<h2>Perplexity</h2>\n<table><tr><th>suite</th><th>docs</th><th>tokens</th><th>token ppl</th><th>word ppl</th><th>byte ppl</th><th>bits/byte</th><th>window</th></tr>\n");
        for p in &self.perplexity {
            let r = &p.result;
            let opt = |v: Option<f64>| v.map(fmt).unwrap_or_else(|| "&ndash;".into());
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                r.documents.len(),
                r.tokens,
                fmt(r.token_perplexity),
                opt(r.word_perplexity),
                opt(r.byte_perplexity),
                opt(r.bits_per_byte),
                r.max_length
            );
        }
        h.push_str("</table>\n");
        let bars: Vec<Bar> = self
            .perplexity
            .iter()
            .filter_map(|p| {
                p.result.bits_per_byte.map(|v| Bar {
                    label: p.name.clone(),
                    value: v,
                    interval: None,
                    highlight: false,
                })
            })
            .collect();
        if !bars.is_empty() {
            h.push_str(&bar_chart("Bits per byte (lower is better)", &bars));
        }
    }
}

fn html_code(h: &mut String, c: &Named<CodeEvalResult>) {
    let r = &c.result;
    let _ = writeln!(h, "<h2>Code: {}</h2>", esc(&c.name));
    let _ = write!(
        h,
        "<p>{} problems, {} samples each, sandbox isolation: {:?}; generation {:.1} s, execution {:.1} s",
        r.problems.len(),
        r.samples_per_problem,
        r.isolation,
        r.generation_secs,
        r.execution_secs
    );
    if let Some(d) = &r.decoding {
        let _ = write!(
            h,
            "; decoding <code>{}</code>, max_new_tokens {}, seed {}",
            esc(&d.label()),
            d.max_new_tokens,
            d.seed
        );
    }
    h.push_str("</p>\n<table><tr>");
    for p in &r.pass_at_k {
        let _ = write!(h, "<th>pass@{}</th>", p.k);
    }
    h.push_str("</tr><tr>");
    for p in &r.pass_at_k {
        let _ = write!(h, "<td>{}</td>", fmt(p.value));
    }
    h.push_str("</tr></table>\n");
    let bars: Vec<Bar> = r
        .pass_at_k
        .iter()
        .map(|p| Bar {
            label: format!("pass@{}", p.k),
            value: p.value,
            interval: None,
            highlight: false,
        })
        .collect();
    h.push_str(&bar_chart("pass@k", &bars));
    h.push_str("<details><summary>Per problem</summary><table><tr><th>task</th><th>n</th><th>c</th><th>outcomes</th></tr>\n");
    for p in &r.problems {
        let mut outcomes: Vec<String> = p.samples.iter().map(|s| s.outcome.summary()).collect();
        outcomes.dedup();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.task_id),
            p.n,
            p.c,
            esc(&outcomes.join(", "))
        );
    }
    h.push_str("</table></details>\n");
}

fn html_choice(h: &mut String, c: &Named<ChoiceResult>) {
    let r = &c.result;
    let _ = writeln!(h, "<h2>Multiple choice: {}</h2>", esc(&c.name));
    let _ = writeln!(
        h,
        "<table><tr><th>questions</th><th>shots</th><th>acc</th><th>&plusmn; stderr</th><th>acc_norm</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        r.n,
        r.shots,
        fmt(r.acc),
        fmt(r.acc_stderr),
        fmt(r.acc_norm)
    );
    let bars: Vec<Bar> = r
        .per_subject
        .iter()
        .map(|s| Bar {
            label: format!("{} ({})", s.subject, s.n),
            value: s.acc,
            interval: None,
            highlight: false,
        })
        .collect();
    h.push_str(&bar_chart("Accuracy per subject", &bars));
}

fn html_grid(h: &mut String, g: &Named<GridResult>) {
    let r = &g.result;
    let _ = writeln!(
        h,
        "<h2>Decoding grid: {} (objective {})</h2>",
        esc(&g.name),
        esc(&r.objective)
    );
    if let Some(b) = r.best_point() {
        let _ = writeln!(
            h,
            "<p>Best: <code>{}</code> &rarr; {}</p>",
            esc(&b.params.label()),
            fmt(b.score)
        );
    }
    // One line per (top_p, top_k, repetition_penalty), score against temperature.
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for p in &r.points {
        let key = format!(
            "p={} k={} rep={}",
            p.params.top_p, p.params.top_k, p.params.repetition_penalty
        );
        let pt = (f64::from(p.params.temperature), p.score);
        match series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(pt),
            None => series.push((key, vec![pt])),
        }
    }
    h.push_str(&line_chart(
        &format!("{} vs temperature", r.objective),
        "temperature",
        &series,
    ));
    h.push_str("<table><tr><th>#</th><th>temperature</th><th>top_p</th><th>top_k</th><th>rep. penalty</th><th>score</th><th>metrics</th></tr>\n");
    for (i, p) in r.points.iter().enumerate() {
        let metrics: Vec<String> = p
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={}", fmt(*v)))
            .collect();
        let _ = writeln!(
            h,
            "<tr{}><td>{i}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if i == r.best { " class=\"best\"" } else { "" },
            p.params.temperature,
            p.params.top_p,
            p.params.top_k,
            p.params.repetition_penalty,
            fmt(p.score),
            esc(&metrics.join(" "))
        );
    }
    h.push_str("</table>\n");
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child{text-align:left}tr.regress{background:#fde8e8}tr.best{background:#e8f6e8}\
.bad{color:#b00;font-weight:bold}.good{color:#070}svg{display:block;margin:1em 0}code{background:#f6f6f6}";

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// One bar of [`bar_chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Height (may be negative).
    pub value: f64,
    /// Optional error bar `(low, high)`.
    pub interval: Option<(f64, f64)>,
    /// Drawn in red.
    pub highlight: bool,
}

/// A horizontal-axis bar chart as inline SVG (handles negative values and error bars).
pub fn bar_chart(title: &str, bars: &[Bar]) -> String {
    let (w, h, left, top, bottom) = (720.0, 260.0, 60.0, 30.0, 70.0);
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for b in bars {
        for v in [
            Some(b.value),
            b.interval.map(|i| i.0),
            b.interval.map(|i| i.1),
        ]
        .into_iter()
        .flatten()
        {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let plot_h = h - top - bottom;
    let y = |v: f64| top + (hi - v) / (hi - lo) * plot_h;
    let n = bars.len().max(1) as f64;
    let slot = (w - left - 10.0) / n;
    let bw = (slot * 0.6).min(60.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\"><title>{}</title>",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"18\" font-size=\"14\" text-anchor=\"middle\">{}</text>",
        w / 2.0,
        esc(title)
    );
    for t in ticks(lo, hi) {
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            w - 10.0,
            left - 4.0,
            y(t) + 3.0,
            fmt(t),
            y0 = y(t)
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{z:.1}\" y2=\"{z:.1}\" stroke=\"#444\"/>",
        w - 10.0,
        z = y(0.0)
    );
    for (i, b) in bars.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        let v = if b.value.is_finite() { b.value } else { 0.0 };
        let (y1, y2) = (y(v.max(0.0)), y(v.min(0.0)));
        let color = if b.highlight { "#d33" } else { "#4a7bd0" };
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
            cx - bw / 2.0,
            (y2 - y1).max(0.5),
            esc(&b.label),
            fmt(b.value)
        );
        if let Some((l, u)) = b.interval {
            let _ = write!(
                s,
                "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#000\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{yl:.1}\" y2=\"{yl:.1}\" stroke=\"#000\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{yu:.1}\" y2=\"{yu:.1}\" stroke=\"#000\"/>",
                y(l),
                y(u),
                cx - 5.0,
                cx + 5.0,
                cx - 5.0,
                cx + 5.0,
                yl = y(l),
                yu = y(u)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" transform=\"rotate(-35 {cx:.1} {:.1})\">{}</text>",
            h - bottom + 14.0,
            h - bottom + 14.0,
            esc(&b.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A line chart (one polyline per series, points marked) as inline SVG.
pub fn line_chart(title: &str, x_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (w, h, left, top, bottom, right) = (720.0, 280.0, 60.0, 30.0, 45.0, 170.0);
    let pts = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let pw = w - left - right;
    let ph = h - top - bottom;
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + (y1 - y) / (y1 - y0) * ph;
    const COLORS: [&str; 6] = [
        "#4a7bd0", "#d0794a", "#3a9a5b", "#9a3a8c", "#888", "#c9a227",
    ];
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\"><title>{}</title>",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"18\" font-size=\"14\" text-anchor=\"middle\">{}</text>",
        (w - right) / 2.0,
        esc(title)
    );
    for t in ticks(y0, y1) {
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            left + pw,
            left - 4.0,
            sy(t) + 3.0,
            fmt(t),
            yy = sy(t)
        );
    }
    for t in ticks(x0, x1) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            sx(t),
            top + ph + 14.0,
            fmt(t)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        h - 6.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
    );
    for (i, (name, v)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut v: Vec<(f64, f64)> = v
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = v
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for &(x, y) in &v {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{}: ({}, {})</title></circle>",
                sx(x),
                sy(y),
                esc(name),
                fmt(x),
                fmt(y)
            );
        }
        let ly = top + 12.0 + 16.0 * i as f64;
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
            left + pw + 10.0,
            left + pw + 28.0,
            left + pw + 32.0,
            ly + 3.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 20 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choice::SubjectScore;
    use crate::passk::PassAtK;
    use crate::sandbox::Isolation;

    fn sample_report() -> EvalReport {
        EvalReport {
            title: "Test <report>".into(),
            model: "m&m".into(),
            baseline_model: Some("base".into()),
            code: vec![Named {
                name: "humaneval".into(),
                result: CodeEvalResult {
                    pass_at_k: vec![PassAtK { k: 1, value: 0.25 }, PassAtK { k: 10, value: 0.6 }],
                    samples_per_problem: 10,
                    decoding: Some(crate::DecodingParams::default()),
                    isolation: Isolation::Full,
                    generation_secs: 1.0,
                    execution_secs: 2.0,
                    problems: vec![],
                },
            }],
            choice: vec![Named {
                name: "gk".into(),
                result: ChoiceResult {
                    shots: 5,
                    n: 10,
                    acc: 0.7,
                    acc_stderr: 0.15,
                    acc_norm: 0.7,
                    acc_bytes: 0.7,
                    per_subject: vec![SubjectScore {
                        subject: "a<b".into(),
                        n: 10,
                        acc: 0.7,
                        acc_norm: 0.7,
                    }],
                    items: vec![],
                },
            }],
            comparisons: vec![Comparison {
                metric: "gk/acc".into(),
                direction: Direction::HigherIsBetter,
                paired: 10,
                unpaired: 0,
                before: 0.9,
                after: 0.7,
                delta: -0.2,
                ci_low: -0.35,
                ci_high: -0.05,
                confidence: 0.95,
                regression: true,
                significant: true,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn json_round_trip() -> Result<()> {
        let r = sample_report();
        assert_eq!(EvalReport::from_json(&r.to_json()?)?, r);
        Ok(())
    }

    #[test]
    fn html_is_self_contained_and_escaped() -> Result<()> {
        let r = sample_report();
        let html = r.to_html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(
            html.contains("Test &lt;report&gt;")
                && html.contains("m&amp;m")
                && html.contains("a&lt;b")
        );
        assert!(html.contains("REGRESSION"));
        assert!(html.matches("<svg").count() >= 3);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        let dir = tempfile::tempdir().map_err(|e| crate::EvalError::io("tmp", e))?;
        r.write_html(&dir.path().join("r.html"))?;
        r.write_json(&dir.path().join("sub/r.json"))?;
        assert!(dir.path().join("sub/r.json").exists());
        Ok(())
    }

    #[test]
    fn charts_scale_values() {
        let svg = bar_chart(
            "t",
            &[
                Bar {
                    label: "x".into(),
                    value: 2.0,
                    interval: None,
                    highlight: false,
                },
                Bar {
                    label: "y".into(),
                    value: -1.0,
                    interval: Some((-1.5, -0.5)),
                    highlight: true,
                },
            ],
        );
        assert!(svg.contains("#d33"));
        assert_eq!(svg.matches("<rect").count(), 2);
        let svg = line_chart("l", "x", &[("s".into(), vec![(0.0, 1.0), (1.0, 2.0)])]);
        assert_eq!(svg.matches("<circle").count(), 2);
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        assert!(
            t.iter()
                .zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
                .all(|(a, b)| (a - b).abs() < 1e-9)
        );
    }
}
