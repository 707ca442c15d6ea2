//! The binding view's charts, drawn as SVG on the server: the page needs no
//! script and nothing from the network.

use std::fmt::Write as _;

use crate::view::page::escape;
use crate::view::state::{Counts, MinuteSummary};

/// The colour of bound samples.
pub const BOUND_COLOUR: &str = "#2f9e44";

/// The colour of an unbound reason (any other reason is grey).
pub fn reason_colour(reason: &str) -> &'static str {
    match reason {
        "no_rule" => "#f08c00",
        "missing_label" => "#e03131",
        "no_component" => "#9c36b5",
        "late" => "#1971c2",
        _ => "#868e96",
    }
}

/// The segments of one stack, bound first: (name, colour, samples).
fn segments(counts: &Counts) -> Vec<(&str, &'static str, u64)> {
    let mut segments = vec![("bound", BOUND_COLOUR, counts.bound)];
    for (reason, samples) in &counts.unbound {
        segments.push((reason.as_str(), reason_colour(reason), *samples));
    }
    segments
}

fn describe(counts: &Counts) -> String {
    segments(counts)
        .iter()
        .map(|(name, _, samples)| format!("{name} {samples}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bar as wide as `width`, split in the shares of bound and each reason.
pub fn share_bar(counts: &Counts, width: u32) -> String {
    let total = counts.bound + counts.unbound_total();
    let mut svg = format!(
        r#"<svg class="share" width="{width}" height="14" viewBox="0 0 {width} 14" role="img"><title>{}</title>"#,
        escape(&describe(counts))
    );
    let mut x = 0.0;
    for (name, colour, samples) in segments(counts) {
        if samples == 0 || total == 0 {
            continue;
        }
        let w = samples as f64 / total as f64 * f64::from(width);
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="0" width="{w:.1}" height="14" fill="{colour}"><title>{} {samples}</title></rect>"#,
            escape(name)
        );
        x += w;
    }
    svg.push_str("</svg>");
    svg
}

/// Samples per minute, a stacked bar per minute: bound at the bottom, the
/// unbound reasons above.
pub fn minutes_chart(minutes: &[MinuteSummary], width: u32, height: u32) -> String {
    let top = minutes
        .iter()
        .map(|m| m.counts.bound + m.counts.unbound_total())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_height = f64::from(height - 16);
    let slot = f64::from(width) / minutes.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg class="minutes" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="0" y1="{plot_height}" x2="{width}" y2="{plot_height}" stroke="#adb5bd"/><text x="2" y="10" font-size="10" fill="#495057">{top}/min</text>"##
    );
    for (index, minute) in minutes.iter().enumerate() {
        let x = index as f64 * slot + 1.0;
        let mut y = plot_height;
        let _ = write!(
            svg,
            r#"<g><title>{}: {}</title>"#,
            clock_of(minute.start_ms),
            escape(&describe(&minute.counts))
        );
        for (_, colour, samples) in segments(&minute.counts) {
            if samples == 0 {
                continue;
            }
            let h = samples as f64 / top as f64 * plot_height;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                (slot - 2.0).max(1.0)
            );
        }
        svg.push_str("</g>");
    }
    if let (Some(first), Some(last)) = (minutes.first(), minutes.last()) {
        let _ = write!(
            svg,
            r##"<text x="0" y="{height}" font-size="10" fill="#495057">{}</text><text x="{width}" y="{height}" font-size="10" fill="#495057" text-anchor="end">{} UTC</text>"##,
            clock_of(first.start_ms),
            clock_of(last.start_ms)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A series' latest values as a line (points without a finite value, such
/// as stale markers, are left out).
pub fn sparkline(points: &[(i64, Option<f64>)], width: u32, height: u32) -> String {
    let values: Vec<(i64, f64)> = points
        .iter()
        .filter_map(|(timestamp, value)| value.map(|v| (*timestamp, v)))
        .collect();
    let mut svg = format!(
        r#"<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let (Some(first), Some(last)) = (values.first(), values.last()) else {
        svg.push_str("</svg>");
        return svg;
    };
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), (_, v)| {
            (low.min(*v), high.max(*v))
        });
    let span_t = (last.0 - first.0).max(1) as f64;
    let span_v = if high > low { high - low } else { 1.0 };
    let (w, h) = (f64::from(width) - 4.0, f64::from(height) - 4.0);
    let place = |(timestamp, value): &(i64, f64)| {
        let x = 2.0 + (timestamp - first.0) as f64 / span_t * w;
        let y = if high > low {
            2.0 + (high - value) / span_v * h
        } else {
            2.0 + h / 2.0
        };
        (x, y)
    };
    if values.len() == 1 {
        let (x, y) = place(first);
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{BOUND_COLOUR}"/>"#
        );
    } else {
        let line: Vec<String> = values
            .iter()
            .map(|point| {
                let (x, y) = place(point);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{BOUND_COLOUR}" stroke-width="1.5" points="{}"/>"#,
            line.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `HH:MM` of a time in ms since the epoch, UTC.
pub fn clock_of(timestamp_ms: i64) -> String {
    let minutes = timestamp_ms.div_euclid(60_000).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn counts(bound: u64, unbound: &[(&str, u64)]) -> Counts {
        Counts {
            bound,
            unbound: unbound
                .iter()
                .map(|(r, n)| (r.to_string(), *n))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_share_bar_splits_its_width_by_samples() {
        let svg = share_bar(&counts(3, &[("no_rule", 1)]), 100);
        assert!(svg.contains(r#"x="0.0" y="0" width="75.0""#), "{svg}");
        assert!(svg.contains(r#"x="75.0" y="0" width="25.0""#), "{svg}");
        assert!(svg.contains("<title>bound 3, no_rule 1</title>"));
        // Nothing yet: an empty bar, no division by zero.
        assert!(!share_bar(&counts(0, &[]), 100).contains("<rect"));
    }

    #[test]
    fn the_minutes_chart_stacks_each_minute_scaled_to_the_busiest() {
        let minutes = [
            MinuteSummary {
                start_ms: 0,
                counts: counts(10, &[]),
            },
            MinuteSummary {
                start_ms: 60_000,
                counts: counts(5, &[("late", 5)]),
            },
        ];
        let svg = minutes_chart(&minutes, 200, 116);
        // 100 px of plot: the first minute fills it, the second in two halves.
        assert!(
            svg.contains(r#"y="0.0" width="98.0" height="100.0""#),
            "{svg}"
        );
        assert!(svg.contains(r##"y="50.0" width="98.0" height="50.0" fill="#2f9e44""##));
        assert!(svg.contains(r##"y="0.0" width="98.0" height="50.0" fill="#1971c2""##));
        assert!(svg.contains("<title>00:01: bound 5, late 5</title>"));
    }

    #[test]
    fn a_sparkline_spans_its_box_and_skips_stale_markers() {
        let svg = sparkline(&[(0, Some(1.0)), (5, None), (10, Some(3.0))], 104, 24);
        assert!(svg.contains(r#"points="2.0,22.0 102.0,2.0""#), "{svg}");
        assert!(sparkline(&[(0, Some(1.0))], 104, 24).contains("<circle"));
        assert!(!sparkline(&[], 104, 24).contains("<poly"));
    }

    #[test]
    fn clock_of_is_utc_hours_and_minutes() {
        assert_eq!(clock_of(0), "00:00");
        assert_eq!(clock_of((13 * 60 + 7) * 60_000 + 59_999), "13:07");
    }
}
