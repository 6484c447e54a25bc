//! What a run reports at its end: the time of each phase, the upload, the GPU check, the
//! bill, and what became of the machine; as JSON and for people.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// The time one phase took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    /// `launch`, `boot`, `connect`, `gpu check`, `upload`, `setup`, `run`, `download`,
    /// `terminate`.
    pub phase: &'static str,
    /// Wall seconds.
    pub seconds: f64,
}

/// What an upload sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UploadReport {
    /// Files in the project.
    pub files: usize,
    /// Files sent (changed or new on the machine).
    pub files_sent: usize,
    /// Bytes of those files.
    pub bytes_sent: u64,
    /// Bytes on the wire (compressed tar stream).
    pub wire_bytes: u64,
}

/// A machine that failed the GPU check, terminated so that another could take its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplacedMachine {
    pub instance_id: String,
    pub instance_type: String,
    /// The check's verdict.
    pub why: String,
}

/// What became of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum MachineFate {
    /// Nothing was launched.
    NotLaunched,
    /// Terminated: billing stopped.
    Terminated,
    /// Left running on purpose (`--keep`, or a machine this run did not launch).
    LeftRunning,
    /// The terminate call failed: it may be billing.
    TerminateFailed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The machine, once launched or named.
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub region: Option<String>,
    /// Its price, US cents per hour.
    pub price_cents_per_hour: Option<u32>,
    /// Wall time per phase, in order.
    pub phases: Vec<PhaseTime>,
    /// What the GPU check found (its one-line verdict), when it ran.
    pub gpu_check: Option<String>,
    /// Machines that failed the GPU check and were replaced, in order.
    pub replaced: Vec<ReplacedMachine>,
    pub upload: Option<UploadReport>,
    /// Project files never uploaded because they hold the API key.
    pub withheld: Vec<String>,
    /// Files brought back.
    pub downloaded_files: usize,
    /// Download paths the machine did not have.
    pub missing_downloads: Vec<String>,
    /// The failing step, if one failed.
    pub failed_step: Option<String>,
    /// When the reaper ends the machine this run launched, if it is still running (its
    /// `lambda-gha:expires` tag).
    pub expires: Option<String>,
    /// Billed time of the machine this run launched, seconds (until now if left running).
    pub billed_seconds: f64,
    /// Billed time × price, US dollars.
    pub cost_usd: f64,
    /// What became of the machine.
    pub machine: MachineFate,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// Whether a signal stopped it.
    pub interrupted: bool,
    /// The signal that stopped it (`SIGINT`, `SIGTERM`, `SIGHUP`).
    pub signal: Option<&'static str>,
    /// Simulated seconds per real second (1 on a real cloud): phases are real time, the
    /// billed time is the cloud's.
    pub time_scale: f64,
    /// The exit code: the failing step's, else 1 for an error (or a machine that could not
    /// be terminated), 128 + the signal's number for a signal (130 Ctrl-C, 143 SIGTERM, 129
    /// SIGHUP), else 0.
    pub exit_code: i32,
}

impl RunSummary {
    /// The summary for people.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let machine = match (&self.instance_id, &self.instance_type, &self.region) {
            (Some(id), Some(t), Some(r)) => format!("{id} ({t} in {r})"),
            (Some(id), _, _) => id.clone(),
            _ => "none".to_owned(),
        };
        let _ = writeln!(text, "machine   {machine}");
        for phase in &self.phases {
            let _ = writeln!(text, "{:<9} {:>8.1} s", phase.phase, phase.seconds);
        }
        let total: f64 = self.phases.iter().map(|p| p.seconds).sum();
        let _ = writeln!(text, "{:<9} {total:>8.1} s", "total");
        for replaced in &self.replaced {
            let _ = writeln!(
                text,
                "replaced  {} ({}): {}",
                replaced.instance_id, replaced.instance_type, replaced.why
            );
        }
        if let Some(verdict) = &self.gpu_check {
            let _ = writeln!(text, "gpus      {verdict}");
        }
        if let Some(upload) = &self.upload {
            let _ = writeln!(
                text,
                "upload    {} of {} files, {} ({} on the wire)",
                upload.files_sent,
                upload.files,
                human_bytes(upload.bytes_sent),
                human_bytes(upload.wire_bytes)
            );
        }
        if !self.withheld.is_empty() {
            let _ = writeln!(
                text,
                "withheld  {} (hold the API key; not uploaded)",
                self.withheld.join(", ")
            );
        }
        if self.downloaded_files > 0 || !self.missing_downloads.is_empty() {
            let _ = write!(text, "download  {} files", self.downloaded_files);
            if !self.missing_downloads.is_empty() {
                let _ = write!(
                    text,
                    " (not on the machine: {})",
                    self.missing_downloads.join(", ")
                );
            }
            text.push('\n');
        }
        if let Some(price) = self.price_cents_per_hour {
            let simulated = if (self.time_scale - 1.0).abs() > f64::EPSILON {
                format!(", simulated time x{}", self.time_scale)
            } else {
                String::new()
            };
            let billed = gha_runner_core::duration::format_duration(Duration::from_secs_f64(
                self.billed_seconds.max(0.0).round(),
            ));
            let _ = if self.replaced.is_empty() {
                writeln!(
                    text,
                    "cost      ${:.4} ({billed} billed × ${:.2}/h{simulated})",
                    self.cost_usd,
                    f64::from(price) / 100.0
                )
            } else {
                writeln!(
                    text,
                    "cost      ${:.4} ({billed} billed over {} machines{simulated})",
                    self.cost_usd,
                    self.replaced.len() + 1
                )
            };
        }
        let id = self.instance_id.as_deref().unwrap_or("?");
        let fate = match &self.machine {
            MachineFate::NotLaunched => "nothing launched".to_owned(),
            MachineFate::Terminated => "terminated (billing stopped)".to_owned(),
            MachineFate::LeftRunning => format!(
                "LEFT RUNNING, still billing: `lambda-gha run --instance {id} ...` reuses it, `lambda-gha terminate {id}` ends it{}",
                self.expires
                    .as_deref()
                    .map(|at| format!("; `lambda-gha reap` ends it after {at}"))
                    .unwrap_or_default()
            ),
            MachineFate::TerminateFailed(why) => format!(
                "COULD NOT TERMINATE ({why}); it may be billing: `lambda-gha terminate {id}`"
            ),
        };
        let _ = writeln!(text, "machine   {fate}");
        if let Some(step) = &self.failed_step {
            let _ = writeln!(text, "failed    {step} (exit {})", self.exit_code);
        }
        if let Some(error) = &self.error {
            let _ = writeln!(text, "error     {error}");
        }
        text
    }
}

pub(super) fn human_bytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // For people.
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_phase_the_cost_and_what_became_of_the_machine() {
        let summary = RunSummary {
            instance_id: Some("i-1".into()),
            instance_type: Some("gpu_1x_a10".into()),
            region: Some("us-east-1".into()),
            price_cents_per_hour: Some(86),
            phases: vec![
                PhaseTime {
                    phase: "launch",
                    seconds: 1.2,
                },
                PhaseTime {
                    phase: "boot",
                    seconds: 180.0,
                },
                PhaseTime {
                    phase: "gpu check",
                    seconds: 0.4,
                },
                PhaseTime {
                    phase: "run",
                    seconds: 61.5,
                },
            ],
            gpu_check: Some("nvidia-smi sees all 1 GPUs".into()),
            replaced: Vec::new(),
            upload: Some(UploadReport {
                files: 120,
                files_sent: 3,
                bytes_sent: 20_480,
                wire_bytes: 4_100,
            }),
            withheld: vec![".env".into()],
            downloaded_files: 2,
            missing_downloads: vec!["plots".into()],
            failed_step: Some("uv run train.py".into()),
            expires: Some("2026-11-30T08:00:00Z".into()),
            billed_seconds: 250.0,
            cost_usd: 250.0 / 3600.0 * 0.86,
            machine: MachineFate::Terminated,
            error: None,
            interrupted: false,
            signal: None,
            time_scale: 1.0,
            exit_code: 3,
        };
        insta::assert_snapshot!(summary.render(), @r"
        machine   i-1 (gpu_1x_a10 in us-east-1)
        launch         1.2 s
        boot         180.0 s
        gpu check      0.4 s
        run           61.5 s
        total        243.1 s
        gpus      nvidia-smi sees all 1 GPUs
        upload    3 of 120 files, 20.5 kB (4.1 kB on the wire)
        withheld  .env (hold the API key; not uploaded)
        download  2 files (not on the machine: plots)
        cost      $0.0597 (4m10s billed × $0.86/h)
        machine   terminated (billing stopped)
        failed    uv run train.py (exit 3)
        ");
    }
}
