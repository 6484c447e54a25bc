//! The controller's state in SQLite: deliveries seen, jobs, launches and the decisions taken,
//! so that a restart loses nothing and launches nothing twice. One connection behind a mutex
//! (calls are short; SQLite serializes writers anyway), WAL so readers never wait for the
//! writer, and `synchronous = NORMAL`: WAL keeps every committed transaction across a
//! process crash (sqlite.org, "Write-Ahead Logging"; only a power loss may roll back the
//! last ones, and GitHub's redelivery and the job listing recover those).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ControllerError;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

/// The schema, one step per version; `PRAGMA user_version` says how many ran. A step is
/// never edited once released: a change is a new step.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        job_id INTEGER,
        action TEXT,
        received_at INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        repository TEXT NOT NULL,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        pool TEXT NOT NULL,
        status TEXT NOT NULL,
        runner_name TEXT,
        queued_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_status ON jobs (status, pool);
    CREATE TABLE launches (
        label TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        state TEXT NOT NULL,
        runners INTEGER NOT NULL,
        machine_id TEXT,
        instance_type TEXT,
        region TEXT,
        price_cents_per_hour INTEGER,
        started_at INTEGER NOT NULL,
        online_at INTEGER,
        idle_since INTEGER,
        ended_at INTEGER,
        runners_used INTEGER NOT NULL DEFAULT 0,
        reason TEXT
    );
    CREATE INDEX launches_by_state ON launches (state);
    CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        pool TEXT,
        text TEXT NOT NULL
    );",
    // 2: a launch's jobs found by its runners' names as a range of the index (every decision
    // pass counts them; a scan grew with the jobs ever seen).
    "CREATE INDEX jobs_by_runner ON jobs (runner_name);",
];

/// The jobs whose runner is one of launch `label`'s (`<label>-<machine>-<runner>`), as an index
/// range: `-` sorts just before `.`.
const RUNNER_OF_LAUNCH: &str = "jobs.runner_name >= launches.label || '-' \
    AND jobs.runner_name < launches.label || '.'";

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

    /// How far along a job is: an event never moves it back (deliveries arrive out of order;
    /// a re-run is a new job id).
    fn rank(self) -> u8 {
        match self {
            JobStatus::Queued | JobStatus::Waiting | JobStatus::Stale | JobStatus::Expired => 0,
            JobStatus::InProgress => 1,
            JobStatus::Completed => 2,
        }
    }

    fn from_word(word: &str) -> JobStatus {
        match word {
            "waiting" => JobStatus::Waiting,
            "in_progress" => JobStatus::InProgress,
            "completed" => JobStatus::Completed,
            "stale" => JobStatus::Stale,
            "expired" => JobStatus::Expired,
            _ => JobStatus::Queued,
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

/// The state database.
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const LAUNCH_COLUMNS: &str = "label, pool, state, runners, machine_id, instance_type, region, \
    price_cents_per_hour, started_at, online_at, idle_since, ended_at, runners_used, reason";

fn launch_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Launch> {
    let count = |i: usize| -> rusqlite::Result<usize> {
        Ok(usize::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
    };
    Ok(Launch {
        label: row.get(0)?,
        pool: row.get(1)?,
        state: LaunchState::from_word(&row.get::<_, String>(2)?),
        runners: count(3)?,
        machine_id: row.get(4)?,
        instance_type: row.get(5)?,
        region: row.get(6)?,
        price_cents_per_hour: row.get(7)?,
        started_at: row.get(8)?,
        online_at: row.get(9)?,
        idle_since: row.get(10)?,
        ended_at: row.get(11)?,
        runners_used: count(12)?,
        reason: row.get(13)?,
    })
}

impl Store {
    /// Opens (creating) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, ControllerError> {
        let name = path.display().to_string();
        let fail = |e: rusqlite::Error| ControllerError::Store {
            path: name.clone(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(fail)?;
        migrate(&conn).map_err(|e| ControllerError::Store {
            path: name.clone(),
            message: e,
        })?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: name,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fail(&self, e: &rusqlite::Error) -> ControllerError {
        ControllerError::Store {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, ControllerError> {
        self.lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.fail(&e))
    }

    /// Records delivery `id` and, when it carries one of a pool's jobs, the job, in one
    /// transaction: a delivery seen before changes nothing.
    pub fn record_delivery(
        &self,
        id: &str,
        job: Option<&JobRecord<'_>>,
        now: Millis,
    ) -> Result<Recorded, ControllerError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.fail(&e))?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO deliveries (id, job_id, action, received_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    job.map(|j| i64::try_from(j.id).unwrap_or(i64::MAX)),
                    job.map(|j| j.status.word()),
                    now
                ],
            )
            .map_err(|e| self.fail(&e))?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        if let Some(job) = job {
            upsert_job(&tx, job, now).map_err(|e| self.fail(&e))?;
        }
        tx.commit().map_err(|e| self.fail(&e))?;
        Ok(Recorded::New)
    }

    /// Records GitHub's listing of queued jobs, taken from `listed_since` on: new ones are
    /// queued, and jobs the store holds queued since before the listing that it does not
    /// name are marked stale (their later events were lost). Returns how many jobs were new,
    /// and how many went stale.
    pub fn record_listing(
        &self,
        repository: &str,
        jobs: &[JobRecord<'_>],
        listed_since: Millis,
        now: Millis,
    ) -> Result<(usize, usize), ControllerError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.fail(&e))?;
        let mut new = 0;
        for job in jobs {
            let known: Option<String> = tx
                .query_row(
                    "SELECT status FROM jobs WHERE id = ?1",
                    [i64::try_from(job.id).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.fail(&e))?;
            match known.as_deref().map(JobStatus::from_word) {
                None => {
                    upsert_job(&tx, job, now).map_err(|e| self.fail(&e))?;
                    new += 1;
                }
                Some(JobStatus::Stale) => {
                    tx.execute(
                        "UPDATE jobs SET status = 'queued', updated_at = ?2 WHERE id = ?1",
                        params![i64::try_from(job.id).unwrap_or(i64::MAX), now],
                    )
                    .map_err(|e| self.fail(&e))?;
                }
                Some(_) => {}
            }
        }
        let listed: Vec<i64> = jobs
            .iter()
            .map(|j| i64::try_from(j.id).unwrap_or(i64::MAX))
            .collect();
        let stale_candidates: Vec<i64> = {
            let mut statement = tx
                .prepare(
                    "SELECT id FROM jobs WHERE status = 'queued' AND repository = ?1 AND updated_at < ?2",
                )
                .map_err(|e| self.fail(&e))?;
            statement
                .query_map(params![repository, listed_since], |r| r.get(0))
                .map_err(|e| self.fail(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.fail(&e))?
        };
        let mut stale = 0;
        for id in stale_candidates
            .into_iter()
            .filter(|id| !listed.contains(id))
        {
            stale += tx
                .execute(
                    "UPDATE jobs SET status = 'stale', updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )
                .map_err(|e| self.fail(&e))?;
        }
        tx.commit().map_err(|e| self.fail(&e))?;
        Ok((new, stale))
    }

    /// Marks jobs queued since before `before` expired; returns how many.
    pub fn expire_jobs(&self, before: Millis, now: Millis) -> Result<usize, ControllerError> {
        self.lock()
            .execute(
                "UPDATE jobs SET status = 'expired', updated_at = ?2 WHERE status = 'queued' AND queued_at < ?1",
                params![before, now],
            )
            .map_err(|e| self.fail(&e))
    }

    /// Queued jobs per pool: the demand.
    pub fn queued_by_pool(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts("SELECT pool, COUNT(*) FROM jobs WHERE status = 'queued' GROUP BY pool")
    }

    /// Jobs per status word.
    pub fn jobs_by_status(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts("SELECT status, COUNT(*) FROM jobs GROUP BY status")
    }

    /// The rows of `sql`, a `(name, count)` query, as a map.
    fn counts(&self, sql: &str) -> Result<BTreeMap<String, usize>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(sql).map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                ))
            })
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    /// How many deliveries were recorded.
    pub fn deliveries(&self) -> Result<usize, ControllerError> {
        self.lock()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| self.fail(&e))
    }

    /// Records a launch decided now, before anything is sent: a crash after this line finds
    /// it, and its machine by its label.
    pub fn new_launch(
        &self,
        label: &str,
        pool: &str,
        runners: usize,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        self.lock()
            .execute(
                "INSERT INTO launches (label, pool, state, runners, price_cents_per_hour, started_at) VALUES (?1, ?2, 'launching', ?3, ?4, ?5)",
                params![label, pool, i64::try_from(runners).unwrap_or(1), price_cents_per_hour, now],
            )
            .map(drop)
            .map_err(|e| self.fail(&e))
    }

    /// A launch whose runners came online on `machine`.
    pub fn launch_running(
        &self,
        label: &str,
        machine: &str,
        instance_type: &str,
        region: &str,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        self.lock()
            .execute(
                "UPDATE launches SET state = 'running', machine_id = ?2, instance_type = ?3, region = ?4,
                 price_cents_per_hour = COALESCE(?5, price_cents_per_hour), online_at = ?6, idle_since = ?6
                 WHERE label = ?1 AND state = 'launching'",
                params![label, machine, instance_type, region, price_cents_per_hour, now],
            )
            .map(drop)
            .map_err(|e| self.fail(&e))
    }

    /// Moves a live launch to `state` (ending, ended or failed), saying why.
    pub fn end_launch(
        &self,
        label: &str,
        state: LaunchState,
        reason: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        let ended = (state != LaunchState::Ending).then_some(now);
        self.lock()
            .execute(
                "UPDATE launches SET state = ?2, reason = COALESCE(reason, ?3), ended_at = COALESCE(?4, ended_at)
                 WHERE label = ?1 AND state IN ('launching', 'running', 'ending')",
                params![label, state.word(), reason, ended],
            )
            .map(drop)
            .map_err(|e| self.fail(&e))
    }

    /// Records what the runners of a running launch did: how many took a job (never fewer
    /// than before), and since when all its online runners have been idle.
    pub fn set_usage(
        &self,
        label: &str,
        runners_used: usize,
        idle_since: Option<Millis>,
    ) -> Result<(), ControllerError> {
        self.lock()
            .execute(
                "UPDATE launches SET runners_used = MAX(runners_used, ?2), idle_since = ?3 WHERE label = ?1",
                params![label, i64::try_from(runners_used).unwrap_or(0), idle_since],
            )
            .map(drop)
            .map_err(|e| self.fail(&e))
    }

    /// Launches that may bill, each with its runners used counted from the jobs its runners
    /// took as well (an `in_progress` delivery is quicker than a listing of runners).
    pub fn live_launches(&self) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where("state IN ('launching', 'running', 'ending')", &[])
    }

    /// The launch called `label`, with its runners used counted as in [`Store::live_launches`].
    pub fn launch(&self, label: &str) -> Result<Option<Launch>, ControllerError> {
        Ok(self
            .launches_where("label = ?1", &[&label])?
            .into_iter()
            .next())
    }

    /// Launches decided since `since` (for the day's cost), and every live one.
    pub fn launches_since(&self, since: Millis) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(
            "started_at >= ?1 OR state IN ('launching', 'running', 'ending')",
            &[&since],
        )
    }

    fn launches_where(
        &self,
        filter: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Launch>, ControllerError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT {LAUNCH_COLUMNS}, (SELECT COUNT(*) FROM jobs WHERE {RUNNER_OF_LAUNCH})
             FROM launches WHERE {filter} ORDER BY started_at, label"
        );
        let mut statement = conn.prepare_cached(&sql).map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map(values, |row| {
                let mut launch = launch_from_row(row)?;
                let taken = usize::try_from(row.get::<_, i64>(14)?).unwrap_or(0);
                launch.runners_used = launch.runners_used.max(taken).min(launch.runners);
                Ok(launch)
            })
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    /// For each live launch, how many of its runners finished a job (a completed job whose
    /// runner is one of its).
    pub fn finished_runners(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(&format!(
            "SELECT launches.label, COUNT(jobs.id) FROM launches JOIN jobs
             ON jobs.status = 'completed' AND {RUNNER_OF_LAUNCH}
             WHERE launches.state IN ('launching', 'running', 'ending')
             GROUP BY launches.label"
        ))
    }

    /// Where the launch called `label` is, if the store knows it.
    pub fn launch_state(&self, label: &str) -> Result<Option<LaunchState>, ControllerError> {
        self.lock()
            .query_row(
                "SELECT state FROM launches WHERE label = ?1",
                [label],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|state| state.as_deref().map(LaunchState::from_word))
            .map_err(|e| self.fail(&e))
    }

    /// How many launches each pool decided, and how many failed.
    pub fn launch_totals(&self) -> Result<BTreeMap<String, (usize, usize)>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT pool, COUNT(*), SUM(state = 'failed') FROM launches GROUP BY pool",
            )
            .map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        usize::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    ),
                ))
            })
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    /// Every launch ever made, with what it cost up to `now`.
    pub fn total_cost_usd(&self, now: Millis) -> Result<f64, ControllerError> {
        Ok(self
            .launches_where("price_cents_per_hour IS NOT NULL", &[])?
            .iter()
            .map(|l| l.cost_usd(now))
            .sum())
    }

    /// Records a decision.
    pub fn decide(
        &self,
        pool: Option<&str>,
        text: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        tracing::info!(pool, "{text}");
        self.lock()
            .execute(
                "INSERT INTO decisions (at, pool, text) VALUES (?1, ?2, ?3)",
                params![now, pool, text],
            )
            .map(drop)
            .map_err(|e| self.fail(&e))
    }

    /// The latest `count` decisions, newest first.
    pub fn recent_decisions(&self, count: usize) -> Result<Vec<Decision>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached("SELECT at, pool, text FROM decisions ORDER BY seq DESC LIMIT ?1")
            .map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map([i64::try_from(count).unwrap_or(0)], |r| {
                Ok(Decision {
                    at: r.get(0)?,
                    pool: r.get(1)?,
                    text: r.get(2)?,
                })
            })
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    /// How many decisions said something containing `text` (for tests and reports).
    pub fn decisions_containing(&self, text: &str) -> Result<usize, ControllerError> {
        self.lock()
            .query_row(
                "SELECT COUNT(*) FROM decisions WHERE instr(text, ?1) > 0",
                [text],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| self.fail(&e))
    }
}

/// Inserts a job, or moves a known one forward (never back).
fn upsert_job(conn: &Connection, job: &JobRecord<'_>, now: Millis) -> rusqlite::Result<()> {
    let id = i64::try_from(job.id).unwrap_or(i64::MAX);
    let known: Option<String> = conn
        .query_row("SELECT status FROM jobs WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    match known.as_deref().map(JobStatus::from_word) {
        None => {
            let labels = serde_json::to_string(job.labels).unwrap_or_default();
            conn.execute(
                "INSERT INTO jobs (id, run_id, repository, name, labels, pool, status, runner_name, queued_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                params![
                    id,
                    i64::try_from(job.run_id).unwrap_or(i64::MAX),
                    job.repository,
                    job.name,
                    labels,
                    job.pool,
                    job.status.word(),
                    job.runner_name,
                    now
                ],
            )?;
        }
        Some(status)
            if job.status.rank() > status.rank()
                || (job.status.rank() == 0
                    && status.rank() == 0
                    && job.status != status
                    && matches!(job.status, JobStatus::Queued | JobStatus::Waiting)) =>
        {
            conn.execute(
                "UPDATE jobs SET status = ?2, runner_name = COALESCE(?3, runner_name), updated_at = ?4 WHERE id = ?1",
                params![id, job.status.word(), job.runner_name, now],
            )?;
        }
        Some(_) => {}
    }
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(format!(
            "its schema is version {version}, newer than this controller's {known}: run the newer lambda-gha, or start from a new database"
        ));
    }
    for (i, step) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let to = i + 1;
        conn.execute_batch(&format!(
            "BEGIN; {step}; PRAGMA user_version = {to}; COMMIT;"
        ))
        .map_err(|e| format!("schema step {to} failed: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("lgc-store-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        (Store::open(&path).unwrap(), dir)
    }

    fn job(id: u64, status: JobStatus, runner: Option<&'static str>) -> JobRecord<'static> {
        static LABELS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["self-hosted".to_owned(), "gpu".to_owned()]);
        JobRecord {
            id,
            run_id: 7,
            repository: "octo/gpu",
            name: "train",
            labels: &LABELS,
            pool: "a10",
            status,
            runner_name: runner,
        }
    }

    #[test]
    fn a_delivery_counts_once_and_a_job_never_moves_back() {
        let (store, dir) = temp_store();
        assert_eq!(store.schema_version().unwrap(), 2);
        let queued = job(1, JobStatus::Queued, None);
        assert_eq!(
            store.record_delivery("d1", Some(&queued), 1).unwrap(),
            Recorded::New
        );
        assert_eq!(
            store.record_delivery("d1", Some(&queued), 2).unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(store.queued_by_pool().unwrap()["a10"], 1);
        let taken = job(1, JobStatus::InProgress, Some("lambda-a10-x-0-0"));
        store.record_delivery("d2", Some(&taken), 3).unwrap();
        // The queued delivery again, under a new id (GitHub's redelivery): no step back.
        store.record_delivery("d3", Some(&queued), 4).unwrap();
        assert!(store.queued_by_pool().unwrap().is_empty());
        assert_eq!(store.deliveries().unwrap(), 3);
        drop(store);
        // Reopened: the schema is not run again, the state is all there.
        let store = Store::open(&dir.join("state.db")).unwrap();
        assert_eq!(store.jobs_by_status().unwrap()["in_progress"], 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_listing_recovers_lost_jobs_and_retires_jobs_it_no_longer_names() {
        let (store, dir) = temp_store();
        store
            .record_delivery("d1", Some(&job(1, JobStatus::Queued, None)), 10)
            .unwrap();
        store
            .record_delivery("d2", Some(&job(2, JobStatus::Queued, None)), 10)
            .unwrap();
        // Job 2's in_progress delivery was lost; job 3's queued one too.
        let listed = [
            job(1, JobStatus::Queued, None),
            job(3, JobStatus::Queued, None),
        ];
        assert_eq!(
            store.record_listing("octo/gpu", &listed, 20, 30).unwrap(),
            (1, 1)
        );
        assert_eq!(store.queued_by_pool().unwrap()["a10"], 2, "jobs 1 and 3");
        // A job queued after the listing began is not judged by it.
        store
            .record_delivery("d4", Some(&job(4, JobStatus::Queued, None)), 25)
            .unwrap();
        assert_eq!(
            store.record_listing("octo/gpu", &listed, 20, 40).unwrap(),
            (0, 0)
        );
        assert_eq!(store.expire_jobs(15, 50).unwrap(), 1, "job 1, queued at 10");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn launches_count_the_jobs_their_runners_took() {
        let (store, dir) = temp_store();
        store
            .new_launch("lambda-a10-abc", "a10", 2, Some(75), 0)
            .unwrap();
        store
            .record_delivery(
                "d1",
                Some(&job(1, JobStatus::InProgress, Some("lambda-a10-abc-0-1"))),
                5,
            )
            .unwrap();
        store
            .record_delivery(
                "d2",
                Some(&job(2, JobStatus::InProgress, Some("lambda-a10-abcd-0-0"))),
                5,
            )
            .unwrap();
        let live = store.live_launches().unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(
            live[0].runners_used, 1,
            "another label's runner is not counted"
        );
        assert_eq!(live[0].free_runners(), 1);
        store
            .launch_running("lambda-a10-abc", "i-1", "gpu_1x_a10", "us-east-1", None, 10)
            .unwrap();
        store
            .end_launch("lambda-a10-abc", LaunchState::Ended, "done", 3_600_000)
            .unwrap();
        assert!(store.live_launches().unwrap().is_empty());
        assert!(
            (store.total_cost_usd(7_200_000).unwrap() - 0.75).abs() < 1e-9,
            "one hour at 75 ¢"
        );
        assert_eq!(store.launch_totals().unwrap()["a10"], (1, 0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A database made by the first schema is brought up to date, its rows kept, and the
    /// launch's jobs are found through the new index.
    #[test]
    fn a_first_schema_database_is_migrated_in_place() {
        let dir = std::env::temp_dir().join(format!("lgc-store-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!("{}; PRAGMA user_version = 1;", MIGRATIONS[0]))
                .unwrap();
            conn.execute(
                "INSERT INTO launches (label, pool, state, runners, started_at) VALUES ('lambda-a10-cx', 'a10', 'running', 1, 0)",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), 2);
        store
            .record_delivery(
                "d1",
                Some(&job(1, JobStatus::Completed, Some("lambda-a10-cx-0-0"))),
                1,
            )
            .unwrap();
        assert_eq!(store.finished_runners().unwrap()["lambda-a10-cx"], 1);
        let plan: String = store
            .lock()
            .query_row(
                "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM jobs \
                 WHERE jobs.runner_name >= 'lambda-a10-cx-' AND jobs.runner_name < 'lambda-a10-cx.'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("USING COVERING INDEX jobs_by_runner"),
            "{plan}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_with_the_fix() {
        let (store, dir) = temp_store();
        store
            .lock()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        drop(store);
        let error = Store::open(&dir.join("state.db")).unwrap_err().to_string();
        assert!(error.contains("newer than this controller's 2"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
