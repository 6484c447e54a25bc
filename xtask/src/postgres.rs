//! The PostgreSQL server the replica tests and the replica benchmark use: the one at
//! `DATABASE_URL` when it is set, otherwise a throwaway cluster in a temporary directory
//! (Debian's `postgresql` installed when missing), stopped and removed when the run ends.
//!
//! PostgreSQL refuses to run as root (postgres.c, "root execution of the PostgreSQL server
//! is not permitted"): as root, the cluster belongs to `nobody`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A server to test against; a cluster this run started is stopped when it is dropped.
pub(crate) struct Server {
    /// `postgres://…` of a database the tests may create databases from.
    pub(crate) url: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_nobody: bool,
}

/// The server at `DATABASE_URL`, or a throwaway cluster.
pub(crate) fn ensure() -> Result<Server> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        println!("==> PostgreSQL: the server at DATABASE_URL");
        return Ok(Server { url, cluster: None });
    }
    let bin = if let Some(bin) = server_binaries() {
        bin
    } else {
        crate::ensure_tools(&[("pg_ctlcluster", "postgresql")])?;
        server_binaries()
            .context("postgresql is installed but no initdb was found under /usr/lib/postgresql")?
    };
    let as_nobody = is_root();
    let dir = std::env::temp_dir().join(format!("lambda-gha-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cluster = Cluster {
        bin,
        dir,
        as_nobody,
    };
    if as_nobody {
        run(
            Command::new("chown").args(["nobody"]).arg(&cluster.dir),
            "chown",
        )?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let data = cluster.dir.join("data");
    run(
        cluster
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--pgdata",
            ])
            .arg(&data),
        "initdb",
    )?;
    // Durability is not what these tests measure: fsync off keeps a 2-core runner quick.
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off",
        cluster.dir.display()
    );
    run(
        cluster
            .command("pg_ctl")
            .args(["--wait", "--silent", "--pgdata"])
            .arg(&data)
            .arg("--log")
            .arg(cluster.dir.join("server.log"))
            .args(["--options", &options, "start"]),
        "pg_ctl start",
    )?;
    println!("==> PostgreSQL: a throwaway cluster on 127.0.0.1:{port}");
    Ok(Server {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        cluster: Some(cluster),
    })
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        if self.as_nobody {
            let mut command = Command::new("runuser");
            command.args(["-u", "nobody", "--"]).arg(binary);
            command.current_dir(&self.dir);
            command
        } else {
            Command::new(binary)
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let _ = cluster
                .command("pg_ctl")
                .args(["--silent", "--mode=immediate", "--pgdata"])
                .arg(cluster.dir.join("data"))
                .arg("stop")
                .status();
            let _ = std::fs::remove_dir_all(&cluster.dir);
        }
    }
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`, Debian's
/// layout), or `initdb` on the PATH.
fn server_binaries() -> Option<PathBuf> {
    let mut majors: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    majors.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    majors.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `cargo xtask postgres COMMAND…`: runs `COMMAND` with `DATABASE_URL` set to the server (a
/// throwaway cluster unless `DATABASE_URL` is set already), e.g. one test binary.
pub(crate) fn with_server(command: &[String]) -> Result<bool> {
    let Some((program, args)) = command.split_first() else {
        bail!("usage: cargo xtask postgres COMMAND [ARGS…]  (runs it with DATABASE_URL set)");
    };
    let server = ensure()?;
    let status = Command::new(program)
        .args(args)
        .env("DATABASE_URL", &server.url)
        .status()
        .with_context(|| format!("running {program}"))?;
    Ok(status.success())
}
