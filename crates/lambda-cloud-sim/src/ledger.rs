//! The billing ledger: what each instance has cost, in simulated time. Billing starts at launch
//! and stops only when termination is requested, as on Lambda.

use lambda_cloud::{InstanceId, InstanceTypeName, RegionName};
use serde::{Deserialize, Serialize};

use crate::machine::BillingRecord;

/// One instance's bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The instance billed.
    pub instance_id: InstanceId,
    /// The name it was launched with, if any.
    pub name: Option<String>,
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

/// An instance's entry at simulated second `now`, from its billing window.
pub(crate) fn entry(record: &BillingRecord, now: f64) -> LedgerEntry {
    let billable_seconds = (record.ended_at.unwrap_or(now) - record.launched_at).max(0.0);
    LedgerEntry {
        instance_id: record.id.clone(),
        name: record.name.clone(),
        instance_type: record.instance_type.clone(),
        region: record.region.clone(),
        price_cents_per_hour: record.price_cents_per_hour,
        launched_at: record.launched_at,
        billing_ended_at: record.ended_at,
        billable_seconds,
        cost_cents: billable_seconds * f64::from(record.price_cents_per_hour) / 3600.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_costs_the_hourly_price_and_billing_stops_at_termination() {
        let record = |id: &str, launched_at: f64, ended_at: Option<f64>| BillingRecord {
            id: id.into(),
            name: Some(format!("{id}-name")),
            instance_type: "gpu_1x_a10".into(),
            region: RegionName::UsEast1,
            price_cents_per_hour: 75,
            launched_at,
            ended_at,
        };
        let ended = entry(&record("i1", 100.0, Some(3700.0)), 9999.0);
        assert!((ended.billable_seconds - 3600.0).abs() < 1e-9);
        assert!((ended.cost_cents - 75.0).abs() < 1e-9);
        assert_eq!(ended.name.as_deref(), Some("i1-name"));
        let running = entry(&record("i2", 0.0, None), 60.0);
        let ledger = Ledger::new(60.0, vec![ended, running]);
        assert_eq!(ledger.still_billing, [InstanceId::from("i2")]);
        assert!((ledger.total_billable_seconds - 3660.0).abs() < 1e-9);
    }
}
