//! `lambda-gha cost`: what the account's machines bill now. Lambda's API gives each machine's
//! price but not when it was launched, so the time and cost so far come from the
//! `lambda-gha:launched` tag this project's launches carry; a machine launched elsewhere shows
//! its price and counts in the totals, with its time unknown. Booting, active and unhealthy
//! machines count as billing from their launch (Lambda does not say when billing starts, so
//! the figures are an upper-bound estimate); a terminating one is on its way out and left out.

use std::fmt::Write as _;

use jiff::Timestamp;
use lambda_cloud::Instance;
use serde::Serialize;

/// Hours in a month, on average (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// One billing machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineCost {
    pub id: String,
    pub name: Option<String>,
    pub instance_type: String,
    pub region: String,
    pub status: String,
    /// US dollars per hour.
    pub price_per_hour: f64,
    /// When it was launched, when its tags say.
    pub launched: Option<Timestamp>,
    /// Seconds since then.
    pub running_seconds: Option<u64>,
    /// US dollars since then (price × time).
    pub cost_so_far: Option<f64>,
}

/// Every billing machine and the totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostView {
    pub machines: Vec<MachineCost>,
    /// US dollars per hour, all machines together.
    pub per_hour: f64,
    /// The same for a day.
    pub per_day: f64,
    /// The same for a month of 730 hours.
    pub per_month: f64,
    /// US dollars so far, over the machines whose launch time is known.
    pub so_far: f64,
    /// How many machines' launch time is not known (not in `so_far`).
    pub unknown_launch: usize,
}

/// The cost of `instances` at `now`, most expensive first.
pub fn cost_view(instances: &[Instance], now: Timestamp) -> CostView {
    let mut machines: Vec<MachineCost> = instances
        .iter()
        .filter(|i| !i.status.is_gone() && i.status != lambda_cloud::InstanceStatus::Terminating)
        .map(|i| {
            let price = i.instance_type.price_dollars_per_hour();
            let launched = i
                .tag(gha_runner_core::tags::LAUNCHED)
                .and_then(|text| text.parse::<Timestamp>().ok())
                .filter(|at| *at <= now);
            let running_seconds =
                launched.and_then(|at| u64::try_from(now.duration_since(at).as_secs()).ok());
            #[allow(clippy::cast_precision_loss)]
            let cost_so_far = running_seconds.map(|s| price * s as f64 / 3600.0);
            MachineCost {
                id: i.id.to_string(),
                name: i.name.clone(),
                instance_type: i.instance_type.name.to_string(),
                region: i.region.name.to_string(),
                status: i.status.to_string(),
                price_per_hour: price,
                launched,
                running_seconds,
                cost_so_far,
            }
        })
        .collect();
    machines.sort_by(|a, b| {
        b.price_per_hour
            .total_cmp(&a.price_per_hour)
            .then_with(|| a.id.cmp(&b.id))
    });
    let per_hour: f64 = machines.iter().map(|m| m.price_per_hour).sum();
    CostView {
        per_hour,
        per_day: per_hour * 24.0,
        per_month: per_hour * HOURS_PER_MONTH,
        so_far: machines.iter().filter_map(|m| m.cost_so_far).sum(),
        unknown_launch: machines.iter().filter(|m| m.launched.is_none()).count(),
        machines,
    }
}

/// `3h 05m`, `12m`, `2d 4h`.
fn running(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else {
        format!("{minutes}m")
    }
}

/// The table of machines, then the totals.
pub fn render(view: &CostView) -> String {
    let mut table = crate::tables::Table::new(&[
        "ID", "NAME", "TYPE", "REGION", "STATUS", "$/H>", "RUNNING>", "SO FAR>",
    ]);
    for m in &view.machines {
        table.row(vec![
            m.id.clone(),
            m.name.clone().unwrap_or_else(|| "-".into()),
            m.instance_type.clone(),
            m.region.clone(),
            m.status.clone(),
            format!("{:.2}", m.price_per_hour),
            m.running_seconds.map_or_else(|| "?".into(), running),
            m.cost_so_far
                .map_or_else(|| "?".into(), |c| format!("{c:.2}")),
        ]);
    }
    let mut text = if view.machines.is_empty() {
        "Nothing is billing: no machine is running.\n".to_owned()
    } else {
        table.render()
    };
    if !view.machines.is_empty() {
        let _ = write!(
            text,
            "\n{} machine{} billing ${:.2}/hour, ${:.2}/day, ${:.2}/month; ${:.2} so far",
            view.machines.len(),
            if view.machines.len() == 1 { "" } else { "s" },
            view.per_hour,
            view.per_day,
            view.per_month,
            view.so_far
        );
        if view.unknown_launch > 0 {
            let _ = write!(
                text,
                " (not counting {} launched outside lambda-gha: Lambda's API does not say when)",
                view.unknown_launch
            );
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_time_reads_at_a_glance() {
        assert_eq!(running(59), "0m");
        assert_eq!(running(3 * 3600 + 5 * 60), "3h 05m");
        assert_eq!(running(2 * 86_400 + 4 * 3600 + 30), "2d 4h");
    }
}
