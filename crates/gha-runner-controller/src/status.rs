//! What the controller shows: the status page, `/status.json` and `/metrics`, all from one
//! reading of the store. Nothing secret is in the store, so nothing secret can be shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::error::ControllerError;
use crate::reconcile::Controller;
use crate::store::{Decision, LaunchState, Millis, now_millis};

/// One pool's line.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStatus {
    /// Its name.
    pub name: String,
    /// The labels it serves.
    pub labels: Vec<String>,
    /// Queued jobs.
    pub queued: usize,
    /// Machines launching, running, ending.
    pub machines: BTreeMap<&'static str, usize>,
    /// Its limit.
    pub max_machines: usize,
    /// Launches decided, and failed, ever.
    pub launches: (usize, usize),
}

/// One live machine's line.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineStatus {
    /// Its launch's label.
    pub label: String,
    /// Its pool.
    pub pool: String,
    /// `launching`, `running`, `ending`.
    pub state: &'static str,
    /// The provider's id, once launched.
    pub machine_id: Option<String>,
    /// `<type> in <region>`, once launched.
    pub placement: Option<String>,
    /// Seconds since its launch was decided.
    pub age_seconds: i64,
    /// Runners used of its runners.
    pub runners: (usize, usize),
    /// Its cost so far, in dollars.
    pub cost_usd: f64,
}

/// A reading of the controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// When it was read.
    pub now: Millis,
    /// The controller's name.
    pub name: String,
    /// Each pool.
    pub pools: Vec<PoolStatus>,
    /// Each live machine.
    pub machines: Vec<MachineStatus>,
    /// The latest decisions, newest first.
    pub decisions: Vec<Decision>,
    /// Jobs by status word.
    pub jobs: BTreeMap<String, usize>,
    /// What every launch cost so far, in dollars.
    pub cost_usd: f64,
}

/// How many decisions the page shows.
const DECISIONS_SHOWN: usize = 25;

impl Status {
    /// Reads the controller's state now.
    pub async fn read(controller: &Controller) -> Result<Status, ControllerError> {
        let store = controller.store();
        let now = now_millis();
        let queued = store.queued_by_pool().await?;
        let live = store.live_launches().await?;
        let totals = store.launch_totals().await?;
        let pools = controller
            .config()
            .pools
            .iter()
            .map(|pool| {
                let mut machines = BTreeMap::new();
                for state in [
                    LaunchState::Launching,
                    LaunchState::Running,
                    LaunchState::Ending,
                ] {
                    machines.insert(
                        state.word(),
                        live.iter()
                            .filter(|l| l.pool == pool.name && l.state == state)
                            .count(),
                    );
                }
                PoolStatus {
                    name: pool.name.clone(),
                    labels: pool.labels.clone(),
                    queued: queued.get(&pool.name).copied().unwrap_or(0),
                    machines,
                    max_machines: pool.max_machines,
                    launches: totals.get(&pool.name).copied().unwrap_or((0, 0)),
                }
            })
            .collect();
        let machines = live
            .iter()
            .map(|l| MachineStatus {
                label: l.label.clone(),
                pool: l.pool.clone(),
                state: l.state.word(),
                machine_id: l.machine_id.clone(),
                placement: l
                    .instance_type
                    .as_ref()
                    .map(|t| format!("{t} in {}", l.region.as_deref().unwrap_or("?"))),
                age_seconds: (now - l.started_at) / 1000,
                runners: (l.runners_used, l.runners),
                cost_usd: l.cost_usd(now),
            })
            .collect();
        Ok(Status {
            now,
            name: controller.config().name.clone(),
            pools,
            machines,
            decisions: store.recent_decisions(DECISIONS_SHOWN).await?,
            jobs: store.jobs_by_status().await?,
            cost_usd: crate::store::total_cost_usd(store, now).await?,
        })
    }

    /// `/status.json`.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "pools": self.pools.iter().map(|p| json!({
                "name": p.name,
                "labels": p.labels,
                "queued": p.queued,
                "machines": p.machines,
                "max_machines": p.max_machines,
                "launches": p.launches.0,
                "failed_launches": p.launches.1,
            })).collect::<Vec<_>>(),
            "machines": self.machines.iter().map(|m| json!({
                "label": m.label,
                "pool": m.pool,
                "state": m.state,
                "machine_id": m.machine_id,
                "placement": m.placement,
                "age_seconds": m.age_seconds,
                "runners_used": m.runners.0,
                "runners": m.runners.1,
                "cost_usd": (m.cost_usd * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
            "jobs": self.jobs,
            "cost_usd": (self.cost_usd * 100.0).round() / 100.0,
            "decisions": self.decisions.iter().map(|d| json!({
                "at": timestamp(d.at),
                "pool": d.pool,
                "text": d.text,
            })).collect::<Vec<_>>(),
        })
    }

    /// The status page: a plain HTML document that refreshes itself every 5 s.
    pub fn html(&self) -> String {
        let mut page = String::new();
        let name = escape(&self.name);
        let _ = write!(
            page,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"5\">\
             <title>lambda-gha serve: {name}</title>\
             <style>body{{font-family:system-ui,sans-serif;margin:2em}}\
             table{{border-collapse:collapse;margin-bottom:2em}}\
             td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}\
             th{{background:#f4f4f4}}</style></head><body>\n\
             <h1>lambda-gha serve: {name}</h1>\n"
        );
        let jobs: Vec<String> = self
            .jobs
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        let _ = writeln!(
            page,
            "<p id=\"summary\">Jobs: {}. Spent so far: ${:.2}.</p>",
            if jobs.is_empty() {
                "none yet".to_owned()
            } else {
                escape(&jobs.join(", "))
            },
            self.cost_usd
        );
        page.push_str(
            "<h2>Pools</h2>\n<table id=\"pools\"><tr><th>pool</th><th>labels</th><th>queued jobs</th>\
             <th>launching</th><th>running</th><th>ending</th><th>max</th><th>launches (failed)</th></tr>\n",
        );
        for p in &self.pools {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td></tr>",
                escape(&p.name),
                escape(&p.labels.join(", ")),
                p.queued,
                p.machines.get("launching").copied().unwrap_or(0),
                p.machines.get("running").copied().unwrap_or(0),
                p.machines.get("ending").copied().unwrap_or(0),
                p.max_machines,
                p.launches.0,
                p.launches.1
            );
        }
        page.push_str("</table>\n<h2>Machines</h2>\n");
        if self.machines.is_empty() {
            page.push_str("<p id=\"machines\">No machine is alive.</p>\n");
        } else {
            page.push_str(
                "<table id=\"machines\"><tr><th>label</th><th>pool</th><th>state</th><th>machine</th>\
                 <th>where</th><th>age</th><th>runners used</th><th>cost</th></tr>\n",
            );
            for m in &self.machines {
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>${:.2}</td></tr>",
                    escape(&m.label),
                    escape(&m.pool),
                    m.state,
                    escape(m.machine_id.as_deref().unwrap_or("–")),
                    escape(m.placement.as_deref().unwrap_or("–")),
                    age(m.age_seconds),
                    m.runners.0,
                    m.runners.1,
                    m.cost_usd
                );
            }
            page.push_str("</table>\n");
        }
        page.push_str("<h2>Recent decisions</h2>\n<table id=\"decisions\"><tr><th>when</th><th>pool</th><th>decision</th></tr>\n");
        for d in &self.decisions {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                timestamp(d.at),
                escape(d.pool.as_deref().unwrap_or("–")),
                escape(&d.text)
            );
        }
        page.push_str("</table>\n</body></html>\n");
        page
    }

    /// `/metrics`, in Prometheus's text format: what the store says, then what this process
    /// counted.
    pub fn prometheus(&self, controller: &Controller) -> String {
        let mut out = String::new();
        self.store_metrics(&mut out);
        process_metrics(&mut out, controller);
        out
    }

    fn store_metrics(&self, out: &mut String) {
        family(
            out,
            "lambda_gha_queued_jobs",
            "gauge",
            "Jobs queued for each pool: the demand.",
        );
        for p in &self.pools {
            let _ = writeln!(
                out,
                "lambda_gha_queued_jobs{{pool=\"{}\"}} {}",
                p.name, p.queued
            );
        }
        family(
            out,
            "lambda_gha_machines",
            "gauge",
            "Live machines by pool and state.",
        );
        for p in &self.pools {
            for (state, n) in &p.machines {
                let _ = writeln!(
                    out,
                    "lambda_gha_machines{{pool=\"{}\",state=\"{state}\"}} {n}",
                    p.name
                );
            }
        }
        family(
            out,
            "lambda_gha_launches_total",
            "counter",
            "Launches decided, by pool (from the store: survives restarts).",
        );
        for p in &self.pools {
            let _ = writeln!(
                out,
                "lambda_gha_launches_total{{pool=\"{}\"}} {}",
                p.name, p.launches.0
            );
        }
        family(
            out,
            "lambda_gha_launch_failures_total",
            "counter",
            "Launches that failed and were cleaned up, by pool.",
        );
        for p in &self.pools {
            let _ = writeln!(
                out,
                "lambda_gha_launch_failures_total{{pool=\"{}\"}} {}",
                p.name, p.launches.1
            );
        }
        family(
            out,
            "lambda_gha_cost_dollars_total",
            "counter",
            "What every launch cost so far, from launch time and price.",
        );
        let _ = writeln!(out, "lambda_gha_cost_dollars_total {:.4}", self.cost_usd);
        family(
            out,
            "lambda_gha_jobs",
            "gauge",
            "Jobs the controller knows, by status.",
        );
        for (status, n) in &self.jobs {
            let _ = writeln!(out, "lambda_gha_jobs{{status=\"{status}\"}} {n}");
        }
    }
}

/// A metric family's `HELP` and `TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// What this process counted: deliveries by outcome, and the decision latency.
fn process_metrics(out: &mut String, controller: &Controller) {
    let metrics = &controller.inner.metrics;
    family(
        out,
        "lambda_gha_webhook_deliveries_total",
        "counter",
        "Deliveries by outcome, since this process started.",
    );
    for (outcome, n) in metrics.deliveries() {
        let _ = writeln!(
            out,
            "lambda_gha_webhook_deliveries_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    family(
        out,
        "lambda_gha_decision_latency_seconds",
        "summary",
        "From a delivery's receipt (by any replica) to the end of the decision pass that read it, as this process decided since it started.",
    );
    let qs = [0.5, 0.9, 0.99];
    let (values, count, sum) = metrics.decision_latency(&qs);
    for (q, v) in qs.iter().zip(values) {
        let _ = writeln!(
            out,
            "lambda_gha_decision_latency_seconds{{quantile=\"{q}\"}} {v:.6}"
        );
    }
    let _ = writeln!(out, "lambda_gha_decision_latency_seconds_sum {sum:.6}");
    let _ = writeln!(out, "lambda_gha_decision_latency_seconds_count {count}");
}

fn timestamp(at: Millis) -> String {
    jiff::Timestamp::from_millisecond(at)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Escapes text for HTML: labels and decisions come from configuration and GitHub.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
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

    fn reading() -> Status {
        let machines = BTreeMap::from([("launching", 1), ("running", 1), ("ending", 0)]);
        Status {
            now: 1_764_583_200_000,
            name: "ci".into(),
            pools: vec![PoolStatus {
                name: "a10".into(),
                labels: vec!["self-hosted".into(), "gpu".into()],
                queued: 3,
                machines,
                max_machines: 4,
                launches: (5, 1),
            }],
            machines: vec![MachineStatus {
                label: "lambda-a10-cabc123".into(),
                pool: "a10".into(),
                state: "running",
                machine_id: Some("0123abcd".into()),
                placement: Some("gpu_1x_a10 in us-east-1".into()),
                age_seconds: 754,
                runners: (0, 1),
                cost_usd: 0.157,
            }],
            decisions: vec![Decision {
                at: 1_764_583_190_000,
                pool: Some("a10".into()),
                text: "launch lambda-a10-cabc123: 3 job(s) queued, <script> 0 free".into(),
            }],
            jobs: BTreeMap::from([("queued".to_owned(), 3), ("completed".to_owned(), 2)]),
            cost_usd: 1.5,
        }
    }

    #[test]
    fn the_status_page_shows_pools_machines_and_decisions_escaped() {
        let page = reading().html();
        assert!(page.contains("&lt;script&gt;"), "escaped");
        insta::assert_snapshot!(page);
    }

    #[test]
    fn the_metrics_from_the_store_are_prometheus_text() {
        let mut text = String::new();
        reading().store_metrics(&mut text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_status_json_has_every_section() {
        insta::assert_json_snapshot!(reading().json());
    }
}
