//! `cargo xtask bench transfer`: uploading a project to a machine over SSH, ours against the
//! reference tool's way (`scp -r`) and SkyPilot's (`rsync -a`), all to the same loopback
//! `sshd` in the same run, then an incremental re-upload after 1% of the files change.
//!
//! The tree: 10,000 files, ~300 MB: 9,990 source-like text files (1-20 KB) and ten large ones
//! (five of random bytes, like weights; five of numbers, like a CSV dataset).
//! Targets: ≥ 5× faster than `scp -r`; first upload and re-upload no slower than rsync.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::project::Project;
use lambda_gha_cli::transport::{OpenSsh, Transport};
use lambda_gha_tests::{Sshd, SshdOptions};

const SMALL_FILES: usize = 9_990;
/// Each measurement is the best of this many.
const ROUNDS: usize = 2;
const LARGE_FILE: usize = 20 << 20;
const WORDS: &[&str] = &[
    "fn",
    "let",
    "self",
    "tensor",
    "model",
    "batch",
    "loss",
    "grad",
    "import",
    "return",
    "def",
    "class",
    "layer",
    "epoch",
    "optimizer",
    "config",
    "weight",
    "bias",
    "forward",
    "data",
];

fn text(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 16);
    while out.len() < size {
        out.extend_from_slice(WORDS[fastrand::usize(..WORDS.len())].as_bytes());
        out.push(if fastrand::u8(..8) == 0 { b'\n' } else { b' ' });
    }
    out.truncate(size);
    out
}

fn numbers(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    while out.len() < size {
        out.extend_from_slice(
            format!("{:.6},{:.6}\n", fastrand::f64(), fastrand::f64() * 100.0).as_bytes(),
        );
    }
    out.truncate(size);
    out
}

fn make_tree(root: &Path) -> u64 {
    let mut bytes = 0u64;
    for i in 0..SMALL_FILES {
        let path = root.join(format!("src/pkg{}/mod{}/file{i}.py", i % 20, i % 7));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = text(1024 + fastrand::usize(..19 * 1024));
        bytes += body.len() as u64;
        std::fs::write(path, body).unwrap();
    }
    std::fs::create_dir_all(root.join("data")).unwrap();
    for i in 0..5 {
        let noise: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
            .take(LARGE_FILE)
            .collect();
        std::fs::write(root.join(format!("data/weights{i}.bin")), &noise).unwrap();
        let table = numbers(LARGE_FILE);
        std::fs::write(root.join(format!("data/table{i}.csv")), &table).unwrap();
        bytes += (noise.len() + table.len()) as u64;
    }
    bytes
}

/// Rewrites 1% of the small files (new content and size; their mtimes move on).
fn change_one_percent(root: &Path) -> usize {
    let mut changed = 0;
    for i in (0..SMALL_FILES).step_by(100) {
        let path = root.join(format!("src/pkg{}/mod{}/file{i}.py", i % 20, i % 7));
        let mut body = std::fs::read(&path).unwrap();
        body.extend_from_slice(b"\n# changed\n");
        std::fs::write(path, body).unwrap();
        changed += 1;
    }
    changed
}

fn timed(what: &str, command: &mut Command) -> Duration {
    let started = Instant::now();
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn ssh_e(sshd: &Sshd) -> String {
    format!("ssh {}", sshd.ssh_options().join(" "))
}

fn scp(sshd: &Sshd, source: &Path, dest: &str) -> Duration {
    let mut options = sshd.ssh_options();
    // scp spells the port -P.
    options[0] = "-P".into();
    timed(
        "scp -r",
        Command::new("scp")
            .arg("-rq")
            .args(&options)
            .arg(source)
            .arg(format!("{}@127.0.0.1:{dest}", sshd.user)),
    )
}

fn rsync(sshd: &Sshd, source: &Path, dest: &str) -> Duration {
    timed(
        "rsync -a",
        Command::new("rsync")
            .args(["-a", "-e", &ssh_e(sshd)])
            .arg(format!("{}/", source.display()))
            .arg(format!("{}@127.0.0.1:{dest}/", sshd.user)),
    )
}

async fn ours(sshd: &Sshd, source: &Path, dest: &str, state: &Path) -> (Duration, u64, usize) {
    let transport = OpenSsh {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        identity: Some(sshd.key.clone()),
        known_hosts: state.join("known_hosts"),
        control_path: state.join(format!("cm-{}", fastrand::u32(..))),
    };
    let started = Instant::now();
    // The scan is part of the upload, as rsync's is of its own.
    let project = Project::scan(source).unwrap();
    let report = lambda_gha_cli::run::upload(
        &transport,
        &project,
        &format!("\"$HOME\"/{dest}"),
        Ui {
            quiet: true,
            json: false,
        },
    )
    .await
    .unwrap();
    let took = started.elapsed();
    transport.close().await;
    (took, report.wire_bytes, report.files_sent)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // In memory when possible: the machine's disk is not what is measured (every tool writes
    // the same bytes), and its writeback made runs here differ by 3x.
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let sshd = Sshd::start(&SshdOptions {
        root: Some(base.clone()),
        ..SshdOptions::default()
    })
    .expect("sshd (apt-get install openssh-server)");
    let work = base.join(format!("lambda-gha-bench-{:08x}", fastrand::u32(..)));
    let source = work.join("project");
    let state = work.join("state");
    std::fs::create_dir_all(&state).unwrap();
    println!("making the tree ...");
    let bytes = make_tree(&source);
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    println!(
        "tree: {} files, {mb:.0} MB in {}; sshd on 127.0.0.1:{}",
        SMALL_FILES + 10,
        base.display(),
        sshd.port
    );
    let home: PathBuf = sshd.home.clone();

    // Best of two, each into a fresh directory, interleaved so drift hits all three alike.
    let mut best = [Duration::MAX; 3];
    let (mut wire, mut sent) = (0, 0);
    for round in 0..ROUNDS {
        let (t, w, n) = ours(&sshd, &source, &format!("ours{round}"), &state).await;
        (wire, sent) = (w, n);
        best[0] = best[0].min(t);
        best[1] = best[1].min(scp(&sshd, &source, &format!("scp{round}")));
        best[2] = best[2].min(rsync(&sshd, &source, &format!("rsync{round}")));
    }
    let [t_ours, t_scp, t_rsync] = best;
    #[allow(clippy::cast_precision_loss)]
    let wire_mb = wire as f64 / 1e6;
    println!("\nfirst upload ({sent} files; best of {ROUNDS})");
    println!(
        "  ours (tar+zstd stream, one conn.)    {:>7.2} s   ({wire_mb:.0} MB on the wire)",
        secs(t_ours)
    );
    println!(
        "  scp -r                               {:>7.2} s",
        secs(t_scp)
    );
    println!(
        "  rsync -a                             {:>7.2} s",
        secs(t_rsync)
    );

    let mut changed = 0;
    let (mut t_ours_again, mut t_rsync_again) = (Duration::MAX, Duration::MAX);
    let (mut wire_again, mut sent_again) = (0, 0);
    for _ in 0..ROUNDS {
        changed = change_one_percent(&source);
        let (t, w, n) = ours(&sshd, &source, "ours0", &state).await;
        (wire_again, sent_again) = (w, n);
        t_ours_again = t_ours_again.min(t);
        t_rsync_again = t_rsync_again.min(rsync(&sshd, &source, "rsync0"));
    }
    #[allow(clippy::cast_precision_loss)]
    let wire_again_kb = wire_again as f64 / 1e3;
    println!("\nre-upload after changing {changed} files (1%; best of {ROUNDS})");
    println!(
        "  ours                                 {:>7.2} s   ({sent_again} files, {wire_again_kb:.0} kB on the wire)",
        secs(t_ours_again)
    );
    println!(
        "  rsync -a                             {:>7.2} s",
        secs(t_rsync_again)
    );

    let scp_ratio = secs(t_scp) / secs(t_ours);
    let rsync_ratio = secs(t_rsync) / secs(t_ours);
    let again_ratio = secs(t_rsync_again) / secs(t_ours_again);
    println!("\nratios (baseline / ours; > 1 means ours is faster)");
    println!(
        "  scp -r / ours, first upload   {scp_ratio:>6.2}x   target >= 5x   {}",
        verdict(scp_ratio >= 5.0)
    );
    println!(
        "  rsync / ours, first upload    {rsync_ratio:>6.2}x   target >= 1x   {}",
        verdict(rsync_ratio >= 1.0)
    );
    println!(
        "  rsync / ours, re-upload       {again_ratio:>6.2}x   target >= 1x   {}",
        verdict(again_ratio >= 1.0)
    );
    for round in 0..ROUNDS {
        for tool in ["ours", "scp", "rsync"] {
            let _ = std::fs::remove_dir_all(home.join(format!("{tool}{round}")));
        }
    }
    let _ = std::fs::remove_dir_all(work);
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
