//! Several `lambda-gha serve` replicas sharing one PostgreSQL database, behind a load
//! balancer, against the Lambda simulator and the fake GitHub (the world of
//! [`crate::controller_rig`]). Each replica reaches the database through its own
//! [`CuttableLink`], so a test can cut one off as a network partition would, and each is a
//! child process, so a test can `kill -9` it.
//!
//! The balancer spreads deliveries round-robin and, like a load balancer that retries on
//! another upstream (nginx's `proxy_next_upstream`, an ALB's health checks), sends a delivery
//! a replica failed or did not answer within 2 s to the next one. GitHub itself sends a
//! delivery once (docs.github.com, "Handling failed webhook deliveries": no automatic
//! redelivery); the controller's job listing recovers what no replica took.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use gha_runner_controller::PgStore;
use lambda_cloud_sim::{Scenario, Sim};
use tokio::task::JoinHandle;

use crate::controller_rig::{World, free_port, serve_env};
use crate::postgres::{CuttableLink, TestDatabase};
use crate::{Deliveries, FakeGitHub, WebhookDelivery};

/// One replica.
pub struct Replica {
    /// Its base URL.
    pub url: String,
    link: CuttableLink,
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl Replica {
    /// What it wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Replicas, their database and their world.
pub struct ReplicaRig {
    /// The simulated Lambda Cloud.
    pub sim: Sim,
    /// The fake GitHub.
    pub github: FakeGitHub,
    /// The replicas, in start order.
    pub replicas: Vec<Replica>,
    /// The balancer's URL (GitHub's webhook points here).
    pub balancer_url: String,
    /// The webhook deliveries.
    pub deliveries: Deliveries,
    /// The secrets, named (canaries).
    pub canaries: Vec<(&'static str, String)>,
    database_url: String,
    dir: PathBuf,
    machines: JoinHandle<()>,
    balancer: JoinHandle<()>,
}

/// How a replica rig starts.
pub struct ReplicaOptions {
    /// How many replicas.
    pub replicas: usize,
    /// The `[[pool]]` sections.
    pub pools: String,
    /// The simulated cloud.
    pub scenario: Scenario,
    /// How webhooks are delivered.
    pub delivery: WebhookDelivery,
    /// How often the leader lists GitHub's queued jobs.
    pub poll_jobs_every: &'static str,
    /// The `lambda-gha` binary (default: the workspace's debug build).
    pub binary: Option<PathBuf>,
}

impl ReplicaRig {
    /// Starts the world, `options.replicas` replicas over `database`, and the balancer.
    pub async fn start(options: ReplicaOptions, database: &TestDatabase) -> ReplicaRig {
        let world = World::start(options.scenario).await;
        let dir = std::env::temp_dir().join(format!("lgc-replicas-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).expect("rig directory");
        let env = serve_env(&world.lambda_key, &world.github_token, &world.secret);
        let mut replicas = Vec::new();
        for i in 0..options.replicas {
            let link = CuttableLink::to(database.server_address()).await;
            let port = free_port();
            let file = dir.join(format!("replica-{i}.toml"));
            let config = world.controller_toml(
                port,
                &database.url_via(link.address),
                // Booting machines are described at this interval: 1 s keeps a burst's calls
                // under the simulator's request rate (1/s, scaled).
                ("1s", options.poll_jobs_every),
                &options.pools,
            );
            std::fs::write(&file, config).expect("controller.toml");
            let log = dir.join(format!("replica-{i}.log"));
            let binary = options
                .binary
                .clone()
                .unwrap_or_else(crate::lambda_gha_binary);
            let child = std::process::Command::new(binary)
                .args(["serve", "--config"])
                .arg(&file)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().cloned())
                // The launch slots each replica reserved, for [`ReplicaRig::launch_slots`].
                .env("RUST_LOG", "info,gha_runner_controller::pacing=debug")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).expect("replica log"))
                .spawn()
                .expect("lambda-gha serve");
            replicas.push(Replica {
                url: format!("http://127.0.0.1:{port}"),
                link,
                child: Some(child),
                log,
            });
        }
        for replica in &replicas {
            assert!(
                wait_healthy(&replica.url, Duration::from_secs(30)).await,
                "a replica did not answer /healthz: {}",
                replica.log()
            );
        }
        let (balancer_url, balancer) =
            balancer(replicas.iter().map(|r| r.url.clone()).collect()).await;
        let canaries = vec![
            ("the Lambda API key", world.lambda_key.clone()),
            ("the GitHub token", world.github_token.clone()),
            ("the webhook secret", world.secret.clone()),
        ];
        let deliveries = world.github.deliver_webhooks(
            &format!("{balancer_url}/webhook"),
            &world.secret,
            options.delivery,
        );
        ReplicaRig {
            sim: world.sim,
            github: world.github,
            replicas,
            balancer_url,
            deliveries,
            canaries,
            database_url: database.url.clone(),
            dir,
            machines: world.machines,
            balancer,
        }
    }

    /// The shared state, read directly (not through any replica's link).
    pub async fn store(&self) -> PgStore {
        PgStore::connect(&self.database_url, None)
            .await
            .expect("the database")
    }

    /// The replica leading now (its `/healthz` says so), if one does.
    pub async fn leader(&self) -> Option<usize> {
        for (i, replica) in self.replicas.iter().enumerate() {
            if replica.child.is_none() {
                continue;
            }
            if let Ok((200, body)) = crate::http_get(&format!("{}/healthz", replica.url)).await
                && body.contains("leading")
            {
                return Some(i);
            }
        }
        None
    }

    /// Waits up to `timeout` for a replica other than those in `not` to lead.
    pub async fn wait_for_leader(&self, not: &[usize], timeout: Duration) -> Option<usize> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(i) = self.leader().await
                && !not.contains(&i)
            {
                return Some(i);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Each running replica's process id.
    pub fn pids(&self) -> Vec<u32> {
        self.replicas
            .iter()
            .filter_map(|r| r.child.as_ref().map(std::process::Child::id))
            .collect()
    }

    /// `kill -9` replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// Cuts replica `i` off from the database (it keeps running and serving HTTP).
    pub fn cut_off(&self, i: usize) {
        self.replicas[i].link.cut();
    }

    /// Waits until `done` holds, checking every 100 ms, for at most `timeout`.
    pub async fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if done(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        done(self)
    }

    /// Whether every job of the fake GitHub finished.
    pub fn all_jobs_finished(&self) -> bool {
        crate::controller_rig::all_jobs_finished(&self.github)
    }

    /// Jobs that succeeded.
    pub fn jobs_succeeded(&self) -> usize {
        crate::controller_rig::jobs_succeeded(&self.github)
    }

    /// Every replica's log, named.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("replica {i}'s log"), r.log()))
            .collect()
    }

    /// Every launch slot a replica reserved from the shared pacing, as its log says (the
    /// sender's own decision, not when the launch arrived): the machine's name and the slot
    /// on the database's clock, in milliseconds, in slot order.
    pub fn launch_slots(&self) -> Vec<(String, i64)> {
        let mut slots: Vec<(String, i64)> = self
            .replicas
            .iter()
            .flat_map(|r| {
                let log = r.log();
                log.lines()
                    .filter(|line| line.contains("launch slot reserved"))
                    .filter_map(|line| {
                        // No colour: `lambda-gha` writes none to a file.
                        let field = |name: &str| {
                            line.split_whitespace()
                                .find_map(|word| word.strip_prefix(name))
                                .map(str::to_owned)
                        };
                        Some((field("machine=")?, field("slot_ms=")?.parse().ok()?))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        slots.sort_by_key(|(_, at)| *at);
        slots
    }

    /// Stops every replica (SIGTERM), the balancer and the world.
    pub async fn stop(mut self) {
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                // A replica cut off from its database may be stuck in a statement's timeout.
                let until = Instant::now() + Duration::from_secs(3);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.deliveries.stop();
        self.machines.abort();
        self.balancer.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait_healthy(url: &str, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if crate::http_get(&format!("{url}/healthz"))
            .await
            .is_ok_and(|(status, _)| status == 200)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The load balancer: `POST /webhook` to the healthy replicas in turn (`/healthz` checked
/// every 500 ms, 1 s to answer, as an ALB's health check), the next one on a 5xx, an error
/// or no answer in 2 s.
async fn balancer(upstreams: Vec<String>) -> (String, JoinHandle<()>) {
    struct Balancer {
        upstreams: Vec<String>,
        healthy: Vec<AtomicBool>,
        next: AtomicUsize,
    }
    async fn forward(
        axum::extract::State(balancer): axum::extract::State<Arc<Balancer>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let names = [
            "content-type",
            "x-github-event",
            "x-github-delivery",
            "x-hub-signature-256",
        ];
        let pairs: Vec<(&str, String)> = names
            .iter()
            .filter_map(|n| Some((*n, headers.get(*n)?.to_str().ok()?.to_owned())))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let first = balancer.next.fetch_add(1, Ordering::Relaxed);
        let count = balancer.upstreams.len();
        let healthy: Vec<usize> = (0..count)
            .map(|k| (first + k) % count)
            .filter(|&i| balancer.healthy[i].load(Ordering::Relaxed))
            .collect();
        // None healthy: try them all, as a balancer with every target failing does.
        let order = if healthy.is_empty() {
            (0..count).map(|k| (first + k) % count).collect()
        } else {
            healthy
        };
        for i in order {
            let upstream = &balancer.upstreams[i];
            let sent = tokio::time::timeout(
                Duration::from_secs(2),
                github_fake::post(&format!("{upstream}/webhook"), &pairs, &body),
            )
            .await;
            if let Ok(Ok((status, text))) = sent
                && status < 500
            {
                return (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), text);
            }
        }
        (StatusCode::BAD_GATEWAY, "no replica took it".to_owned())
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let state = Arc::new(Balancer {
        healthy: upstreams.iter().map(|_| AtomicBool::new(true)).collect(),
        upstreams,
        next: AtomicUsize::new(0),
    });
    let checks = {
        let state = state.clone();
        async move {
            loop {
                for (i, upstream) in state.upstreams.iter().enumerate() {
                    let answer = tokio::time::timeout(
                        Duration::from_secs(1),
                        crate::http_get(&format!("{upstream}/healthz")),
                    )
                    .await;
                    let up = matches!(answer, Ok(Ok((200, _))));
                    state.healthy[i].store(up, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let router = axum::Router::new()
        .route("/webhook", axum::routing::post(forward))
        .with_state(state);
    // One task: aborting it stops the health checks too.
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = axum::serve(listener, router) => {}
            () = checks => {}
        }
    });
    (format!("http://{address}"), task)
}
