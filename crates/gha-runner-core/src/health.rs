//! The GPU health gate: before a machine's runners start, `nvidia-smi` must see every GPU its
//! type has, and the user's own check (`gpu_check`, e.g. a one-line PyTorch CUDA probe) must
//! pass. A machine that fails never starts its runners; its agent says why where the launcher
//! can see it ([`CloudProvider::report_unhealthy`]) and ends it, and the launcher replaces it.
//!
//! [`CloudProvider::report_unhealthy`]: crate::CloudProvider::report_unhealthy

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::transport::Transport;

/// How long a machine that failed its gate waits before ending itself, so that the launcher
/// watching it can read its boot log first (and terminate it sooner).
pub const UNHEALTHY_HOLD: Duration = Duration::from_secs(60);

/// How long `nvidia-smi` may take: a wedged driver makes it hang.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the user's check may run.
const GPU_CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// The shell's exit for a command it cannot find.
const NOT_FOUND: i32 = 127;

/// Whether machines check their GPUs before use, and with what: one setting for the action's
/// machines (`gpu_health_gate`, `gpu_check`) and `lambda-gha run`'s (`--no-gpu-gate`,
/// `--gpu-check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuGate {
    /// `nvidia-smi` must see every GPU of the machine's type, and the user's check, if any,
    /// must exit 0.
    On {
        /// The user's check: a bash command that must exit 0.
        check: Option<String>,
    },
    /// No check at all (an image without the NVIDIA driver).
    Off,
}

impl Default for GpuGate {
    fn default() -> Self {
        GpuGate::On { check: None }
    }
}

impl GpuGate {
    /// The gate a machine of `instance_type` with `gpus` GPUs runs; none when it is off.
    pub fn for_machine(&self, instance_type: &str, gpus: u32) -> Option<HealthGate> {
        match self {
            GpuGate::Off => None,
            GpuGate::On { check } => Some(HealthGate {
                instance_type: instance_type.to_owned(),
                expected_gpus: gpus,
                check: check.clone(),
                check_timeout_seconds: GPU_CHECK_TIMEOUT.as_secs(),
            }),
        }
    }
}

/// What one machine checks before its runners start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthGate {
    /// The machine's type, for messages.
    pub instance_type: String,
    /// GPUs the type has (from the provider's catalog); 0 skips the `nvidia-smi` check.
    pub expected_gpus: u32,
    /// The user's check: a bash command run as root that must exit 0.
    pub check: Option<String>,
    /// How long the user's check may run (seconds).
    pub check_timeout_seconds: u64,
}

/// The gate's verdict, written where the agent reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Whether the runners may start.
    pub passed: bool,
    /// One short line: what passed, or what failed (it becomes the machine's note, so it is
    /// kept short).
    pub summary: String,
    /// The checks' own output, for the boot log.
    pub detail: String,
}

impl HealthReport {
    fn failed(summary: impl Into<String>, detail: impl Into<String>) -> HealthReport {
        HealthReport {
            passed: false,
            summary: summary.into(),
            detail: detail.into(),
        }
    }
}

/// A command's exit and output, or why it did not finish.
async fn run(mut command: Command, timeout: Duration) -> Result<(Option<i32>, String), String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            Ok((output.status.code(), text.trim_end().to_owned()))
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "did not finish within {}",
            crate::duration::format_duration(timeout)
        )),
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Keeps at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl HealthGate {
    /// Runs the checks on this machine, in `dir` (its root directory, or a simulated
    /// machine's sandbox): the agent's gate at boot. `scale` shrinks the timeouts for a
    /// simulated machine's faster clock.
    pub async fn run(&self, dir: &Path, scale: f64) -> HealthReport {
        self.run_with_path(dir, scale, None).await
    }

    /// Runs the checks on a machine reached through `transport` (`lambda-gha run`'s gate), as
    /// its login user.
    pub async fn run_over(&self, transport: &dyn Transport, scale: f64) -> HealthReport {
        self.check(|script| transport.command(script), scale).await
    }

    /// [`HealthGate::run`] with the commands' `PATH` set (tests stand in for `nvidia-smi`).
    async fn run_with_path(&self, dir: &Path, scale: f64, path: Option<&str>) -> HealthReport {
        self.check(
            |script| {
                let mut command = Command::new("bash");
                command.args(["-c", script]).current_dir(dir);
                if let Some(path) = path {
                    command.env("PATH", path);
                }
                command
            },
            scale,
        )
        .await
    }

    /// The checks, each a shell command that `shell` makes runnable where the machine is.
    async fn check(&self, shell: impl Fn(&str) -> Command, scale: f64) -> HealthReport {
        let scale = if scale > 0.0 { scale } else { 1.0 };
        let mut detail = String::new();
        let mut passed = Vec::new();
        if self.expected_gpus > 0 {
            match run(shell("nvidia-smi -L"), NVIDIA_SMI_TIMEOUT.div_f64(scale)).await {
                Err(why) => {
                    return HealthReport::failed(
                        format!("nvidia-smi: {}", clip(&why, 40)),
                        format!("nvidia-smi -L could not run: {why}"),
                    );
                }
                Ok((Some(NOT_FOUND), output)) => {
                    return HealthReport::failed(
                        "nvidia-smi not found",
                        format!(
                            "{output}\nnvidia-smi is not on the machine's PATH: does the image have the NVIDIA driver?"
                        ),
                    );
                }
                Ok((code, output)) => {
                    detail.push_str(&output);
                    let seen = output.lines().filter(|l| l.starts_with("GPU ")).count();
                    let seen = u32::try_from(seen).unwrap_or(u32::MAX);
                    if code != Some(0) {
                        let code = code.map_or("a signal".to_owned(), |c| c.to_string());
                        return HealthReport::failed(
                            format!("nvidia-smi exit {code}: {}", clip(last_line(&output), 30)),
                            detail,
                        );
                    }
                    if seen < self.expected_gpus {
                        return HealthReport::failed(
                            format!("nvidia-smi sees {seen} of {} GPUs", self.expected_gpus),
                            detail,
                        );
                    }
                    passed.push(format!("nvidia-smi sees all {seen} GPUs"));
                }
            }
        }
        if let Some(check) = &self.check {
            let timeout = Duration::from_secs(self.check_timeout_seconds).div_f64(scale);
            match run(shell(check), timeout).await {
                Ok((Some(0), output)) => {
                    if !output.is_empty() {
                        detail.push('\n');
                        detail.push_str(&output);
                    }
                    passed.push("gpu_check passed".to_owned());
                }
                Ok((code, output)) => {
                    let code = code.map_or("a signal".to_owned(), |c| c.to_string());
                    detail.push('\n');
                    detail.push_str(&output);
                    return HealthReport::failed(
                        format!("gpu_check exit {code}: {}", clip(last_line(&output), 30)),
                        detail.trim_start().to_owned(),
                    );
                }
                Err(why) => {
                    return HealthReport::failed(format!("gpu_check {}", clip(&why, 40)), detail);
                }
            }
        }
        HealthReport {
            passed: true,
            summary: if passed.is_empty() {
                format!(
                    "{} has no GPUs and no gpu_check: nothing to check",
                    self.instance_type
                )
            } else {
                passed.join("; ")
            },
            detail: detail.trim().to_owned(),
        }
    }
}

/// Reads the verdict the gate left at `path`; none (no gate ran) is a pass.
pub fn read_report(path: &Path) -> Option<HealthReport> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(gpus: u32, check: Option<&str>) -> HealthGate {
        HealthGate {
            instance_type: "gpu_8x_h100_sxm5".into(),
            expected_gpus: gpus,
            check: check.map(str::to_owned),
            check_timeout_seconds: 5,
        }
    }

    /// A directory holding the simulator's `nvidia-smi`, showing `gpus` GPUs (none: it fails
    /// as without a driver, exit 6).
    fn fake_nvidia_smi(gpus: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("health-{gpus}-{}", fastrand::u64(..)));
        sim_machine::write_fake_nvidia_smi(&dir, "H100 80GB HBM3", gpus).unwrap();
        dir
    }

    fn path(dir: &Path) -> String {
        format!("{}:/usr/bin:/bin", dir.display())
    }

    #[tokio::test]
    async fn every_gpu_seen_and_the_check_passing_is_a_pass() {
        let dir = fake_nvidia_smi(8);
        let report = gate(8, Some("echo cuda ok"))
            .run_with_path(&dir, 1.0, Some(&path(&dir)))
            .await;
        assert!(report.passed, "{report:?}");
        assert_eq!(
            report.summary,
            "nvidia-smi sees all 8 GPUs; gpu_check passed"
        );
        assert!(report.detail.contains("GPU 7:") && report.detail.contains("cuda ok"));
    }

    #[tokio::test]
    async fn a_missing_gpu_a_failing_driver_or_check_is_a_failure() {
        let dir = fake_nvidia_smi(7);
        let report = gate(8, None)
            .run_with_path(&dir, 1.0, Some(&path(&dir)))
            .await;
        assert!(!report.passed);
        assert_eq!(report.summary, "nvidia-smi sees 7 of 8 GPUs");

        let dir = fake_nvidia_smi(0);
        let report = gate(1, None)
            .run_with_path(&dir, 1.0, Some(&path(&dir)))
            .await;
        assert_eq!(report.summary, "nvidia-smi exit 6: No devices were found");

        let dir = fake_nvidia_smi(8);
        let check = "echo 'RuntimeError: CUDA error: no kernel image' >&2; exit 3";
        let report = gate(8, Some(check))
            .run_with_path(&dir, 1.0, Some(&path(&dir)))
            .await;
        assert!(!report.passed);
        assert!(
            report.summary.starts_with("gpu_check exit 3: RuntimeError"),
            "{}",
            report.summary
        );
        assert!(report.summary.len() <= 64, "fits a Lambda instance name");

        let report = gate(0, Some("sleep 5"))
            .run_with_path(&dir, 10.0, Some(&path(&dir)))
            .await;
        assert_eq!(report.summary, "gpu_check did not finish within 500ms");

        let empty = std::env::temp_dir().join(format!("health-empty-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&empty).unwrap();
        let report = gate(1, None)
            .run_with_path(&empty, 1.0, Some(&path(&empty)))
            .await;
        assert_eq!(report.summary, "nvidia-smi not found");
        assert!(report.detail.contains("NVIDIA driver"), "{}", report.detail);
    }

    #[tokio::test]
    async fn no_gpus_and_no_check_pass_without_running_anything() {
        let report = gate(0, None).run(Path::new("/"), 1.0).await;
        assert!(report.passed);
        assert!(report.summary.contains("nothing to check"));
    }
}
