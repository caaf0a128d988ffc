//! Bar charts drawn as inline SVG: one bar per day, series stacked.

use leptos::prelude::*;

/// One stacked series: a name for the legend, a CSS class for its colour.
#[derive(Clone)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<f64>,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 4.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 18.0;

/// `labels[i]` names bar `i`; `format` writes a value with its unit.
#[component]
pub fn BarChart(
    #[prop(into)] title: String,
    labels: Vec<String>,
    series: Vec<Series>,
    format: fn(f64) -> String,
) -> impl IntoView {
    let n = labels.len().max(1);
    let totals: Vec<f64> = (0..n).map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let max = totals.iter().copied().fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { (HEIGHT - TOP - BOTTOM) / max } else { 0.0 };
    let slot = (WIDTH - LEFT) / n as f64;
    let bar = (slot * 0.7).max(1.0);
    let id = title.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let summary = format!("{title}: highest {} on one day, {} in all", format(max), format(totals.iter().sum()));
    let mut rects = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        for s in &series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = (v * scale).max(1.0);
            y -= h;
            let tip = format!("{label} · {}: {}", s.name, format(v));
            rects.push(view! {
                <rect class=s.class x=format!("{x:.1}") y=format!("{y:.1}") width=format!("{bar:.1}") height=format!("{h:.1}")>
                    <title>{tip}</title>
                </rect>
            });
        }
    }
    let axis_y = (HEIGHT - BOTTOM).to_string();
    let label_y = (HEIGHT - 4.0).to_string();
    let first = labels.first().cloned().unwrap_or_default();
    let last = labels.last().cloned().unwrap_or_default();
    let legend = (series.len() > 1).then(|| {
        view! {
            <ul class="legend">
                {series.iter().map(|s| view! { <li><span class=format!("swatch {}", s.class)></span>{s.name}</li> }).collect_view()}
            </ul>
        }
    });
    view! {
        <figure class="chart" data-chart=id.clone()>
            <figcaption id=format!("{id}-title")>{title.clone()}</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-labelledby=format!("{id}-title {id}-desc") preserveAspectRatio="none">
                <desc id=format!("{id}-desc")>{summary}</desc>
                <line class="axis" x1="0" y1=axis_y.clone() x2=WIDTH.to_string() y2=axis_y/>
                <text class="tick" x=LEFT.to_string() y="10">{format!("max {}", format(max))}</text>
                {rects}
                <text class="tick" x=LEFT.to_string() y=label_y.clone()>{first}</text>
                <text class="tick end" x=(WIDTH - 2.0).to_string() y=label_y>{last}</text>
            </svg>
            {legend}
        </figure>
    }
}

/// A horizontal bar: `used` of `total`, both already in the same unit.
#[component]
pub fn UsageBar(#[prop(into)] label: String, used: f64, total: f64, #[prop(into)] caption: String) -> impl IntoView {
    let share = if total > 0.0 { (used / total).clamp(0.0, 1.0) } else if used > 0.0 { 1.0 } else { 0.0 };
    let percent = format!("{:.0}%", share * 100.0);
    view! {
        <div class="usage">
            <div class="usage-label"><span>{label}</span><span>{caption}</span></div>
            <div class="usage-track" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{:.0}", share * 100.0) aria-valuetext=percent.clone()>
                // An SVG rect's width is an attribute, not an inline style:
                // the Content-Security-Policy allows no inline styles.
                <svg class="usage-fill" width="100%" height="100%" aria-hidden="true">
                    <rect x="0" y="0" height="100%" width=format!("{:.2}%", share * 100.0)></rect>
                </svg>
            </div>
        </div>
    }
}
