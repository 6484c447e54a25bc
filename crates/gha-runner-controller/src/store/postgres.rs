//! The state in PostgreSQL, shared by several replicas of the controller.
//!
//! - Deliveries are deduplicated by their primary key (`ON CONFLICT DO NOTHING`), and a job's
//!   events are merged by one upsert, so two replicas recording one job at once cannot both
//!   insert it.
//! - Decision passes claim the deliveries they read with `FOR UPDATE SKIP LOCKED`: a pass never
//!   waits for rows another holds.
//! - One replica leads the reconcile loops: it holds a session advisory lock
//!   (`pg_try_advisory_lock`, released by the server when its session ends — a killed process's
//!   socket closes at once) and renews a lease row every second. A leader that cannot renew
//!   for [`STEP_DOWN_AFTER`] stops its loops; a candidate that finds the lease older than
//!   [`TAKE_OVER_AFTER`] ends the silent holder's session (`pg_terminate_backend`: a holder cut
//!   off by the network keeps its session open until TCP gives up, minutes later) and takes the
//!   lock. Each term has an epoch; a launch is recorded only under the current epoch, so a
//!   deposed leader cannot decide one.
//! - Launches are paced account-wide: each takes the next slot of a row in the database, at
//!   least the provider's interval after the last, whichever replica launches.
//!
//! PostgreSQL documentation: "Advisory Locks" (explicit-locking.html), "The Locking Clause"
//! (sql-select.html, `SKIP LOCKED`), `pg_terminate_backend` (functions-admin.html), `NOTIFY`
//! (sql-notify.html: delivered at commit, to listening sessions).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use tokio::sync::{Mutex, MutexGuard, Notify};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};

use super::sql;
use super::{
    Columns, Decision, JobRecord, Launch, LaunchSlot, LaunchState, Millis, Recorded, Store, Term,
    launch_from,
};
use crate::error::ControllerError;

/// The steps of [`super::sqlite::MIGRATIONS`] in PostgreSQL's words (the same tables and
/// columns), then what only a shared store needs: the lease and the launch pacing row.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema. Labels and runner names compare bytewise (`-` before `.`) for the
    // index range that finds a launch's jobs.
    r#"CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        job_id BIGINT,
        action TEXT,
        received_at BIGINT NOT NULL
    );
    CREATE TABLE jobs (
        id BIGINT PRIMARY KEY,
        run_id BIGINT NOT NULL,
        repository TEXT NOT NULL,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        pool TEXT NOT NULL,
        status TEXT NOT NULL,
        runner_name TEXT COLLATE "C",
        queued_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX jobs_by_status ON jobs (status, pool);
    CREATE TABLE launches (
        label TEXT COLLATE "C" PRIMARY KEY,
        pool TEXT NOT NULL,
        state TEXT NOT NULL,
        runners BIGINT NOT NULL,
        machine_id TEXT,
        instance_type TEXT,
        region TEXT,
        price_cents_per_hour BIGINT,
        started_at BIGINT NOT NULL,
        online_at BIGINT,
        idle_since BIGINT,
        ended_at BIGINT,
        runners_used BIGINT NOT NULL DEFAULT 0,
        reason TEXT
    );
    CREATE INDEX launches_by_state ON launches (state);
    CREATE TABLE decisions (
        seq BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        pool TEXT,
        text TEXT NOT NULL
    );"#,
    // 2: as SQLite's.
    "CREATE INDEX jobs_by_runner ON jobs (runner_name);",
    // 3: as SQLite's, and the lease and the pacing row.
    "ALTER TABLE deliveries ADD COLUMN decided_at BIGINT;
    UPDATE deliveries SET decided_at = received_at;
    CREATE INDEX deliveries_undecided ON deliveries (received_at) WHERE decided_at IS NULL;
    CREATE TABLE leadership (
        id INT PRIMARY KEY CHECK (id = 1),
        epoch BIGINT NOT NULL,
        holder TEXT,
        renewed_at BIGINT NOT NULL
    );
    INSERT INTO leadership VALUES (1, 0, NULL, 0);
    CREATE TABLE pacing (id INT PRIMARY KEY CHECK (id = 1), next_at BIGINT NOT NULL);
    INSERT INTO pacing VALUES (1, 0);",
];

/// The advisory lock the leader holds (`lambda` and 1).
const LEAD_LOCK: i64 = 0x6c61_6d62_6461_0001;
/// The advisory lock migrations run under, so replicas starting together migrate once.
const MIGRATE_LOCK: i64 = 0x6c61_6d62_6461_0002;
/// The channel a replica notifies when it records a pool's job.
const CHANNEL: &str = "lambda_gha_deliveries";
/// The database's clock, in milliseconds: every replica's lease is judged by one clock.
const DB_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// How long one statement may take before its connection is given up (a cut-off server
/// never answers).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Set on every session: statements and lock waits end before the client gives up on them,
/// and a transaction its client stopped talking in is ended by the server (PostgreSQL
/// documentation, "Client Connection Defaults").
const SESSION_LIMITS: &str = "-c statement_timeout=4000 -c lock_timeout=3000 \
    -c idle_in_transaction_session_timeout=10000";
/// How long a lease renewal may take.
const RENEW_TIMEOUT: Duration = Duration::from_secs(1);
/// A leader that has not renewed for this long stops leading. Shorter than
/// [`TAKE_OVER_AFTER`] by more than a renewal's timeout, so it has stopped before anyone
/// takes over.
pub const STEP_DOWN_AFTER: Duration = Duration::from_secs(3);
/// A lease not renewed for this long (by the database's clock) is taken over.
pub const TAKE_OVER_AFTER: Duration = Duration::from_secs(6);
/// Connections each replica keeps.
const CONNECTIONS: usize = 4;

/// The leader's own session: it holds the advisory lock and listens for deliveries.
struct Leading {
    client: Client,
    epoch: i64,
}

/// The state in PostgreSQL.
pub struct PgStore {
    config: tokio_postgres::Config,
    described: String,
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    leading: Mutex<Option<Leading>>,
    /// The current term's epoch, 0 when not leading (read without waiting on a renewal).
    epoch: AtomicI64,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.described)
            .finish_non_exhaustive()
    }
}

impl Columns for Row {
    fn text(&self, i: usize) -> Result<String, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
}

/// What failed: the server's error, or no answer in time.
enum Failure {
    Postgres(tokio_postgres::Error),
    TimedOut,
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                None => match std::error::Error::source(e) {
                    Some(cause) => write!(f, "{e}: {cause}"),
                    None => write!(f, "{e}"),
                },
            },
            Failure::TimedOut => f.write_str("no answer in time"),
            Failure::Refused(why) => f.write_str(why),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Postgres(e)
    }
}

async fn timed<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(Failure::Postgres),
        Err(_) => Err(Failure::TimedOut),
    }
}

fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(row: &Row, i: usize) -> Result<usize, String> {
    row.try_get::<_, i64>(i)
        .map(|n| usize::try_from(n).unwrap_or(0))
        .map_err(|e| e.to_string())
}

impl PgStore {
    /// Connects to `url` (`password`: `PGPASSWORD`) and brings the schema up to date.
    pub async fn connect(
        url: &str,
        password: Option<&secrecy::SecretString>,
    ) -> Result<PgStore, ControllerError> {
        let fail = |message: String| ControllerError::Store {
            path: url.to_owned(),
            message,
        };
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| fail(format!("{e}")))?;
        if let Some(password) = password {
            config.password(password.expose_secret());
        }
        // The server's own limits too: a replica cut off mid-transaction leaves its session
        // open (no FIN crosses a partition), holding row locks every other replica would wait
        // on; the server ends such a transaction, and no statement waits on a lock for long.
        config
            .application_name("lambda-gha serve")
            .connect_timeout(STATEMENT_TIMEOUT)
            .options(SESSION_LIMITS);
        let store = PgStore {
            config,
            described: url.to_owned(),
            slots: (0..CONNECTIONS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            leading: Mutex::new(None),
            epoch: AtomicI64::new(0),
            wake: Arc::new(Notify::new()),
        };
        store.migrate().await.map_err(|e| fail(e.to_string()))?;
        Ok(store)
    }

    fn fail(&self, failure: &Failure) -> ControllerError {
        ControllerError::Store {
            path: self.described.clone(),
            message: failure.to_string(),
        }
    }

    /// A new session; its messages are read by a task of its own, which wakes the leader on
    /// a notification.
    async fn session(&self) -> Result<Client, Failure> {
        let (client, mut connection) = timed(STATEMENT_TIMEOUT, self.config.connect(NoTls)).await?;
        let wake = self.wake.clone();
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Ok(client)
    }

    /// A pooled connection, connected when it is not (or was given up).
    async fn slot(&self) -> Result<MutexGuard<'_, Option<Client>>, Failure> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let free = (0..self.slots.len())
            .find_map(|i| self.slots[(start + i) % self.slots.len()].try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => self.slots[start % self.slots.len()].lock().await,
        };
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.session().await?);
        }
        Ok(slot)
    }

    /// Gives a connection up after a failure that may have left it unusable.
    fn settle<T>(slot: &mut Option<Client>, result: &Result<T, Failure>) {
        if let Err(Failure::TimedOut) = result {
            *slot = None;
        }
    }

    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ControllerError> {
        let mut slot = self.slot().await.map_err(|e| self.fail(&e))?;
        let result = match slot.as_ref() {
            Some(client) => timed(STATEMENT_TIMEOUT, client.query(statement, params)).await,
            None => Err(Failure::TimedOut),
        };
        Self::settle(&mut slot, &result);
        result.map_err(|e| self.fail(&e))
    }

    async fn execute(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, ControllerError> {
        let mut slot = self.slot().await.map_err(|e| self.fail(&e))?;
        let result = match slot.as_ref() {
            Some(client) => timed(STATEMENT_TIMEOUT, client.execute(statement, params)).await,
            None => Err(Failure::TimedOut),
        };
        Self::settle(&mut slot, &result);
        result.map_err(|e| self.fail(&e))
    }

    fn decode<T>(&self, result: Result<T, String>) -> Result<T, ControllerError> {
        result.map_err(|message| ControllerError::Store {
            path: self.described.clone(),
            message,
        })
    }

    async fn counts(&self, statement: &str) -> Result<BTreeMap<String, usize>, ControllerError> {
        let rows = self.query(statement, &[]).await?;
        self.decode(
            rows.iter()
                .map(|r| Ok((r.text(0)?, count(r, 1)?)))
                .collect(),
        )
    }

    async fn launches_where(
        &self,
        filter: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Launch>, ControllerError> {
        let rows = self.query(&sql::launches_where(filter), params).await?;
        self.decode(rows.iter().map(launch_from).collect())
    }

    /// The schema version.
    pub async fn schema_version(&self) -> Result<i64, ControllerError> {
        let rows = self
            .query("SELECT version FROM lambda_gha_schema", &[])
            .await?;
        self.decode(rows.first().map_or(Ok(0), |r| r.int(0)))
    }

    async fn migrate(&self) -> Result<(), Failure> {
        let mut client = self.session().await?;
        let tx = timed(STATEMENT_TIMEOUT, client.transaction()).await?;
        timed(
            STATEMENT_TIMEOUT,
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK]),
        )
        .await?;
        timed(
            STATEMENT_TIMEOUT,
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS lambda_gha_schema (version BIGINT NOT NULL)",
            ),
        )
        .await?;
        let version: i64 = timed(
            STATEMENT_TIMEOUT,
            tx.query_opt("SELECT version FROM lambda_gha_schema", &[]),
        )
        .await?
        .map_or(0, |r| r.get(0));
        let known = int(MIGRATIONS.len());
        if version > known {
            return Err(Failure::Refused(format!(
                "its schema is version {version}, newer than this controller's {known}: run the newer lambda-gha on every replica"
            )));
        }
        for (i, step) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            timed(STATEMENT_TIMEOUT, tx.batch_execute(step)).await?;
            let to = int(i + 1);
            timed(
                STATEMENT_TIMEOUT,
                tx.batch_execute(&format!(
                    "DELETE FROM lambda_gha_schema; INSERT INTO lambda_gha_schema VALUES ({to})"
                )),
            )
            .await?;
        }
        timed(STATEMENT_TIMEOUT, tx.commit()).await?;
        Ok(())
    }
}

/// The values of [`sql::UPSERT_JOB`], owned while its parameters borrow them.
struct JobValues<'a, 'j> {
    job: &'a JobRecord<'j>,
    id: i64,
    run: i64,
    labels: String,
    status: &'static str,
}

impl<'a, 'j> JobValues<'a, 'j> {
    fn of(job: &'a JobRecord<'j>) -> Self {
        JobValues {
            job,
            id: job.id_i64(),
            run: job.run_id_i64(),
            labels: job.labels_json(),
            status: job.status.word(),
        }
    }

    fn params<'s>(&'s self, now: &'s Millis) -> [&'s (dyn ToSql + Sync); 9] {
        [
            &self.id,
            &self.run,
            &self.job.repository,
            &self.job.name,
            &self.labels,
            &self.job.pool,
            &self.status,
            &self.job.runner_name,
            now,
        ]
    }
}

impl PgStore {
    async fn record_delivery_in(
        client: &mut Client,
        id: &str,
        job: Option<&JobRecord<'_>>,
        now: Millis,
    ) -> Result<Recorded, Failure> {
        let tx = timed(STATEMENT_TIMEOUT, client.transaction()).await?;
        let job_id = job.map(JobRecord::id_i64);
        let action = job.map(|j| j.status.word());
        let decided = job.is_none().then_some(now);
        let inserted = timed(
            STATEMENT_TIMEOUT,
            tx.execute(
                sql::INSERT_DELIVERY,
                &[&id, &job_id, &action, &now, &decided],
            ),
        )
        .await?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        if let Some(job) = job {
            let values = JobValues::of(job);
            timed(
                STATEMENT_TIMEOUT,
                tx.execute(sql::UPSERT_JOB, &values.params(&now)),
            )
            .await?;
            // Delivered at commit to the leader's session, which decides at once.
            timed(
                STATEMENT_TIMEOUT,
                tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]),
            )
            .await?;
        }
        timed(STATEMENT_TIMEOUT, tx.commit()).await?;
        Ok(Recorded::New)
    }

    async fn record_listing_in(
        client: &mut Client,
        repository: &str,
        jobs: &[JobRecord<'_>],
        listed_since: Millis,
        now: Millis,
    ) -> Result<(usize, usize), Failure> {
        let tx = timed(STATEMENT_TIMEOUT, client.transaction()).await?;
        let mut new = 0;
        for job in jobs {
            let id = job.id_i64();
            let known = timed(STATEMENT_TIMEOUT, tx.query_opt(sql::JOB_STATUS, &[&id])).await?;
            if known.is_none() {
                let values = JobValues::of(job);
                new += timed(
                    STATEMENT_TIMEOUT,
                    tx.execute(sql::UPSERT_JOB, &values.params(&now)),
                )
                .await?;
            } else {
                timed(
                    STATEMENT_TIMEOUT,
                    tx.execute(sql::REQUEUE_STALE_JOB, &[&id, &now]),
                )
                .await?;
            }
        }
        let listed: Vec<i64> = jobs.iter().map(JobRecord::id_i64).collect();
        let candidates = timed(
            STATEMENT_TIMEOUT,
            tx.query(sql::QUEUED_BEFORE_LISTING, &[&repository, &listed_since]),
        )
        .await?;
        let mut stale = 0;
        for id in candidates
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .filter(|id| !listed.contains(id))
        {
            stale += timed(STATEMENT_TIMEOUT, tx.execute(sql::MARK_STALE, &[&id, &now])).await?;
        }
        timed(STATEMENT_TIMEOUT, tx.commit()).await?;
        Ok((
            usize::try_from(new).unwrap_or(0),
            usize::try_from(stale).unwrap_or(0),
        ))
    }

    /// Ends the session that holds the leader's lock when its lease is older than
    /// [`TAKE_OVER_AFTER`]: its holder is dead or cut off, and the server would keep the lock
    /// until TCP gives up on it.
    async fn end_silent_leader(&self) -> Result<(), ControllerError> {
        let stale = format!(
            "SELECT pg_terminate_backend(locks.pid), leadership.holder FROM pg_locks locks, leadership
             WHERE locks.locktype = 'advisory' AND locks.granted
               AND locks.classid = ($1::BIGINT >> 32)::OID AND locks.objid = ($1::BIGINT & 4294967295)::OID
               AND locks.objsubid = 1 AND leadership.id = 1 AND {DB_NOW} - leadership.renewed_at > $2::BIGINT"
        );
        let after = i64::try_from(TAKE_OVER_AFTER.as_millis()).unwrap_or(i64::MAX);
        for row in self.query(&stale, &[&LEAD_LOCK, &after]).await? {
            let holder: Option<String> = row.try_get(1).ok().flatten();
            tracing::warn!(
                holder = holder.as_deref().unwrap_or("?"),
                "the leading replica has not renewed its lease in {}s: ended its session to take over",
                TAKE_OVER_AFTER.as_secs()
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    async fn check(&self) -> Result<(), ControllerError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    async fn record_delivery(
        &self,
        id: &str,
        job: Option<&JobRecord<'_>>,
        now: Millis,
    ) -> Result<Recorded, ControllerError> {
        let mut slot = self.slot().await.map_err(|e| self.fail(&e))?;
        let result = match slot.as_mut() {
            Some(client) => Self::record_delivery_in(client, id, job, now).await,
            None => Err(Failure::TimedOut),
        };
        Self::settle(&mut slot, &result);
        result.map_err(|e| self.fail(&e))
    }

    async fn record_listing(
        &self,
        repository: &str,
        jobs: &[JobRecord<'_>],
        listed_since: Millis,
        now: Millis,
    ) -> Result<(usize, usize), ControllerError> {
        let mut slot = self.slot().await.map_err(|e| self.fail(&e))?;
        let result = match slot.as_mut() {
            Some(client) => {
                Self::record_listing_in(client, repository, jobs, listed_since, now).await
            }
            None => Err(Failure::TimedOut),
        };
        Self::settle(&mut slot, &result);
        result.map_err(|e| self.fail(&e))
    }

    async fn expire_jobs(&self, before: Millis, now: Millis) -> Result<usize, ControllerError> {
        let n = self.execute(sql::EXPIRE_JOBS, &[&before, &now]).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn queued_by_pool(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(sql::QUEUED_BY_POOL).await
    }

    async fn jobs_by_status(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(sql::JOBS_BY_STATUS).await
    }

    async fn deliveries(&self) -> Result<usize, ControllerError> {
        let rows = self.query(sql::COUNT_DELIVERIES, &[]).await?;
        self.decode(rows.first().map_or(Ok(0), |r| count(r, 0)))
    }

    async fn claim_deliveries(&self, now: Millis) -> Result<Vec<Millis>, ControllerError> {
        let rows = self
            .query(
                "UPDATE deliveries SET decided_at = $1 WHERE id IN (
                     SELECT id FROM deliveries WHERE decided_at IS NULL FOR UPDATE SKIP LOCKED)
                 RETURNING received_at",
                &[&now],
            )
            .await?;
        self.decode(rows.iter().map(|r| r.int(0)).collect())
    }

    async fn new_launch(
        &self,
        label: &str,
        pool: &str,
        runners: usize,
        price_cents_per_hour: Option<u32>,
        now: Millis,
    ) -> Result<(), ControllerError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let price = price_cents_per_hour.map(i64::from);
        let inserted = self
            .execute(
                "INSERT INTO launches (label, pool, state, runners, price_cents_per_hour, started_at)
                 SELECT $1::TEXT, $2::TEXT, 'launching', $3::BIGINT, $4::BIGINT, $5::BIGINT
                 WHERE EXISTS (SELECT 1 FROM leadership WHERE id = 1 AND epoch = $6::BIGINT)",
                &[&label, &pool, &int(runners), &price, &now, &epoch],
            )
            .await?;
        if inserted == 0 {
            return Err(ControllerError::NotLeading { epoch });
        }
        Ok(())
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
        let price = price_cents_per_hour.map(i64::from);
        self.execute(
            sql::LAUNCH_RUNNING,
            &[&label, &machine, &instance_type, &region, &price, &now],
        )
        .await
        .map(drop)
    }

    async fn end_launch(
        &self,
        label: &str,
        state: LaunchState,
        reason: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        let ended = (state != LaunchState::Ending).then_some(now);
        self.execute(sql::END_LAUNCH, &[&label, &state.word(), &reason, &ended])
            .await
            .map(drop)
    }

    async fn set_usage(
        &self,
        label: &str,
        runners_used: usize,
        idle_since: Option<Millis>,
    ) -> Result<(), ControllerError> {
        self.execute(sql::SET_USAGE, &[&label, &int(runners_used), &idle_since])
            .await
            .map(drop)
    }

    async fn live_launches(&self) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(sql::LIVE, &[]).await
    }

    async fn launch(&self, label: &str) -> Result<Option<Launch>, ControllerError> {
        Ok(self
            .launches_where(sql::BY_LABEL, &[&label])
            .await?
            .into_iter()
            .next())
    }

    async fn launches_since(&self, since: Millis) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(sql::SINCE_OR_LIVE, &[&since]).await
    }

    async fn priced_launches(&self) -> Result<Vec<Launch>, ControllerError> {
        self.launches_where(sql::PRICED, &[]).await
    }

    async fn finished_runners(&self) -> Result<BTreeMap<String, usize>, ControllerError> {
        self.counts(&sql::finished_runners()).await
    }

    async fn launch_state(&self, label: &str) -> Result<Option<LaunchState>, ControllerError> {
        let rows = self.query(sql::LAUNCH_STATE, &[&label]).await?;
        self.decode(
            rows.first()
                .map(|r| r.text(0).map(|w| LaunchState::from_word(&w)))
                .transpose(),
        )
    }

    async fn launch_totals(&self) -> Result<BTreeMap<String, (usize, usize)>, ControllerError> {
        let rows = self.query(sql::LAUNCH_TOTALS, &[]).await?;
        self.decode(
            rows.iter()
                .map(|r| Ok((r.text(0)?, (count(r, 1)?, count(r, 2)?))))
                .collect(),
        )
    }

    async fn decide(
        &self,
        pool: Option<&str>,
        text: &str,
        now: Millis,
    ) -> Result<(), ControllerError> {
        tracing::info!(pool, "{text}");
        self.execute(sql::INSERT_DECISION, &[&now, &pool, &text])
            .await
            .map(drop)
    }

    async fn recent_decisions(&self, count: usize) -> Result<Vec<Decision>, ControllerError> {
        let rows = self.query(sql::RECENT_DECISIONS, &[&int(count)]).await?;
        self.decode(
            rows.iter()
                .map(|r| {
                    Ok(Decision {
                        at: r.int(0)?,
                        pool: r.opt_text(1)?,
                        text: r.text(2)?,
                    })
                })
                .collect(),
        )
    }

    async fn decisions_containing(&self, text: &str) -> Result<usize, ControllerError> {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM decisions WHERE strpos(text, $1) > 0",
                &[&text],
            )
            .await?;
        self.decode(rows.first().map_or(Ok(0), |r| count(r, 0)))
    }

    async fn lead(&self, replica: &str) -> Result<Option<Term>, ControllerError> {
        let mut leading = self.leading.lock().await;
        if let Some(current) = leading.as_ref() {
            return Ok(Some(Term {
                epoch: current.epoch,
            }));
        }
        let client = self.session().await.map_err(|e| self.fail(&e))?;
        let locked: bool = timed(
            STATEMENT_TIMEOUT,
            client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEAD_LOCK]),
        )
        .await
        .map_err(|e| self.fail(&e))?
        .get(0);
        if !locked {
            drop(client);
            self.end_silent_leader().await?;
            return Ok(None);
        }
        let begin = format!(
            "UPDATE leadership SET epoch = epoch + 1, holder = $1, renewed_at = {DB_NOW} WHERE id = 1 RETURNING epoch"
        );
        let epoch: i64 = timed(STATEMENT_TIMEOUT, async {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            client.query_one(&begin, &[&replica]).await
        })
        .await
        .map_err(|e| self.fail(&e))?
        .get(0);
        self.epoch.store(epoch, Ordering::Release);
        *leading = Some(Leading { client, epoch });
        Ok(Some(Term { epoch }))
    }

    async fn renew(&self) -> Result<bool, ControllerError> {
        let mut leading = self.leading.lock().await;
        let Some(current) = leading.as_ref() else {
            return Ok(false);
        };
        let renew =
            format!("UPDATE leadership SET renewed_at = {DB_NOW} WHERE id = 1 AND epoch = $1");
        match timed(
            RENEW_TIMEOUT,
            current.client.execute(&renew, &[&current.epoch]),
        )
        .await
        {
            Ok(1) => Ok(true),
            Ok(_) => {
                // Another replica took over (this one was silent too long): let the lock go.
                *leading = None;
                self.epoch.store(0, Ordering::Release);
                Ok(false)
            }
            Err(failure) => Err(self.fail(&failure)),
        }
    }

    async fn resign(&self) {
        // Closing the session releases its advisory lock.
        *self.leading.lock().await = None;
        self.epoch.store(0, Ordering::Release);
    }

    async fn reserve_launch(&self, interval: Duration) -> Result<LaunchSlot, ControllerError> {
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        // One clock for every replica: the database's.
        let reserve = format!(
            "WITH clock AS (SELECT {DB_NOW} AS now)
             UPDATE pacing SET next_at = GREATEST(pacing.next_at, clock.now) + $1
             FROM clock WHERE pacing.id = 1
             RETURNING pacing.next_at - $1, pacing.next_at - $1 - clock.now"
        );
        let rows = self.query(&reserve, &[&interval]).await?;
        let row = self.decode(
            rows.first()
                .ok_or_else(|| "the pacing row is missing".to_owned()),
        )?;
        let at = self.decode(row.int(0))?;
        let wait = self.decode(row.int(1))?;
        Ok(LaunchSlot {
            at: Some(at),
            wait: Duration::from_millis(u64::try_from(wait).unwrap_or(0)),
        })
    }

    fn wakeups(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }
}
