//! The statements both databases run, written once with PostgreSQL's `$n` parameters
//! (SQLite reads them as `?n`, [`for_sqlite`]). Where the dialects differ, each store keeps
//! its own.

/// `$n` → `?n`: SQLite numbers positional parameters `?n`.
pub(super) fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// The jobs whose runner is one of launch `label`'s (`<label>-<machine>-<runner>`), as an
/// index range: `-` sorts just before `.` (bytewise; PostgreSQL's columns say `COLLATE "C"`).
pub(super) const RUNNER_OF_LAUNCH: &str = "jobs.runner_name >= launches.label || '-' \
    AND jobs.runner_name < launches.label || '.'";

/// How far along a job is (`queued`, `waiting`, `stale`, `expired`: 0): an event never moves
/// it back (deliveries arrive out of order; a re-run is a new job id).
macro_rules! rank {
    ($status:literal) => {
        concat!(
            "(CASE ",
            $status,
            " WHEN 'in_progress' THEN 1 WHEN 'completed' THEN 2 ELSE 0 END)"
        )
    };
}

/// Inserts a job, or moves a known one forward — never back; a job not yet taken may go
/// between queued and waiting. One statement, so replicas recording events of one job at
/// once cannot both insert it. Parameters: id, run, repository, name, labels, pool, status,
/// runner, now.
pub(super) const UPSERT_JOB: &str = concat!(
    "INSERT INTO jobs (id, run_id, repository, name, labels, pool, status, runner_name, queued_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
     ON CONFLICT (id) DO UPDATE SET status = excluded.status,
         runner_name = COALESCE(excluded.runner_name, jobs.runner_name), updated_at = excluded.updated_at
     WHERE ",
    rank!("excluded.status"),
    " > ",
    rank!("jobs.status"),
    " OR (",
    rank!("excluded.status"),
    " = 0 AND ",
    rank!("jobs.status"),
    " = 0 AND excluded.status <> jobs.status AND excluded.status IN ('queued', 'waiting'))"
);

/// Parameters: id, job, action, received, decided (set at once when no pool's job is in it).
pub(super) const INSERT_DELIVERY: &str =
    "INSERT INTO deliveries (id, job_id, action, received_at, decided_at)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";

pub(super) const JOB_STATUS: &str = "SELECT status FROM jobs WHERE id = $1";

pub(super) const REQUEUE_STALE_JOB: &str =
    "UPDATE jobs SET status = 'queued', updated_at = $2 WHERE id = $1 AND status = 'stale'";

pub(super) const QUEUED_BEFORE_LISTING: &str =
    "SELECT id FROM jobs WHERE status = 'queued' AND repository = $1 AND updated_at < $2";

pub(super) const MARK_STALE: &str =
    "UPDATE jobs SET status = 'stale', updated_at = $2 WHERE id = $1 AND status = 'queued'";

pub(super) const EXPIRE_JOBS: &str = "UPDATE jobs SET status = 'expired', updated_at = $2 \
    WHERE status = 'queued' AND queued_at < $1";

pub(super) const QUEUED_BY_POOL: &str =
    "SELECT pool, COUNT(*) FROM jobs WHERE status = 'queued' GROUP BY pool";

pub(super) const JOBS_BY_STATUS: &str = "SELECT status, COUNT(*) FROM jobs GROUP BY status";

pub(super) const COUNT_DELIVERIES: &str = "SELECT COUNT(*) FROM deliveries";

pub(super) const LAUNCH_COLUMNS: &str = "label, pool, state, runners, machine_id, instance_type, \
    region, price_cents_per_hour, started_at, online_at, idle_since, ended_at, runners_used, reason";

/// Launches matching `filter`, each followed by how many jobs its runners took.
pub(super) fn launches_where(filter: &str) -> String {
    format!(
        "SELECT {LAUNCH_COLUMNS}, (SELECT COUNT(*) FROM jobs WHERE {RUNNER_OF_LAUNCH})
         FROM launches WHERE {filter} ORDER BY started_at, label"
    )
}

pub(super) const LIVE: &str = "state IN ('launching', 'running', 'ending')";
pub(super) const BY_LABEL: &str = "label = $1";
pub(super) const SINCE_OR_LIVE: &str =
    "started_at >= $1 OR state IN ('launching', 'running', 'ending')";
pub(super) const PRICED: &str = "price_cents_per_hour IS NOT NULL";

pub(super) const LAUNCH_RUNNING: &str = "UPDATE launches SET state = 'running', machine_id = $2, \
    instance_type = $3, region = $4, price_cents_per_hour = COALESCE($5, price_cents_per_hour), \
    online_at = $6, idle_since = $6 WHERE label = $1 AND state = 'launching'";

pub(super) const END_LAUNCH: &str = "UPDATE launches SET state = $2, reason = COALESCE(reason, $3), \
    ended_at = COALESCE($4, ended_at) WHERE label = $1 AND state IN ('launching', 'running', 'ending')";

pub(super) const SET_USAGE: &str = "UPDATE launches SET \
    runners_used = CASE WHEN runners_used > $2 THEN runners_used ELSE $2 END, idle_since = $3 \
    WHERE label = $1";

pub(super) fn finished_runners() -> String {
    format!(
        "SELECT launches.label, COUNT(jobs.id) FROM launches JOIN jobs
         ON jobs.status = 'completed' AND {RUNNER_OF_LAUNCH}
         WHERE launches.state IN ('launching', 'running', 'ending')
         GROUP BY launches.label"
    )
}

pub(super) const LAUNCH_STATE: &str = "SELECT state FROM launches WHERE label = $1";

pub(super) const LAUNCH_TOTALS: &str = "SELECT pool, COUNT(*), \
    SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) FROM launches GROUP BY pool";

pub(super) const INSERT_DECISION: &str =
    "INSERT INTO decisions (at, pool, text) VALUES ($1, $2, $3)";

pub(super) const RECENT_DECISIONS: &str =
    "SELECT at, pool, text FROM decisions ORDER BY seq DESC LIMIT $1";
