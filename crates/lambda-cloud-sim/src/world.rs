//! The simulated cloud's state and how it moves with time. Everything here is plain data and
//! synchronous logic under one lock; HTTP lives in `server` and the per-area modules.

use lambda_cloud::{
    Attachment, AuditEvent, FabricPartition, Filesystem, FirewallRule, FirewallRuleset, SshKey,
    SshKeyId, Ticket,
};

use crate::clock::SimClock;
use crate::ledger::{self, Ledger};
use crate::machine::{BillingRecord, Effect, SimInstance};
use crate::scenario::Scenario;

/// An attachment with its uploaded bytes.
#[derive(Debug, Clone)]
pub(crate) struct SimAttachment {
    pub(crate) ticket_id: String,
    pub(crate) attachment: Attachment,
    pub(crate) bytes: Option<Vec<u8>>,
}

/// The whole simulated account.
pub(crate) struct World {
    pub(crate) scenario: Scenario,
    pub(crate) clock: SimClock,
    pub(crate) now: f64,
    pub(crate) rng: fastrand::Rng,
    pub(crate) launches: u32,
    pub(crate) instances: Vec<SimInstance>,
    pub(crate) billing: Vec<BillingRecord>,
    pub(crate) ssh_keys: Vec<SshKey>,
    pub(crate) filesystems: Vec<Filesystem>,
    pub(crate) firewall_rules: Vec<FirewallRule>,
    pub(crate) rulesets: Vec<FirewallRuleset>,
    pub(crate) global_rules: Vec<FirewallRule>,
    pub(crate) tickets: Vec<Ticket>,
    pub(crate) attachments: Vec<SimAttachment>,
    pub(crate) partitions: Vec<FabricPartition>,
    pub(crate) audit: Vec<AuditEvent>,
    pub(crate) effects: Vec<Effect>,
    pub(crate) next_host: u32,
    /// Where the simulator serves (`http://127.0.0.1:PORT`): its instances' Jupyter URLs
    /// point here. Empty until the server is bound.
    pub(crate) base_url: String,
}

impl World {
    pub(crate) fn new(scenario: Scenario, clock: SimClock) -> World {
        let rng = fastrand::Rng::with_seed(scenario.seed);
        let mut world = World {
            scenario,
            clock,
            now: 0.0,
            rng,
            launches: 0,
            instances: Vec::new(),
            billing: Vec::new(),
            ssh_keys: Vec::new(),
            filesystems: Vec::new(),
            firewall_rules: vec![FirewallRule::tcp_port(
                22,
                "0.0.0.0/0",
                "Allow SSH from anywhere",
            )],
            rulesets: Vec::new(),
            global_rules: vec![FirewallRule::tcp_port(
                22,
                "0.0.0.0/0",
                "Allow SSH from anywhere",
            )],
            tickets: Vec::new(),
            attachments: Vec::new(),
            partitions: Vec::new(),
            audit: Vec::new(),
            effects: Vec::new(),
            next_host: 2,
            base_url: String::new(),
        };
        for spec in world.scenario.ssh_keys.clone() {
            let id = SshKeyId::new(world.new_id());
            world.ssh_keys.push(SshKey {
                id,
                name: spec.name,
                public_key: spec.public_key,
            });
        }
        world
    }

    /// A fresh 32-hex-digit id, as Lambda's look.
    pub(crate) fn new_id(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..))
    }

    /// Brings every instance up to the current simulated time.
    pub(crate) fn advance(&mut self) {
        self.now = self.now.max(self.clock.now());
        let now = self.now;
        let visible = self.scenario.terminated_visible_seconds;
        for instance in &mut self.instances {
            if let Some(effect) = instance.advance(now) {
                self.effects.push(effect);
            }
        }
        self.instances
            .retain(|instance| instance.terminated_at.is_none_or(|at| now < at + visible));
    }

    /// The current timestamp, for `created` fields.
    pub(crate) fn timestamp(&self) -> jiff::Timestamp {
        self.clock.timestamp(self.now)
    }

    pub(crate) fn ledger(&self) -> Ledger {
        let entries = self
            .billing
            .iter()
            .map(|record| ledger::entry(record, self.now))
            .collect();
        Ledger::new(self.now, entries)
    }
}
