//! The job summary: every launch attempt, the machines with their labels and prices, the
//! worst case at the maximum lifetime, and on failure what was cleaned up.

use std::fmt::Write as _;
use std::time::Duration;

use gha_runner_core::{
    Attempt, AttemptOutcome, duration::format_duration, preflight::CostEstimate,
    provisioner::CleanupReport, provisioner::Diagnosis, provisioner::StopReport,
};

/// One launched machine, as the summary shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    /// Its position in the launch.
    pub index: usize,
    pub id: String,
    pub instance_type: String,
    pub region: String,
    /// Its price, US cents per hour.
    pub price_cents_per_hour: Option<u32>,
    /// Its runners' names (each also a label).
    pub runners: Vec<String>,
}

/// What the machines cost together, US cents per hour (unknown prices count as 0).
pub fn total_cents_per_hour(machines: &[MachineRow]) -> u32 {
    machines.iter().filter_map(|m| m.price_cents_per_hour).sum()
}

/// Everything a `start` summary shows.
pub struct StartSummary<'a> {
    pub label: &'a str,
    /// Every launch attempt.
    pub attempts: &'a [Attempt],
    /// The machines, when the launch succeeded.
    pub machines: &'a [MachineRow],
    /// The worst-case cost, once known.
    pub estimate: Option<CostEstimate>,
    /// Why it failed and what was cleaned up.
    pub failure: Option<(&'a str, &'a CleanupReport)>,
    /// Machines given up on (replaced, unhealthy, never registering), with their boot logs.
    pub diagnoses: &'a [Diagnosis],
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn dollars(cents: u32) -> String {
    format!("${:.2}", f64::from(cents) / 100.0)
}

/// Renders a `start` summary.
pub fn render_start(s: &StartSummary<'_>) -> String {
    let mut md = String::new();
    let runners: usize = s.machines.iter().map(|m| m.runners.len()).sum();
    match s.failure {
        None => {
            let _ = writeln!(
                md,
                "## lambda-gha: {} machine(s), {runners} runner(s) online\n",
                s.machines.len()
            );
        }
        Some((reason, _)) => {
            let _ = writeln!(md, "## lambda-gha: launch failed\n\n> {}\n", cell(reason));
        }
    }
    let use_it = if s.failure.is_none() {
        "use it in `runs-on`"
    } else {
        "no runner is left under it"
    };
    let _ = writeln!(md, "Label: `{}` ({use_it})\n", s.label);
    if !s.attempts.is_empty() {
        md.push_str("### Launch attempts\n\n| # | machine | type | region | at | result | detail |\n|---|---|---|---|---|---|---|\n");
        for (n, attempt) in s.attempts.iter().enumerate() {
            let (result, detail) = match &attempt.outcome {
                AttemptOutcome::Launched(id) => ("launched", format!("`{id}`")),
                AttemptOutcome::NoCapacity(why) => ("no capacity", cell(why)),
                AttemptOutcome::Failed(why) => ("failed", cell(why)),
            };
            let _ = writeln!(
                md,
                "| {} | {} | `{}` | `{}` | {:.1} s | {result} | {detail} |",
                n + 1,
                attempt.instance_index,
                attempt.candidate.instance_type,
                attempt.candidate.region,
                attempt.at_seconds
            );
        }
        md.push('\n');
    }
    if !s.machines.is_empty() {
        md.push_str("### Machines\n\n| machine | instance id | type | region | price | runners |\n|---|---|---|---|---|---|\n");
        for m in s.machines {
            let price = m
                .price_cents_per_hour
                .map_or_else(|| "?".to_owned(), |c| format!("{}/h", dollars(c)));
            let runners: Vec<String> = m.runners.iter().map(|r| format!("`{r}`")).collect();
            let _ = writeln!(
                md,
                "| {} | `{}` | `{}` | `{}` | {price} | {} |",
                m.index,
                m.id,
                m.instance_type,
                m.region,
                runners.join(" ")
            );
        }
        let total = dollars(total_cents_per_hour(s.machines));
        let _ = writeln!(
            md,
            "
Together: {total}/h.
"
        );
    }
    if !s.diagnoses.is_empty() {
        md.push_str(&render_diagnoses(s.diagnoses));
    }
    if let Some(estimate) = s.estimate.filter(|_| s.failure.is_none()) {
        let _ = writeln!(
            md,
            "Worst case at the maximum lifetime: {estimate}. Machines end themselves when idle; \
             this is the most they can cost.\n"
        );
    }
    if let Some((_, cleanup)) = s.failure {
        md.push_str(&render_cleanup(cleanup));
    }
    md
}

/// Renders the machines given up on: a table, then each one's boot log, collapsed.
pub fn render_diagnoses(diagnoses: &[Diagnosis]) -> String {
    let mut md = String::from(
        "### Machines given up on\n\n| machine | instance id | type | region | why | replaced by |\n|---|---|---|---|---|---|\n",
    );
    for d in diagnoses {
        let replaced = d
            .replaced_by
            .as_ref()
            .map_or_else(|| "—".to_owned(), |id| format!("`{id}`"));
        let _ = writeln!(
            md,
            "| {} | `{}` | `{}` | `{}` | {} | {replaced} |",
            d.instance_index,
            d.machine,
            d.candidate.instance_type,
            d.candidate.region,
            cell(&d.why)
        );
    }
    md.push('\n');
    for d in diagnoses {
        let _ = writeln!(
            md,
            "<details><summary>Boot log of <code>{}</code> (last lines)</summary>\n",
            d.machine
        );
        match &d.boot_log {
            // A fence longer than any the log could hold.
            Ok(tail) => {
                let _ = writeln!(
                    md,
                    "`````text\n{}\n`````",
                    tail.replace("`````", "` ` ` ` `")
                );
            }
            Err(why) => {
                let _ = writeln!(md, "Unavailable: {}", cell(why));
            }
        }
        md.push_str("\n</details>\n\n");
    }
    md
}

/// Renders what a cleanup did.
pub fn render_cleanup(c: &CleanupReport) -> String {
    let mut md = String::from("### Cleanup\n\n");
    let ids: Vec<String> = c.terminated.iter().map(|id| format!("`{id}`")).collect();
    let _ = writeln!(
        md,
        "- terminated: {}",
        if ids.is_empty() {
            "nothing was running".to_owned()
        } else {
            ids.join(", ")
        }
    );
    let _ = writeln!(
        md,
        "- runner registrations deleted: {}",
        c.runners_deleted.len()
    );
    for (id, why) in &c.not_terminated {
        let _ = writeln!(
            md,
            "- **could not terminate `{id}`**: {} — terminate it in the Lambda dashboard; it may be billing",
            cell(why)
        );
    }
    for (id, why) in &c.runners_not_deleted {
        let _ = writeln!(
            md,
            "- could not delete runner {id}: {} — remove it under Settings → Actions → Runners",
            cell(why)
        );
    }
    md.push('\n');
    md
}

/// Renders a `stop` summary. `billed` is each stopped machine's time since launch, when its
/// tags say.
pub fn render_stop(report: &StopReport, billed: &[Option<Duration>]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## lambda-gha: stopped {} launch(es)\n",
        report.labels.len()
    );
    if !report.stopped.is_empty() {
        md.push_str("| instance id | type | region | price | billed for | cost |\n|---|---|---|---|---|---|\n");
        let mut total = 0.0;
        for (machine, billed) in report.stopped.iter().zip(billed) {
            let price = machine.price_cents_per_hour;
            let cost = match (price, billed) {
                (Some(cents), Some(time)) => {
                    let usd = f64::from(cents) / 100.0 * time.as_secs_f64() / 3600.0;
                    total += usd;
                    format!("${usd:.2}")
                }
                _ => "?".to_owned(),
            };
            let _ = writeln!(
                md,
                "| `{}` | `{}` | `{}` | {} | {} | {cost} |",
                machine.id,
                machine.instance_type,
                machine.region,
                price.map_or_else(|| "?".to_owned(), |c| format!("{}/h", dollars(c))),
                billed.map_or_else(
                    || "?".to_owned(),
                    |d| format_duration(Duration::from_secs(d.as_secs()))
                ),
            );
        }
        let _ = writeln!(md, "\nBilled in all: about ${total:.2}.\n");
    }
    if !report.not_found.is_empty() {
        let ids: Vec<String> = report
            .not_found
            .iter()
            .map(|id| format!("`{id}`"))
            .collect();
        let _ = writeln!(
            md,
            "Already gone (or not launched by lambda-gha): {}\n",
            ids.join(", ")
        );
    }
    md.push_str(&render_cleanup(&report.cleanup));
    md
}
