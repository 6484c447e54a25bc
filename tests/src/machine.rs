//! Commands inside a simulated machine that booted as root ([`Sim::machine_pid`]), as one of
//! its users: what a person logged into it, or a job running on it, could do.

use std::process::{Child, Command, Output, Stdio};

use lambda_cloud::InstanceId;
use lambda_cloud_sim::Sim;

/// `script` for bash inside machine `id` as `user` (`runner`, `root`): in the machine's mount
/// and PID namespaces and its root, with a login-like environment.
fn in_machine(sim: &Sim, id: &InstanceId, user: &str, script: &str) -> Command {
    let pid = sim
        .machine_pid(id)
        .unwrap_or_else(|| panic!("{id} is not a running root machine"));
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--target={pid}"))
        // The root and working directory of the machine's PID 1: its `/`.
        .args(["--mount", "--pid", "--root", "--wd", "--"])
        .args([
            "/usr/bin/env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
        ])
        .args(["runuser", "-u", user, "--", "bash", "-c", script])
        .stdin(Stdio::null());
    command
}

/// Runs `script` inside machine `id` as `user` and returns its output.
pub fn run_in_machine(sim: &Sim, id: &InstanceId, user: &str, script: &str) -> Output {
    in_machine(sim, id, user, script)
        .output()
        .expect("run nsenter")
}

/// Runs `script` inside machine `id` as `user` with `input` on its standard input (which no
/// other process can read, unlike its command line) and returns its output.
pub fn run_in_machine_fed(
    sim: &Sim,
    id: &InstanceId,
    user: &str,
    script: &str,
    input: &str,
) -> Output {
    use std::io::Write as _;
    let mut child = in_machine(sim, id, user, script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsenter");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("feed the script");
    }
    child.wait_with_output().expect("wait for nsenter")
}

/// Starts `script` inside machine `id` as `user` in the background; it ends with the machine
/// or when killed.
pub fn spawn_in_machine(sim: &Sim, id: &InstanceId, user: &str, script: &str) -> Child {
    in_machine(sim, id, user, script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run nsenter")
}
