//! `cargo xtask bench transfer [--link RATE,RTT]`: uploading a project to a machine over SSH,
//! ours against the reference tool's way (`scp -r`) and SkyPilot's (`rsync -a`), all to the
//! same `sshd` in the same run, then an incremental re-upload after 1% of the files change.
//!
//! Over loopback the tree is 10,000 files, ~300 MB: 9,990 source-like text files (1-20 KB) and
//! ten large ones (five of random bytes, like weights; five of numbers, like a CSV dataset).
//! Over a shaped link (`LAMBDA_GHA_BENCH_LINK=100mbit,30ms`, set by xtask's `--link`: a
//! [`lambda_gha_tests::ShapedLink`] relay in front of the `sshd`) it is a tenth of that
//! (1,000 files, ~30 MB), so that `scp -r`'s round trip per file finishes in minutes.
//! Targets: ≥ 5× faster than `scp -r`; first upload and re-upload no slower than rsync.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::project::Project;
use lambda_gha_cli::transport::{OpenSsh, Transport};
use lambda_gha_tests::{LinkShape, ShapedLink, Sshd, SshdOptions};

/// The tree's size: small files, and the size of each of the ten large ones.
#[derive(Clone, Copy)]
struct Tree {
    small_files: usize,
    large_file: usize,
}

/// Over loopback.
const FULL_TREE: Tree = Tree {
    small_files: 9_990,
    large_file: 20 << 20,
};
/// Over a shaped link.
const SHAPED_TREE: Tree = Tree {
    small_files: 990,
    large_file: 2 << 20,
};
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

fn make_tree(root: &Path, tree: Tree) -> u64 {
    let mut bytes = 0u64;
    for i in 0..tree.small_files {
        let path = root.join(format!("src/pkg{}/mod{}/file{i}.py", i % 20, i % 7));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = text(1024 + fastrand::usize(..19 * 1024));
        bytes += body.len() as u64;
        std::fs::write(path, body).unwrap();
    }
    std::fs::create_dir_all(root.join("data")).unwrap();
    for i in 0..5 {
        let noise: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
            .take(tree.large_file)
            .collect();
        std::fs::write(root.join(format!("data/weights{i}.bin")), &noise).unwrap();
        let table = numbers(tree.large_file);
        std::fs::write(root.join(format!("data/table{i}.csv")), &table).unwrap();
        bytes += (noise.len() + table.len()) as u64;
    }
    bytes
}

/// Rewrites 1% of the small files (new content and size; their mtimes move on).
fn change_one_percent(root: &Path, tree: Tree) -> usize {
    let mut changed = 0;
    for i in (0..tree.small_files).step_by(100) {
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

/// `sshd`'s ssh options, reaching it at `port` (the link's relay, or its own).
fn options(sshd: &Sshd, port: u16) -> Vec<String> {
    let mut options = sshd.ssh_options();
    options[1] = port.to_string();
    options
}

fn ssh_e(sshd: &Sshd, port: u16) -> String {
    format!("ssh {}", options(sshd, port).join(" "))
}

fn scp(sshd: &Sshd, port: u16, source: &Path, dest: &str) -> Duration {
    let mut options = options(sshd, port);
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

fn rsync(sshd: &Sshd, port: u16, source: &Path, dest: &str) -> Duration {
    timed(
        "rsync -a",
        Command::new("rsync")
            .args(["-a", "-e", &ssh_e(sshd, port)])
            .arg(format!("{}/", source.display()))
            .arg(format!("{}@127.0.0.1:{dest}/", sshd.user)),
    )
}

async fn ours(
    sshd: &Sshd,
    port: u16,
    source: &Path,
    dest: &str,
    state: &Path,
) -> (Duration, u64, usize) {
    let transport = OpenSsh {
        host: "127.0.0.1".into(),
        port,
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
    // Over a shaped link: every tool goes through the same relay.
    let shape = std::env::var("LAMBDA_GHA_BENCH_LINK")
        .ok()
        .filter(|l| !l.is_empty() && l != "loopback")
        .map(|l| LinkShape::parse(&l).expect("LAMBDA_GHA_BENCH_LINK"));
    let link = shape.map(|shape| ShapedLink::start(shape, sshd.port).expect("the link relay"));
    let port = link.as_ref().map_or(sshd.port, |l| l.port);
    let tree = if shape.is_some() {
        SHAPED_TREE
    } else {
        FULL_TREE
    };
    let rounds = if shape.is_some() { 1 } else { 2 };
    let work = base.join(format!("lambda-gha-bench-{:08x}", fastrand::u32(..)));
    let source = work.join("project");
    let state = work.join("state");
    std::fs::create_dir_all(&state).unwrap();
    println!("making the tree ...");
    let bytes = make_tree(&source, tree);
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    println!(
        "tree: {} files, {mb:.0} MB in {}; sshd on 127.0.0.1:{}; link: {}",
        tree.small_files + 10,
        base.display(),
        sshd.port,
        shape.map_or_else(
            || "loopback".to_owned(),
            |s| format!(
                "{} Mbit/s, {} ms round trip (relay on :{port})",
                s.rate_bits / 1_000_000,
                s.rtt_ms
            )
        )
    );
    let home: PathBuf = sshd.home.clone();

    // Best of `rounds`, each into a fresh directory, interleaved so drift hits all three alike.
    let mut best = [Duration::MAX; 3];
    let (mut wire, mut sent) = (0, 0);
    for round in 0..rounds {
        let (t, w, n) = ours(&sshd, port, &source, &format!("ours{round}"), &state).await;
        (wire, sent) = (w, n);
        best[0] = best[0].min(t);
        best[1] = best[1].min(scp(&sshd, port, &source, &format!("scp{round}")));
        best[2] = best[2].min(rsync(&sshd, port, &source, &format!("rsync{round}")));
    }
    let [t_ours, t_scp, t_rsync] = best;
    #[allow(clippy::cast_precision_loss)]
    let wire_mb = wire as f64 / 1e6;
    println!("\nfirst upload ({sent} files; best of {rounds})");
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
    for _ in 0..rounds {
        changed = change_one_percent(&source, tree);
        let (t, w, n) = ours(&sshd, port, &source, "ours0", &state).await;
        (wire_again, sent_again) = (w, n);
        t_ours_again = t_ours_again.min(t);
        t_rsync_again = t_rsync_again.min(rsync(&sshd, port, &source, "rsync0"));
    }
    #[allow(clippy::cast_precision_loss)]
    let wire_again_kb = wire_again as f64 / 1e3;
    println!("\nre-upload after changing {changed} files (1%; best of {rounds})");
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
    drop(link);
    for round in 0..rounds {
        for tool in ["ours", "scp", "rsync"] {
            let _ = std::fs::remove_dir_all(home.join(format!("{tool}{round}")));
        }
    }
    let _ = std::fs::remove_dir_all(work);
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
