//! The billing ledger: what each instance has cost, in simulated time. Billing starts at launch
//! and stops only when termination is requested, as on Lambda.

use lambda_cloud::{InstanceId, InstanceTypeName, RegionName};
use serde::{Deserialize, Serialize};

/// One instance's bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The instance billed.
    pub instance_id: InstanceId,
    /// Its type, which sets the price.
    pub instance_type: InstanceTypeName,
    /// Where it ran.
    pub region: RegionName,
    /// Its type's price when it launched, US cents per hour.
    pub price_cents_per_hour: u32,
    /// Simulated second of the launch.
    pub launched_at: f64,
    /// Simulated second termination was requested; `None` while still billing.
    pub billing_ended_at: Option<f64>,
    /// Simulated seconds billed so far.
    pub billable_seconds: f64,
    /// Cents billed so far (fractional; Lambda rounds on the invoice).
    pub cost_cents: f64,
}

impl LedgerEntry {
    /// Whether the instance is still billing.
    pub fn is_billing(&self) -> bool {
        self.billing_ended_at.is_none()
    }
}

/// Every instance ever launched in this simulator and what it cost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Simulated second the ledger was read at.
    pub at: f64,
    /// One entry per instance, in launch order.
    pub entries: Vec<LedgerEntry>,
    /// Simulated seconds billed in total.
    pub total_billable_seconds: f64,
    /// Cents billed in total.
    pub total_cost_cents: f64,
    /// Instances still billing: what a test wants empty at the end.
    pub still_billing: Vec<InstanceId>,
}

impl Ledger {
    pub(crate) fn new(at: f64, entries: Vec<LedgerEntry>) -> Ledger {
        let total_billable_seconds = entries.iter().map(|e| e.billable_seconds).sum();
        let total_cost_cents = entries.iter().map(|e| e.cost_cents).sum();
        let still_billing = entries
            .iter()
            .filter(|e| e.is_billing())
            .map(|e| e.instance_id.clone())
            .collect();
        Ledger {
            at,
            entries,
            total_billable_seconds,
            total_cost_cents,
            still_billing,
        }
    }

    /// The entry for one instance.
    pub fn entry(&self, id: &InstanceId) -> Option<&LedgerEntry> {
        self.entries.iter().find(|e| &e.instance_id == id)
    }
}

/// Builds an entry from an instance's billing window.
pub(crate) fn entry(
    instance_id: InstanceId,
    instance_type: InstanceTypeName,
    region: RegionName,
    price_cents_per_hour: u32,
    launched_at: f64,
    billing_ended_at: Option<f64>,
    now: f64,
) -> LedgerEntry {
    let billable_seconds = (billing_ended_at.unwrap_or(now) - launched_at).max(0.0);
    LedgerEntry {
        instance_id,
        instance_type,
        region,
        price_cents_per_hour,
        launched_at,
        billing_ended_at,
        billable_seconds,
        cost_cents: billable_seconds * f64::from(price_cents_per_hour) / 3600.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_costs_the_hourly_price_and_billing_stops_at_termination() {
        let ended = entry(
            "i1".into(),
            "gpu_1x_a10".into(),
            RegionName::UsEast1,
            75,
            100.0,
            Some(3700.0),
            9999.0,
        );
        assert!((ended.billable_seconds - 3600.0).abs() < 1e-9);
        assert!((ended.cost_cents - 75.0).abs() < 1e-9);
        let running = entry(
            "i2".into(),
            "gpu_1x_a10".into(),
            RegionName::UsEast1,
            75,
            0.0,
            None,
            60.0,
        );
        let ledger = Ledger::new(60.0, vec![ended, running]);
        assert_eq!(ledger.still_billing, [InstanceId::from("i2")]);
        assert!((ledger.total_billable_seconds - 3660.0).abs() < 1e-9);
    }
}
