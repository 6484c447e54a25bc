//! The state in one SQLite file: the default, for one controller process. One connection
//! behind a mutex (calls are short; SQLite serializes writers anyway), WAL so readers never
//! wait for the writer, and `synchronous = NORMAL`: WAL keeps every committed transaction
//! across a process crash (sqlite.org, "Write-Ahead Logging"; only a power loss may roll back
//! the last ones, and GitHub's redelivery and the job listing recover those).
//!
//! The methods are synchronous (tests read a live controller's file with them); the
//! [`Store`] implementation calls them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::sql::{self, for_sqlite};
use super::{
    Columns, Decision, JobRecord, Launch, LaunchSlot, LaunchState, Millis, Recorded, Store, Term,
    launch_from,
};
use crate::error::ControllerError;

/// The schema, one step per version; `PRAGMA user_version` says how many ran. A step is
/// never edited once released: a change is a new step. PostgreSQL's steps
/// (`postgres::MIGRATIONS`) make the same tables.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 3: deliveries claimed by the decision pass that read them (the decision latency, and
    // the work queue of replicas on PostgreSQL).
    "ALTER TABLE deliveries ADD COLUMN decided_at INTEGER;
    UPDATE deliveries SET decided_at = received_at;
    CREATE INDEX deliveries_undecided ON deliveries (received_at) WHERE decided_at IS NULL;",
];

/// The state in a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, ControllerError> {
        let name = path.display().to_string();
        let fail = |message: String| ControllerError::Store {
            path: name.clone(),
            message,
        };
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| fail(e.to_string()))?;
        migrate(&conn).map_err(fail)?;
        Ok(SqliteStore {
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

    /// See [`Store::record_delivery`].
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
                &for_sqlite(sql::INSERT_DELIVERY),
                params![
                    id,
                    job.map(JobRecord::id_i64),
                    job.map(|j| j.status.word()),
                    now,
                    job.is_none().then_some(now)
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

    /// See [`Store::record_listing`].
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
                .query_row(&for_sqlite(sql::JOB_STATUS), [job.id_i64()], |r| r.get(0))
                .optional()
                .map_err(|e| self.fail(&e))?;
            if known.is_none() {
                upsert_job(&tx, job, now).map_err(|e| self.fail(&e))?;
                new += 1;
            } else {
                tx.execute(
                    &for_sqlite(sql::REQUEUE_STALE_JOB),
                    params![job.id_i64(), now],
                )
                .map_err(|e| self.fail(&e))?;
            }
        }
        let listed: Vec<i64> = jobs.iter().map(JobRecord::id_i64).collect();
        let candidates: Vec<i64> = {
            let mut statement = tx
                .prepare(&for_sqlite(sql::QUEUED_BEFORE_LISTING))
                .map_err(|e| self.fail(&e))?;
            statement
                .query_map(params![repository, listed_since], |r| r.get(0))
                .map_err(|e| self.fail(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.fail(&e))?
        };
        let mut stale = 0;
        for id in candidates.into_iter().filter(|id| !listed.contains(id)) {
            stale += tx
                .execute(&for_sqlite(sql::MARK_STALE), params![id, now])
                .map_err(|e| self.fail(&e))?;
        }
        tx.commit().map_err(|e| self.fail(&e))?;
        Ok((new, stale))
    }

    /// See [`Store::expire_jobs`].
    pub fn expire_jobs(&self, before: Millis, now: Millis) -> Result<usize, ControllerError> {
        self.execute(sql::EXPIRE_JOBS, params![before, now])
    }

    /// See [`Store::queued_by_pool`].
    pub fn queued_by_pool(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(sql::QUEUED_BY_POOL)
    }

    /// See [`Store::jobs_by_status`].
    pub fn jobs_by_status(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(sql::JOBS_BY_STATUS)
    }

    /// The rows of `sql`, a `(name, count)` query, as a map.
    fn counts(&self, sql: &str) -> Result<BTreeMap<String, usize>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(&for_sqlite(sql))
            .map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, count(r.get(1)?))))
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    fn execute(
        &self,
        sql: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, ControllerError> {
        self.lock()
            .prepare_cached(&for_sqlite(sql))
            .and_then(|mut s| s.execute(values))
            .map_err(|e| self.fail(&e))
    }

    /// See [`Store::deliveries`].
    pub fn deliveries(&self) -> Result<usize, ControllerError> {
        self.lock()
            .query_row(sql::COUNT_DELIVERIES, [], |r| r.get(0))
            .map(count)
            .map_err(|e| self.fail(&e))
    }

    /// See [`Store::claim_deliveries`].
    pub fn claim_deliveries(&self, now: Millis) -> Result<Vec<Millis>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "UPDATE deliveries SET decided_at = ?1 WHERE decided_at IS NULL RETURNING received_at",
            )
            .map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map([now], |r| r.get(0))
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    /// See [`Store::new_launch`].
    pub fn new_launch(
        &self,
        label: &str,
        pool: &str,
        runners: usize,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        self.execute(
            "INSERT INTO launches (label, pool, state, runners, price_cents_per_hour, started_at) \
             VALUES ($1, $2, 'launching', $3, $4, $5)",
            params![
                label,
                pool,
                i64::try_from(runners).unwrap_or(1),
                price_cents_per_hour,
                now
            ],
        )
        .map(drop)
    }

    /// See [`Store::launch_running`].
    pub fn launch_running(
        &self,
        label: &str,
        machine: &str,
        instance_type: &str,
        region: &str,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        self.execute(
            sql::LAUNCH_RUNNING,
            params![
                label,
                machine,
                instance_type,
                region,
                price_cents_per_hour,
                now
            ],
        )
        .map(drop)
    }

    /// See [`Store::end_launch`].
    pub fn end_launch(
        &self,
        label: &str,
        state: LaunchState,
        reason: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        let ended = (state != LaunchState::Ending).then_some(now);
        self.execute(sql::END_LAUNCH, params![label, state.word(), reason, ended])
            .map(drop)
    }

    /// See [`Store::set_usage`].
    pub fn set_usage(
        &self,
        label: &str,
        runners_used: usize,
        idle_since: Option<Millis>,
    ) -> Result<(), ControllerError> {
        self.execute(
            sql::SET_USAGE,
            params![label, i64::try_from(runners_used).unwrap_or(0), idle_since],
        )
        .map(drop)
    }

    /// See [`Store::live_launches`].
    pub fn live_launches(&self) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(sql::LIVE, &[])
    }

    /// See [`Store::launch`].
    pub fn launch(&self, label: &str) -> Result<Option<Launch>, ControllerError> {
        Ok(self
            .launches_where(sql::BY_LABEL, &[&label])?
            .into_iter()
            .next())
    }

    fn launches_where(
        &self,
        filter: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Launch>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(&for_sqlite(&sql::launches_where(filter)))
            .map_err(|e| self.fail(&e))?;
        let mut rows = statement.query(values).map_err(|e| self.fail(&e))?;
        let mut launches = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.fail(&e))? {
            launches.push(launch_from(row).map_err(|message| ControllerError::Store {
                path: self.path.clone(),
                message,
            })?);
        }
        Ok(launches)
    }

    /// See [`Store::finished_runners`].
    pub fn finished_runners(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(&sql::finished_runners())
    }

    /// See [`Store::launch_state`].
    pub fn launch_state(&self, label: &str) -> Result<Option<LaunchState>, ControllerError> {
        self.lock()
            .query_row(&for_sqlite(sql::LAUNCH_STATE), [label], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map(|state| state.as_deref().map(LaunchState::from_word))
            .map_err(|e| self.fail(&e))
    }

    /// See [`Store::launch_totals`].
    pub fn launch_totals(&self) -> Result<BTreeMap<String, (usize, usize)>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(sql::LAUNCH_TOTALS)
            .map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, (count(r.get(1)?), count(r.get(2)?))))
            })
            .map_err(|e| self.fail(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(&e))
    }

    /// Every launch ever made, with what it cost up to `now`.
    pub fn total_cost_usd(&self, now: Millis) -> Result<f64, ControllerError> {
        Ok(self
            .launches_where(sql::PRICED, &[])?
            .iter()
            .map(|l| l.cost_usd(now))
            .sum())
    }

    /// See [`Store::decide`].
    pub fn decide(
        &self,
        pool: Option<&str>,
        text: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        tracing::info!(pool, "{text}");
        self.execute(sql::INSERT_DECISION, params![now, pool, text])
            .map(drop)
    }

    /// See [`Store::recent_decisions`].
    pub fn recent_decisions(&self, count: usize) -> Result<Vec<Decision>, ControllerError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(&for_sqlite(sql::RECENT_DECISIONS))
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

    /// See [`Store::decisions_containing`].
    pub fn decisions_containing(&self, text: &str) -> Result<usize, ControllerError> {
        self.lock()
            .query_row(
                "SELECT COUNT(*) FROM decisions WHERE instr(text, ?1) > 0",
                [text],
                |r| r.get(0),
            )
            .map(count)
            .map_err(|e| self.fail(&e))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.path.clone()
    }

    async fn check(&self) -> Result<(), ControllerError> {
        self.schema_version().map(drop)
    }

    async fn record_delivery(
        &self,
        id: &str,
        job: Option<&JobRecord<'_>>,
        now: Millis,
    ) -> Result<Recorded, ControllerError> {
        SqliteStore::record_delivery(self, id, job, now)
    }

    async fn record_listing(
        &self,
        repository: &str,
        jobs: &[JobRecord<'_>],
        listed_since: Millis,
        now: Millis,
    ) -> Result<(usize, usize), ControllerError> {
        SqliteStore::record_listing(self, repository, jobs, listed_since, now)
    }

    async fn expire_jobs(&self, before: Millis, now: Millis) -> Result<usize, ControllerError> {
        SqliteStore::expire_jobs(self, before, now)
    }

    async fn queued_by_pool(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        SqliteStore::queued_by_pool(self)
    }

    async fn jobs_by_status(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        SqliteStore::jobs_by_status(self)
    }

    async fn deliveries(&self) -> Result<usize, ControllerError> {
        SqliteStore::deliveries(self)
    }

    async fn claim_deliveries(&self, now: Millis) -> Result<Vec<Millis>, ControllerError> {
        SqliteStore::claim_deliveries(self, now)
    }

    async fn new_launch(
        &self,
        label: &str,
        pool: &str,
        runners: usize,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        SqliteStore::new_launch(self, label, pool, runners, price_cents_per_hour, now)
    }

    async fn launch_running(
        &self,
        label: &str,
        machine: &str,
        instance_type: &str,
        region: &str,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        SqliteStore::launch_running(
            self,
            label,
            machine,
            instance_type,
            region,
            price_cents_per_hour,
            now,
        )
    }

    async fn end_launch(
        &self,
        label: &str,
        state: LaunchState,
        reason: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        SqliteStore::end_launch(self, label, state, reason, now)
    }

    async fn set_usage(
        &self,
        label: &str,
        runners_used: usize,
        idle_since: Option<Millis>,
    ) -> Result<(), ControllerError> {
        SqliteStore::set_usage(self, label, runners_used, idle_since)
    }

    async fn live_launches(&self) -> Result<Vec<Launch>, ControllerError> {
        SqliteStore::live_launches(self)
    }

    async fn launch(&self, label: &str) -> Result<Option<Launch>, ControllerError> {
        SqliteStore::launch(self, label)
    }

    async fn launches_since(&self, since: Millis) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(sql::SINCE_OR_LIVE, &[&since])
    }

    async fn priced_launches(&self) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(sql::PRICED, &[])
    }

    async fn finished_runners(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        SqliteStore::finished_runners(self)
    }

    async fn launch_state(&self, label: &str) -> Result<Option<LaunchState>, ControllerError> {
        SqliteStore::launch_state(self, label)
    }

    async fn launch_totals(&self) -> Result<BTreeMap<String, (usize, usize)>, ControllerError> {
        SqliteStore::launch_totals(self)
    }

    async fn decide(
        &self,
        pool: Option<&str>,
        text: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        SqliteStore::decide(self, pool, text, now)
    }

    async fn recent_decisions(&self, count: usize) -> Result<Vec<Decision>, ControllerError> {
        SqliteStore::recent_decisions(self, count)
    }

    async fn decisions_containing(&self, text: &str) -> Result<usize, ControllerError> {
        SqliteStore::decisions_containing(self, text)
    }

    /// One process owns the file: it always leads.
    async fn lead(&self, _replica: &str) -> Result<Option<Term>, ControllerError> {
        Ok(Some(Term { epoch: 1 }))
    }

    async fn renew(&self) -> Result<bool, ControllerError> {
        Ok(true)
    }

    async fn resign(&self) {}

    async fn reserve_launch(&self, _interval: Duration) -> Result<LaunchSlot, ControllerError> {
        Ok(LaunchSlot {
            at: None,
            wait: Duration::ZERO,
        })
    }
}

/// Inserts a job, or moves a known one forward (never back).
fn upsert_job(conn: &Connection, job: &JobRecord<'_>, now: Millis) -> rusqlite::Result<()> {
    conn.prepare_cached(&for_sqlite(sql::UPSERT_JOB))?
        .execute(params![
            job.id_i64(),
            job.run_id_i64(),
            job.repository,
            job.name,
            job.labels_json(),
            job.pool,
            job.status.word(),
            job.runner_name,
            now
        ])
        .map(drop)
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
    use crate::store::JobStatus;

    fn temp_store() -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("lgc-store-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        (SqliteStore::open(&path).unwrap(), dir)
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
        assert_eq!(store.schema_version().unwrap(), 3);
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
        let store = SqliteStore::open(&dir.join("state.db")).unwrap();
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
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), 3);
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
        let error = SqliteStore::open(&dir.join("state.db"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("newer than this controller's 3"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
