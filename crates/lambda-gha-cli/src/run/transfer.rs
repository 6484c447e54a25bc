//! The project to the machine and results back: one compressed tar stream each way, only the
//! files that changed; and a step's output streamed live.

use std::path::PathBuf;
use std::process::Stdio;

use super::{RunRequest, UploadReport};
use crate::progress::Ui;
use crate::project::{Codec, Project, RemoteListing, unpack_archive, write_archive};
use crate::transport::{self, Transport, capture, shell_quote};

/// The project's directory on the machine, as a shell word: `"$HOME"/<name>`.
pub fn remote_dir(project: &Project) -> String {
    let name = project.root().file_name().map_or_else(
        || "project".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("\"$HOME\"/{}", shell_quote(&name))
}

/// Sends what the machine's copy of the project lacks, as one compressed tar stream.
pub async fn upload(
    transport: &dyn Transport,
    project: &Project,
    dir: &str,
    ui: Ui,
) -> Result<UploadReport, String> {
    let listing = capture(
        transport,
        &format!(
            "{} && mkdir -p {dir} && cd {dir} && {}",
            Codec::PROBE,
            RemoteListing::COMMAND
        ),
    )
    .await?;
    let (codec, listing) = Codec::split(&listing);
    let remote = RemoteListing::parse(listing);
    let changed: Vec<_> = project.changed(&remote).into_iter().cloned().collect();
    let bytes: u64 = changed.iter().map(|f| f.size).sum();
    let mut report = UploadReport {
        files: project.files.len(),
        files_sent: changed.len(),
        bytes_sent: bytes,
        wire_bytes: 0,
    };
    if changed.is_empty() {
        return Ok(report);
    }
    let bar = ui.bytes("uploading", bytes);
    let progress = bar.clone();
    let root = project.root().to_path_buf();
    let sent = transport::feed(
        transport,
        &format!(
            "cd {dir} && tar --no-same-owner {} -xf -",
            codec.tar_option()
        ),
        move |pipe| {
            let files: Vec<_> = changed.iter().collect();
            write_archive(&root, &files, codec, pipe, &mut |n| {
                progress.set_position(n);
            })
        },
    )
    .await;
    bar.finish_and_clear();
    report.wire_bytes = sent?;
    Ok(report)
}

/// Runs `script`, its output streamed live (stdout to stderr with `--json`, so stdout stays
/// the summary's); returns its exit code.
pub(super) async fn stream(transport: &dyn Transport, script: &str, ui: Ui) -> Result<i32, String> {
    let stdout = if ui.json {
        use std::os::fd::AsFd as _;
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("cannot pass on output: {e}"))?;
        Stdio::from(stderr)
    } else {
        Stdio::inherit()
    };
    let status = transport
        .command(script)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .status()
        .await
        .map_err(|e| format!("cannot start the command: {e}"))?;
    // ssh says 255 for its own failures; a signal has no code.
    Ok(status.code().unwrap_or(255))
}

/// Brings `request.downloads` back as one compressed tar stream; returns the files unpacked
/// and the paths the machine did not have.
pub(super) async fn download(
    transport: &dyn Transport,
    dir: &str,
    request: &RunRequest,
    ui: Ui,
) -> Result<(usize, Vec<String>), String> {
    let wanted: Vec<String> = request
        .downloads
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let words: Vec<String> = wanted.iter().map(|p| shell_quote(p)).collect();
    let present = capture(
        transport,
        &format!(
            "{} && cd {dir} && for p in {}; do [ -e \"$p\" ] && printf '%s\\n' \"$p\"; done; true",
            Codec::PROBE,
            words.join(" ")
        ),
    )
    .await?;
    let (codec, present) = Codec::split(&present);
    let present: Vec<String> = String::from_utf8_lossy(present)
        .lines()
        .map(str::to_owned)
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|p| !present.contains(p))
        .cloned()
        .collect();
    if present.is_empty() {
        return Ok((0, missing));
    }
    let words: Vec<String> = present.iter().map(|p| shell_quote(p)).collect();
    let dest = request.download_to.clone();
    let allowed: Vec<PathBuf> = present.iter().map(PathBuf::from).collect();
    let bar = ui.spinner("downloading");
    let count = transport::drain(
        transport,
        &format!(
            "cd {dir} && tar {} -cf - -- {}",
            codec.tar_option(),
            words.join(" ")
        ),
        move |pipe| unpack_archive(pipe, codec, &dest, &allowed),
    )
    .await;
    bar.finish_and_clear();
    Ok((count?, missing))
}
