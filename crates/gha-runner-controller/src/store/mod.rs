//! The controller's state: deliveries seen, jobs, launches and the decisions taken, so that a
//! restart loses nothing and launches nothing twice. One trait, [`Store`], two homes:
//!
//! - [`SqliteStore`] (the default): one file, one process.
//! - [`PgStore`]: a PostgreSQL database shared by several replicas behind a load balancer.
//!   Every replica records deliveries and serves the status; one at a time leads the reconcile
//!   loops (a session advisory lock and a lease that a dead or cut-off leader loses within
//!   seconds), and launches are paced account-wide by a slot reserved in the database.
//!
//! Both keep one schema (the same tables and columns, migrated step by step) and run the same
//! statements where their SQL agrees (`store/sql.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::error::ControllerError;

mod postgres;
mod sql;
mod sqlite;

pub use postgres::{PgStore, STEP_DOWN_AFTER, TAKE_OVER_AFTER};
pub use sqlite::SqliteStore;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

/// Where a job is, as the controller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for a runner: demand.
    Queued,
    /// Waiting for an environment's approval: no runner yet.
    Waiting,
    /// A runner took it.
    InProgress,
    /// Done.
    Completed,
    /// Queued in an event, but absent from a later listing of GitHub's queued jobs (its
    /// later events were lost): no longer counted.
    Stale,
    /// Queued longer than GitHub keeps a job queued.
    Expired,
}

impl JobStatus {
    /// Its word in the database.
    pub fn word(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Waiting => "waiting",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
            JobStatus::Stale => "stale",
            JobStatus::Expired => "expired",
        }
    }
}

/// A job to record.
#[derive(Debug, Clone)]
pub struct JobRecord<'a> {
    /// GitHub's id.
    pub id: u64,
    /// Its run.
    pub run_id: u64,
    /// `owner/repo`.
    pub repository: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its `runs-on` labels.
    pub labels: &'a [String],
    /// The pool that serves it.
    pub pool: &'a str,
    /// What the event or listing says.
    pub status: JobStatus,
    /// The runner that took it.
    pub runner_name: Option<&'a str>,
}

impl JobRecord<'_> {
    fn id_i64(&self) -> i64 {
        i64::try_from(self.id).unwrap_or(i64::MAX)
    }

    fn run_id_i64(&self) -> i64 {
        i64::try_from(self.run_id).unwrap_or(i64::MAX)
    }

    fn labels_json(&self) -> String {
        serde_json::to_string(self.labels).unwrap_or_default()
    }
}

/// Where a launch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchState {
    /// Registering, launching, booting: its runners are not online yet.
    Launching,
    /// Its runners came online.
    Running,
    /// Being terminated.
    Ending,
    /// Terminated, or ended itself.
    Ended,
    /// Failed; whatever it made was cleaned up.
    Failed,
}

impl LaunchState {
    /// Its word.
    pub fn word(self) -> &'static str {
        match self {
            LaunchState::Launching => "launching",
            LaunchState::Running => "running",
            LaunchState::Ending => "ending",
            LaunchState::Ended => "ended",
            LaunchState::Failed => "failed",
        }
    }

    fn from_word(word: &str) -> LaunchState {
        match word {
            "running" => LaunchState::Running,
            "ending" => LaunchState::Ending,
            "ended" => LaunchState::Ended,
            "failed" => LaunchState::Failed,
            _ => LaunchState::Launching,
        }
    }

    /// Whether it may be billing or about to.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            LaunchState::Launching | LaunchState::Running | LaunchState::Ending
        )
    }
}

/// One launch: one machine, its runners, its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// Its label (`lambda-<pool>-<random>`), which names its runners and tags its machine.
    pub label: String,
    /// Its pool.
    pub pool: String,
    /// Where it is.
    pub state: LaunchState,
    /// How many runners it registers.
    pub runners: usize,
    /// Its machine, once launched.
    pub machine_id: Option<String>,
    /// Where it launched.
    pub instance_type: Option<String>,
    /// Where it launched.
    pub region: Option<String>,
    /// Its price.
    pub price_cents_per_hour: Option<u32>,
    /// When it was decided.
    pub started_at: Millis,
    /// When its runners came online.
    pub online_at: Option<Millis>,
    /// Since when its online runners have all been idle, unused.
    pub idle_since: Option<Millis>,
    /// When it ended.
    pub ended_at: Option<Millis>,
    /// How many of its runners took a job.
    pub runners_used: usize,
    /// Why it failed or ended.
    pub reason: Option<String>,
}

impl Launch {
    /// What it cost up to `now`, in US dollars (from its decision: Lambda bills from the
    /// launch call).
    pub fn cost_usd(&self, now: Millis) -> f64 {
        let Some(price) = self.price_cents_per_hour else {
            return 0.0;
        };
        let end = self.ended_at.unwrap_or(now);
        #[allow(clippy::cast_precision_loss)]
        let hours = (end - self.started_at).max(0) as f64 / 3_600_000.0;
        f64::from(price) / 100.0 * hours
    }

    /// Runners that could still take a job.
    pub fn free_runners(&self) -> usize {
        self.runners.saturating_sub(self.runners_used)
    }
}

/// A decision, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// When.
    pub at: Millis,
    /// For which pool.
    pub pool: Option<String>,
    /// What, and why.
    pub text: String,
}

/// What recording a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// New, and its job recorded.
    New,
    /// Seen before: nothing changed.
    Duplicate,
}

/// A replica's turn at leading the reconcile loops: its epoch fences what it writes (a
/// deposed leader's launch decisions are refused by the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// Counts the terms, across replicas and restarts.
    pub epoch: i64,
}

/// A launch's turn on the account-wide pacing ([`Store::reserve_launch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchSlot {
    /// When the launch may go, on the shared store's clock; `None` from a store only one
    /// process uses, which reserves nothing (the provider's client paces its own launches).
    pub at: Option<Millis>,
    /// How long from now that is.
    pub wait: Duration,
}

/// The state, wherever it lives. Every method is one short transaction; what several
/// replicas may do at once is safe on a shared store (see [`PgStore`]).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where the state is, for messages (a path, or a server and database; never a password).
    fn describe(&self) -> String;

    /// Whether the store answers now (for `/healthz`).
    async fn check(&self) -> Result<(), ControllerError>;

    /// Records delivery `id` and, when it carries one of a pool's jobs, the job, in one
    /// transaction: a delivery seen before (by any replica) changes nothing.
    async fn record_delivery(
        &self,
        id: &str,
        job: Option<&JobRecord<'_>>,
        now: Millis,
    ) -> Result<Recorded, ControllerError>;

    /// Records GitHub's listing of queued jobs, taken from `listed_since` on: new ones are
    /// queued, and jobs the store holds queued since before the listing that it does not
    /// name are marked stale (their later events were lost). Returns how many jobs were new,
    /// and how many went stale.
    async fn record_listing(
        &self,
        repository: &str,
        jobs: &[JobRecord<'_>],
        listed_since: Millis,
        now: Millis,
    ) -> Result<(usize, usize), ControllerError>;

    /// Marks jobs queued since before `before` expired; returns how many.
    async fn expire_jobs(&self, before: Millis, now: Millis) -> Result<usize, ControllerError>;

    /// Queued jobs per pool: the demand.
    async fn queued_by_pool(&self) -> Result<BTreeMap<String, usize>, ControllerError>;

    /// Jobs per status word.
    async fn jobs_by_status(&self) -> Result<BTreeMap<String, usize>, ControllerError>;

    /// How many deliveries were recorded.
    async fn deliveries(&self) -> Result<usize, ControllerError>;

    /// Claims the deliveries no decision pass has read yet, marking them decided at `now`;
    /// returns when each was received (the decision latency's samples). On a shared store
    /// rows another pass holds are skipped, not waited for.
    async fn claim_deliveries(&self, now: Millis) -> Result<Vec<Millis>, ControllerError>;

    /// Records a launch decided now, before anything is sent: a crash after this line finds
    /// it, and its machine by its label. On a shared store it is refused
    /// ([`ControllerError::NotLeading`]) unless this replica's term is the current one.
    async fn new_launch(
        &self,
        label: &str,
        pool: &str,
        runners: usize,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError>;

    /// A launch whose runners came online on `machine`.
    async fn launch_running(
        &self,
        label: &str,
        machine: &str,
        instance_type: &str,
        region: &str,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError>;

    /// Moves a live launch to `state` (ending, ended or failed), saying why.
    async fn end_launch(
        &self,
        label: &str,
        state: LaunchState,
        reason: &str,
        now: Millis,
    ) -> Result<(), ControllerError>;

    /// Records what the runners of a running launch did: how many took a job (never fewer
    /// than before), and since when all its online runners have been idle.
    async fn set_usage(
        &self,
        label: &str,
        runners_used: usize,
        idle_since: Option<Millis>,
    ) -> Result<(), ControllerError>;

    /// Launches that may bill, each with its runners used counted from the jobs its runners
    /// took as well (an `in_progress` delivery is quicker than a listing of runners).
    async fn live_launches(&self) -> Result<Vec<Launch>, ControllerError>;

    /// The launch called `label`, with its runners used counted as in
    /// [`Store::live_launches`].
    async fn launch(&self, label: &str) -> Result<Option<Launch>, ControllerError>;

    /// Launches decided since `since` (for the day's cost), and every live one.
    async fn launches_since(&self, since: Millis) -> Result<Vec<Launch>, ControllerError>;

    /// Every launch with a price (for the cost so far).
    async fn priced_launches(&self) -> Result<Vec<Launch>, ControllerError>;

    /// For each live launch, how many of its runners finished a job.
    async fn finished_runners(&self) -> Result<BTreeMap<String, usize>, ControllerError>;

    /// Where the launch called `label` is, if the store knows it.
    async fn launch_state(&self, label: &str) -> Result<Option<LaunchState>, ControllerError>;

    /// How many launches each pool decided, and how many failed.
    async fn launch_totals(&self) -> Result<BTreeMap<String, (usize, usize)>, ControllerError>;

    /// Records a decision.
    async fn decide(
        &self,
        pool: Option<&str>,
        text: &str,
        now: Millis,
    ) -> Result<(), ControllerError>;

    /// The latest `count` decisions, newest first.
    async fn recent_decisions(&self, count: usize) -> Result<Vec<Decision>, ControllerError>;

    /// How many decisions said something containing `text` (for tests and reports).
    async fn decisions_containing(&self, text: &str) -> Result<usize, ControllerError>;

    /// Tries to become the replica that leads the reconcile loops; `None`: another leads.
    /// A store only one process uses always grants it.
    async fn lead(&self, replica: &str) -> Result<Option<Term>, ControllerError>;

    /// Keeps this replica's term; `false`: it was lost (the loops must stop now).
    async fn renew(&self) -> Result<bool, ControllerError>;

    /// Gives the term up (a replica stepping down or shutting down).
    async fn resign(&self);

    /// Reserves the next launch slot, at least `interval` after every other replica's. A store
    /// only one process uses answers "now": the provider's client paces its own launches.
    async fn reserve_launch(&self, interval: Duration) -> Result<LaunchSlot, ControllerError>;

    /// Notified when another replica recorded a delivery (a shared store), so the leader
    /// decides at once instead of at its next tick.
    fn wakeups(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// Every launch's cost up to `now`.
pub async fn total_cost_usd(store: &dyn Store, now: Millis) -> Result<f64, ControllerError> {
    Ok(store
        .priced_launches()
        .await?
        .iter()
        .map(|l| l.cost_usd(now))
        .sum())
}

/// Where the state lives: `controller.toml`'s `database` (or `serve --database`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL server: `postgres://user@host:port/dbname` (the password, if any, comes
    /// from `PGPASSWORD`, never from the URL).
    Postgres(String),
}

impl Database {
    /// Reads `text`: a `postgres://` or `postgresql://` URL, or a SQLite file's path. A URL
    /// carrying a password is refused: configuration files and argv are readable by others.
    pub fn parse(text: &str) -> Result<Database, String> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Ok(Database::Sqlite(text.into()));
        }
        let authority = text
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        if let Some((user_info, _)) = authority.rsplit_once('@')
            && user_info.contains(':')
        {
            return Err(
                "the database URL carries a password: take it out of the URL and set PGPASSWORD in the controller's environment instead"
                    .to_owned(),
            );
        }
        text.parse::<tokio_postgres::Config>().map_err(|e| {
            format!("not a PostgreSQL URL ({e}): write postgres://user@host:5432/dbname")
        })?;
        Ok(Database::Postgres(text.to_owned()))
    }

    /// Opens it, bringing its schema up to date; `password` is the PostgreSQL password
    /// (`PGPASSWORD`), if any.
    pub async fn open(
        &self,
        password: Option<&secrecy::SecretString>,
    ) -> Result<Arc<dyn Store>, ControllerError> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            Database::Postgres(url) => Arc::new(PgStore::connect(url, password).await?),
        })
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(url),
        }
    }
}

/// A row of either database, read by column index: one decoding of a launch for both.
trait Columns {
    fn text(&self, i: usize) -> Result<String, String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, String>;
    fn int(&self, i: usize) -> Result<i64, String>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String>;
}

/// A launch from the columns of [`sql::LAUNCH_COLUMNS`] and, after them, the count of jobs
/// its runners took.
fn launch_from(row: &impl Columns) -> Result<Launch, String> {
    let count =
        |i: usize| -> Result<usize, String> { Ok(usize::try_from(row.int(i)?).unwrap_or(0)) };
    let runners = count(3)?;
    let taken = count(14)?;
    Ok(Launch {
        label: row.text(0)?,
        pool: row.text(1)?,
        state: LaunchState::from_word(&row.text(2)?),
        runners,
        machine_id: row.opt_text(4)?,
        instance_type: row.opt_text(5)?,
        region: row.opt_text(6)?,
        price_cents_per_hour: row.opt_int(7)?.and_then(|p| u32::try_from(p).ok()),
        started_at: row.int(8)?,
        online_at: row.opt_int(9)?,
        idle_since: row.opt_int(10)?,
        ended_at: row.opt_int(11)?,
        runners_used: count(12)?.max(taken).min(runners),
        reason: row.opt_text(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_a_path_or_a_url_without_its_password() {
        assert_eq!(
            Database::parse("/var/lib/lambda-gha/state.db").unwrap(),
            Database::Sqlite("/var/lib/lambda-gha/state.db".into())
        );
        assert_eq!(
            Database::parse("postgres://gha@db.internal:5432/lambda_gha").unwrap(),
            Database::Postgres("postgres://gha@db.internal:5432/lambda_gha".into())
        );
        let error = Database::parse("postgresql://gha:hunter2@db/lambda_gha").unwrap_err();
        assert!(
            error.contains("PGPASSWORD") && !error.contains("hunter2"),
            "{error}"
        );
        let error = Database::parse("postgres://db:notaport/x").unwrap_err();
        assert!(
            error.contains("postgres://user@host:5432/dbname"),
            "{error}"
        );
    }
}
