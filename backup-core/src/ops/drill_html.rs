//! The drill report: one self-contained HTML file (inline CSS and SVG, no script, no
//! external resource) — the document the runbooks ask for after each drill.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::drill::{Drill, DrillReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.1} s"))
}

/// A line chart of `points` (oldest first) with a dashed objective line.
fn chart(title: &str, points: &[f64], objective: Option<f64>) -> String {
    let (w, h, pad) = (560.0_f64, 160.0_f64, 30.0_f64);
    let top = points
        .iter()
        .copied()
        .chain(objective)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |i: usize| {
        if points.len() < 2 {
            w / 2.0
        } else {
            pad + (w - 2.0 * pad) * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v / top;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">",
        esc(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" class=\"axis\"/><text x=\"2\" y=\"{t}\">{top:.0} s</text><text x=\"2\" y=\"{b}\">0</text>",
        b = h - pad,
        r = w - pad,
        t = pad
    );
    if let Some(o) = objective {
        let _ = write!(
            svg,
            "<line x1=\"{pad}\" y1=\"{yo}\" x2=\"{r}\" y2=\"{yo}\" class=\"objective\"/><text x=\"{r}\" y=\"{yt}\" text-anchor=\"end\">objective {o:.0} s</text>",
            yo = y(o),
            yt = y(o) - 4.0,
            r = w - pad
        );
    }
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" class=\"data\"/>",
        path.join(" ")
    );
    for (i, v) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{v:.1} s</title></circle>",
            x(i),
            y(*v)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// The report of `report`, with charts over `past` drills (this one included when its
/// record was written) of the store at `store_url`.
pub(super) fn render(report: &DrillReport, past: &[Drill], store_url: &str) -> String {
    let mut h = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dbseal drill report</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.passed{color:#176117}.failed{color:#a11}\
         svg text{font-size:11px;fill:#555}.axis{stroke:#999}.objective{stroke:#a11;stroke-dasharray:4 3}\
         .data{fill:none;stroke:#2563eb;stroke-width:2}circle{fill:#2563eb}</style></head><body>",
    );
    let when = report
        .drills
        .first()
        .map(|d| d.started_at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let _ = write!(
        h,
        "<h1>Disaster-recovery drill</h1><p>{} — store <code>{}</code>, dbseal {}</p>",
        esc(&when),
        esc(store_url),
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("<table><tr><th>Datastore</th><th>Backup restored</th><th>RTO</th><th>RTO objective</th><th>RPO</th><th>RPO objective</th><th>Phases</th><th>Result</th></tr>");
    for d in &report.drills {
        let levels: Vec<String> = d
            .phases
            .iter()
            .map(|(l, t)| format!("{l} {t:.1} s"))
            .collect();
        let (class, result) = if d.passed {
            ("passed", "passed".to_string())
        } else {
            ("failed", format!("FAILED: {}", d.message))
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
            esc(&d.datastore),
            esc(d.backup_id.as_deref().unwrap_or("–")),
            secs(Some(d.rto_seconds)),
            secs(d.rto_objective_seconds),
            secs(d.rpo_seconds),
            secs(d.rpo_objective_seconds),
            esc(&levels.join(", ")),
            esc(&result)
        );
    }
    h.push_str("</table>");
    let mut by_ds: BTreeMap<&str, Vec<&Drill>> = BTreeMap::new();
    for d in past {
        by_ds.entry(d.datastore.as_str()).or_default().push(d);
    }
    for (ds, mut drills) in by_ds {
        drills.sort_by_key(|d| d.started_at);
        let _ = write!(
            h,
            "<h2>{}: {} drills over the past year</h2>",
            esc(ds),
            drills.len()
        );
        let rto: Vec<f64> = drills.iter().map(|d| d.rto_seconds).collect();
        let rpo: Vec<f64> = drills.iter().filter_map(|d| d.rpo_seconds).collect();
        let last = drills.last();
        h.push_str(&chart(
            "RTO (seconds to a verified target)",
            &rto,
            last.and_then(|d| d.rto_objective_seconds),
        ));
        h.push_str(&chart(
            "RPO (seconds of data the restored backup lacked)",
            &rpo,
            last.and_then(|d| d.rpo_objective_seconds),
        ));
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(name: &str, rto: f64, passed: bool) -> Drill {
        Drill {
            datastore: name.into(),
            backup_id: Some("20261207T000000Z-0a1b2c3d".into()),
            started_at: chrono::Utc::now(),
            verified: true,
            rto_seconds: rto,
            phases: vec![("stored".into(), 0.5), ("restore".into(), rto - 0.5)],
            rpo_seconds: Some(120.0),
            wal_rpo_seconds: None,
            rto_objective_seconds: Some(3600.0),
            rpo_objective_seconds: Some(900.0),
            passed,
            message: if passed {
                "12 checks passed".into()
            } else {
                "RTO <over>".into()
            },
            code: 0,
        }
    }

    #[test]
    fn the_report_escapes_what_it_shows_and_charts_every_drill() {
        let now = drill("<script>x</script>", 10.0, false);
        let past = vec![drill("<script>x</script>", 8.0, true), now.clone()];
        let html = render(&DrillReport { drills: vec![now] }, &past, "s3://b/p?a=<b>");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt;: 2 drills"),
            "{html}"
        );
        assert!(html.contains("FAILED: RTO &lt;over&gt;") && html.contains("s3://b/p?a=&lt;b&gt;"));
        // Two charts (RTO, RPO), each with two points and the objective line.
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("<circle").count(), 4);
        assert_eq!(html.matches("class=\"objective\"").count(), 2);
    }
}
