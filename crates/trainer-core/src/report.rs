//! `report.html`: a self-contained page with the loss curve (inline SVG), the run summary and the
//! recipe.

use std::fmt::Write as _;
use std::path::Path;

use crate::metrics::MetricsLine;
use crate::{Result, TrainReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG line chart of training loss per step, with eval losses as dots.
pub fn loss_curve_svg(lines: &[MetricsLine]) -> String {
    let train: Vec<(f64, f64)> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Step(s) if s.loss.is_finite() => Some((s.step as f64, s.loss)),
            _ => None,
        })
        .collect();
    let eval: Vec<(f64, f64)> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Eval(e) if e.eval_loss.is_finite() => Some((e.step as f64, e.eval_loss)),
            _ => None,
        })
        .collect();
    let (w, h, pad) = (720.0, 320.0, 48.0);
    let all: Vec<&(f64, f64)> = train.iter().chain(eval.iter()).collect();
    if all.is_empty() {
        return "<p>No finite loss recorded.</p>".into();
    }
    let xmax = all.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let ymin = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let ymax = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = (ymax - ymin).max(1e-9);
    let sx = |x: f64| pad + (x / xmax) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - ((y - ymin) / span) * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"loss curve\">\
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
<line x1=\"{pad}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#444\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{y0}\" stroke=\"#444\"/>",
        y0 = h - pad,
        x1 = w - pad
    );
    for k in 0..=4 {
        let y = ymin + span * k as f64 / 4.0;
        let _ = write!(svg, "<text x=\"4\" y=\"{:.1}\" font-size=\"11\">{y:.3}</text>", sy(y) + 4.0);
    }
    let _ = write!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">step {}</text>", w - pad - 40.0, h - pad + 16.0, xmax as u64);
    if !train.is_empty() {
        let pts: Vec<String> = train.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ = write!(svg, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>", pts.join(" "));
    }
    for (x, y) in &eval {
        let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#d62728\"><title>eval {y:.4} @ {x}</title></circle>", sx(*x), sy(*y));
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"16\" font-size=\"12\" fill=\"#1f77b4\">train loss</text><text x=\"{:.1}\" y=\"16\" font-size=\"12\" fill=\"#d62728\">eval loss</text></svg>",
        pad,
        pad + 90.0
    );
    svg
}

/// Write `output_dir/report.html` atomically.
pub fn write_report(path: &Path, report: &TrainReport, lines: &[MetricsLine], recipe_toml: &str) -> Result<()> {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>infuse training report</title>\
<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}td,th{padding:2px 10px;text-align:left}\
pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>",
    );
    let _ = write!(html, "<h1>infuse {} run</h1>", esc(&report.stage));
    let _ = write!(html, "<p>Status: <b>{}</b></p>", esc(&report.status));
    html.push_str("<h2>Loss</h2>");
    html.push_str(&loss_curve_svg(lines));
    html.push_str("<h2>Summary</h2><table>");
    let mut row = |k: &str, v: String| {
        let _ = write!(html, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    };
    row("optimizer steps", report.steps.to_string());
    row("final train loss", report.final_loss.map_or("-".into(), |l| format!("{l:.5}")));
    row("best eval loss", report.best_eval_loss.map_or("-".into(), |l| format!("{l:.5} (step {})", report.best_step.unwrap_or(0))));
    row("tokens trained", report.tokens.to_string());
    row("mean tokens/s", format!("{:.1}", report.tokens_per_s));
    row("wall time", format!("{:.1} s", report.wall_time_s));
    row("peak RSS", report.peak_rss_bytes.map_or("-".into(), |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)));
    row("stopped early", report.stopped_early.to_string());
    for (k, p) in [("model", &report.model_dir), ("adapter", &report.adapter_dir), ("merged", &report.merged_dir)] {
        if let Some(p) = p {
            row(k, p.display().to_string());
        }
    }
    html.push_str("</table><h2>Recipe</h2><pre>");
    html.push_str(&esc(recipe_toml));
    html.push_str("</pre></body></html>\n");
    infuse_llama_model::write_atomic(path, html.as_bytes())?;
    Ok(())
}
