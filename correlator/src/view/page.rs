//! The binding view's HTML: the summary, a component's page and a search,
//! written from the same structures `/api/...` serves as JSON, so the page
//! and the API cannot disagree. Plain HTML that reloads itself; no script.

use std::fmt::Write as _;

use crate::view::chart::{self, BOUND_COLOUR};
use crate::view::state::{
    ComponentPage, ComponentSummary, Memory, ReasonExamples, SeriesSummary, Summary, TenantSummary,
};

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Text made safe for a URL's query string.
pub fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                escaped.push(byte as char)
            }
            _ => {
                let _ = write!(escaped, "%{byte:02X}");
            }
        }
    }
    escaped
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212529}\
h1{font-size:20px;margin:0 0 .3em}h2{font-size:17px;margin:1.2em 0 .4em}h3{font-size:15px;margin:1em 0 .3em}\
table{border-collapse:collapse;margin:.3em 0}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:middle}\
th{font-weight:600;border-bottom:1px solid #dee2e6}td.n,th.n{text-align:right}code{font-size:12px}\
.note{color:#6c757d;font-size:12px}.tenant{border-top:1px solid #dee2e6;margin-top:1em}\
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}\
header form{display:inline;margin-left:1em}input[type=search]{width:22em}";

/// How a page reloads itself: every `seconds`, unless a person paused it
/// (`?pause=1`, which the page's links and search keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reload {
    pub seconds: u32,
    pub paused: bool,
}

impl Reload {
    /// `href` (already escaped for HTML), with the pause kept.
    fn keep(self, href: &str) -> String {
        if !self.paused {
            return href.to_string();
        }
        let separator = if href.contains('?') { "&amp;" } else { "?" };
        format!("{href}{separator}pause=1")
    }
}

/// A page: `here` is its own address (escaped for HTML, without the pause).
fn layout(title: &str, reload: Reload, here: &str, body: &str) -> String {
    let (meta, toggle, hidden) = if reload.paused {
        (
            String::new(),
            format!(r#"<a id="resume" href="{here}">resume reloading</a>"#),
            r#"<input type="hidden" name="pause" value="1">"#,
        )
    } else {
        (
            format!(
                r#"<meta http-equiv="refresh" content="{}">"#,
                reload.seconds
            ),
            format!(
                r#"reloads every {} s, <a id="pause" href="{}">pause</a>"#,
                reload.seconds,
                Reload {
                    paused: true,
                    ..reload
                }
                .keep(here)
            ),
            "",
        )
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{meta}\
<title>{}</title><style>{STYLE}</style></head><body><header><a href=\"{}\">Binding view</a>\
<form action=\"/search\" method=\"get\"><input type=\"search\" name=\"q\" placeholder=\"label=value, label=~text or text\">{hidden} \
<button type=\"submit\">Search</button></form> <span class=\"note\">{toggle}</span></header>{body}</body></html>",
        escape(title),
        reload.keep("/"),
    )
}

fn component_href(tenant: &str, external_id: &str, reload: Reload) -> String {
    reload.keep(&format!(
        "/component?tenant={}&amp;id={}",
        query_escape(tenant),
        query_escape(external_id)
    ))
}

fn value_text(points: &[(i64, Option<f64>)]) -> String {
    match points.last() {
        Some((_, Some(value))) => value.to_string(),
        Some((_, None)) => "stale or NaN".into(),
        None => String::new(),
    }
}

fn share(part: u64, total: u64) -> String {
    if total == 0 {
        return "–".into();
    }
    format!("{:.1} %", part as f64 * 100.0 / total as f64)
}

fn legend(tenant: &TenantSummary) -> String {
    let mut legend =
        format!(r#"<div class="legend"><span style="background:{BOUND_COLOUR}"></span>bound"#);
    for reason in tenant.total.unbound.keys() {
        let _ = write!(
            legend,
            r#"<span style="background:{}"></span>{}"#,
            chart::reason_colour(reason),
            escape(reason)
        );
    }
    legend.push_str("</div>");
    legend
}

fn tenant_section(tenant: &TenantSummary, minutes: usize) -> String {
    let bound = tenant.total.bound;
    let unbound = tenant.total.unbound_total();
    let total = bound + unbound;
    let mut html = format!(
        r#"<section class="tenant" data-tenant="{name}"><h2>Tenant {name}</h2>
<p><b data-test="bound-samples">{bound}</b> samples bound ({bound_share}), <b data-test="unbound-samples">{unbound}</b> unbound ({unbound_share}) since the view started</p>"#,
        name = escape(&tenant.tenant),
        bound_share = share(bound, total),
        unbound_share = share(unbound, total),
    );
    html.push_str(&chart::share_bar(&tenant.total, 600));
    if !tenant.total.unbound.is_empty() {
        html.push_str("<table><tr><th>unbound reason</th><th class=\"n\">samples</th><th class=\"n\">share</th></tr>");
        for (reason, samples) in &tenant.total.unbound {
            let _ = write!(
                html,
                r#"<tr data-reason="{reason}"><td>{reason}</td><td class="n" data-test="reason-samples">{samples}</td><td class="n">{}</td></tr>"#,
                share(*samples, total),
                reason = escape(reason),
            );
        }
        html.push_str("</table>");
    }
    let _ = write!(
        html,
        "<h3>Samples per minute, last {minutes} minutes</h3>{}{}</section>",
        chart::minutes_chart(&tenant.minutes, 600, 116),
        legend(tenant)
    );
    html
}

fn components_table(components: &[ComponentSummary], reload: Reload) -> String {
    let mut html = String::from(
        "<table id=\"components\"><tr><th>tenant</th><th>component</th><th>type</th><th>rule</th>\
<th class=\"n\">series</th><th class=\"n\">samples</th></tr>",
    );
    for component in components {
        let label = if component.name.is_empty() {
            &component.external_id
        } else {
            &component.name
        };
        let _ = write!(
            html,
            r#"<tr data-component="{id}"><td>{tenant}</td><td><a class="component" href="{href}" title="{id}">{label}</a></td><td>{kind}</td><td>{rule}</td><td class="n" data-test="component-series">{series}</td><td class="n">{samples}</td></tr>"#,
            id = escape(&component.external_id),
            tenant = escape(&component.tenant),
            href = component_href(&component.tenant, &component.external_id, reload),
            label = escape(label),
            kind = escape(&component.kind),
            rule = escape(&component.rule),
            series = component.series,
            samples = component.samples,
        );
    }
    html.push_str("</table>");
    html
}

/// A table of series; `binding` adds a column with what each is bound to or why not.
fn series_table(id: &str, series: &[SeriesSummary], binding: bool, reload: Reload) -> String {
    let mut html = format!(r#"<table id="{id}"><tr><th>series</th>"#);
    if binding {
        html.push_str("<th>binding</th>");
    }
    html.push_str("<th class=\"n\">latest</th><th>latest values</th></tr>");
    for one in series {
        let _ = write!(
            html,
            r#"<tr class="series"><td><code>{}</code></td>"#,
            escape(&one.labels)
        );
        if binding {
            let cell = match (&one.component, &one.reason) {
                (Some(component), _) => format!(
                    r#"<a href="{}">{}</a>"#,
                    component_href(&one.tenant, component, reload),
                    escape(component)
                ),
                (None, Some(reason)) => format!(
                    "unbound: {} <span class=\"note\">{}</span>",
                    escape(reason),
                    escape(one.detail.as_deref().unwrap_or(""))
                ),
                (None, None) => String::new(),
            };
            let _ = write!(html, "<td>{cell}</td>");
        }
        let mut latest = value_text(&one.points);
        if one.histograms > 0 {
            latest.push_str(&format!(" ({} histograms)", one.histograms));
        }
        let _ = write!(
            html,
            r#"<td class="n">{}</td><td>{}</td></tr>"#,
            escape(&latest),
            chart::sparkline(&one.points, 140, 22)
        );
    }
    html.push_str("</table>");
    html
}

fn reason_section(reason: &ReasonExamples) -> String {
    let mut html = format!(
        r#"<div class="reason" data-tenant="{tenant}" data-reason="{name}"><h3>{tenant}: {name}, {samples} samples</h3>"#,
        tenant = escape(&reason.tenant),
        name = escape(&reason.reason),
        samples = reason.samples,
    );
    html.push_str("<table><tr><th>series</th><th>detail</th><th class=\"n\">latest</th></tr>");
    for example in &reason.examples {
        let _ = write!(
            html,
            r#"<tr class="example"><td><code>{}</code></td><td class="detail">{}</td><td class="n">{}</td></tr>"#,
            escape(&example.labels),
            escape(example.detail.as_deref().unwrap_or("")),
            escape(&value_text(&example.points))
        );
    }
    html.push_str("</table></div>");
    html
}

fn memory_note(memory: &Memory, records: u64, unreadable: u64) -> String {
    format!(
        r#"<p class="note" id="memory">{records} records read ({unreadable} unreadable). Keeping <span data-test="series-kept">{}</span> series of at most {} (<span data-test="series-evicted">{}</span> evicted), {} latest points each (<span data-test="points-dropped">{}</span> dropped), {} components.</p>"#,
        memory.series,
        memory.limits.series_max,
        memory.series_evicted,
        memory.limits.points_per_series,
        memory.points_dropped,
        memory.components,
    )
}

pub fn summary_page(summary: &Summary, reload: Reload) -> String {
    let mut body = String::from("<h1>Binding view</h1>");
    body.push_str(&memory_note(
        &summary.memory,
        summary.records,
        summary.unreadable_records,
    ));
    if summary.tenants.is_empty() {
        body.push_str("<p>Nothing read from the output topics yet.</p>");
    }
    for tenant in &summary.tenants {
        body.push_str(&tenant_section(tenant, summary.memory.limits.minutes));
    }
    body.push_str("<h2>Components with the most bound series</h2>");
    body.push_str(&components_table(&summary.top_components, reload));
    body.push_str("<h2>Unbound series by reason</h2>");
    for reason in &summary.unbound {
        body.push_str(&reason_section(reason));
    }
    layout("Binding view", reload, "/", &body)
}

pub fn component_page(page: &ComponentPage, reload: Reload) -> String {
    let component = &page.component;
    let mut body = format!(
        r#"<h1 data-component="{id}">{kind} {name}</h1><p><code>{id}</code>, tenant {tenant}, rule {rule}: <b data-test="component-series">{series}</b> series, {samples} samples</p>"#,
        id = escape(&component.external_id),
        kind = escape(&component.kind),
        name = escape(&component.name),
        tenant = escape(&component.tenant),
        rule = escape(&component.rule),
        series = component.series,
        samples = component.samples,
    );
    body.push_str(&series_table("series", &page.series, false, reload));
    let here = component_href(
        &component.tenant,
        &component.external_id,
        Reload {
            paused: false,
            ..reload
        },
    );
    layout(
        &format!("{} {}", component.kind, component.name),
        reload,
        &here,
        &body,
    )
}

pub fn missing_component_page(tenant: &str, external_id: &str, reload: Reload) -> String {
    let body = format!(
        "<h1>No such component</h1><p>The view keeps no bound series of <code>{}</code> for tenant {}.</p>",
        escape(external_id),
        escape(tenant)
    );
    layout("No such component", reload, "/", &body)
}

pub fn search_page(query: &str, hits: &[SeriesSummary], reload: Reload) -> String {
    let mut body = format!(
        "<h1>Series matching <code>{}</code></h1><p><b data-test=\"hits\">{}</b> series</p>",
        escape(query),
        hits.len()
    );
    body.push_str(&series_table("hits", hits, true, reload));
    let here = format!("/search?q={}", query_escape(query));
    layout(&format!("Search {query}"), reload, &here, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::OutputLabels;
    use crate::output::BatchSeries;
    use crate::view::state::{BindingView, Limits, RecordBinding, RecordIn};

    #[test]
    fn text_and_query_values_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            query_escape("urn:kubernetes:/c:ns:pod/p 1"),
            "urn%3Akubernetes%3A%2Fc%3Ans%3Apod%2Fp%201"
        );
    }

    #[test]
    fn the_summary_page_shows_the_numbers_and_links_each_component() {
        let mut view = BindingView::new(Limits::default(), OutputLabels::default());
        let series = BatchSeries {
            labels: vec![
                ("__name__".into(), "up".into()),
                ("component_external_id".into(), "urn:p/<1>".into()),
                ("component_name".into(), "p1".into()),
            ],
            samples: vec![proto::v2::Sample {
                value: 1.0,
                timestamp: 1,
                start_timestamp: 0,
            }],
            ..Default::default()
        };
        view.add(RecordIn {
            tenant: "acme",
            timestamp_ms: 0,
            binding: RecordBinding::Bound {
                component: "urn:p/<1>",
                component_type: "pod",
                rule: "k8s-pod",
            },
            batch: std::slice::from_ref(&series),
        });
        let reload = Reload {
            seconds: 5,
            paused: false,
        };
        let html = summary_page(&view.summary(0), reload);
        assert!(html.contains(r#"<b data-test="bound-samples">1</b> samples bound (100.0 %)"#));
        assert!(html.contains(r#"href="/component?tenant=acme&amp;id=urn%3Ap%2F%3C1%3E""#));
        assert!(html.contains(">p1</a>"));
        assert!(!html.contains("<1>"), "labels are escaped");
        let component = view.component("acme", "urn:p/<1>").unwrap();
        let page = component_page(&component, reload);
        assert!(page.contains("<code>up{}</code>"));
        assert!(page.contains(r#"<meta http-equiv="refresh" content="5">"#));
        assert!(page.contains(
            r#"<a id="pause" href="/component?tenant=acme&amp;id=urn%3Ap%2F%3C1%3E&amp;pause=1">"#
        ));
        // Paused: no reloading, and the links keep the pause.
        let paused = Reload {
            paused: true,
            ..reload
        };
        let html = summary_page(&view.summary(0), paused);
        assert!(!html.contains("http-equiv"));
        assert!(
            html.contains(r#"href="/component?tenant=acme&amp;id=urn%3Ap%2F%3C1%3E&amp;pause=1""#)
        );
        assert!(html.contains(r#"<a id="resume" href="/">"#));
        assert!(html.contains(r#"<input type="hidden" name="pause" value="1">"#));
    }
}
