//! Running an instance's user data when it becomes active, the way cloud-init would run a
//! script part on a real machine: a [`sim_machine`] machine (a sandbox directory, or real root in
//! namespaces) per instance, in its own process group so that termination kills everything it
//! started.

use std::path::PathBuf;

use lambda_cloud::InstanceId;
use sim_machine::{Boot, MachineMode, Machines, Program};

use crate::machine::Gpus;
use crate::machine_env;

/// Where the filesystems' directories are, under the machines' root.
const FILESYSTEMS_DIR: &str = "filesystems";

const NOT_A_SCRIPT: &str = "lambda-cloud-sim: user data not run: it is neither a `#!` script \
    nor a multipart message with a text/x-shellscript part (cloud-config is not simulated)";

/// Starts and stops the instances' machines under one sandbox root.
#[derive(Debug)]
pub(crate) struct UserDataRunner {
    machines: Machines,
}

impl UserDataRunner {
    pub(crate) fn new(root: PathBuf, mode: MachineMode) -> Self {
        UserDataRunner {
            machines: Machines::new(root, mode),
        }
    }

    pub(crate) fn machines(&self) -> &Machines {
        &self.machines
    }

    /// Where an instance's user-data output goes, under its sandbox.
    pub(crate) fn log_file(&self) -> &'static str {
        Program::UserData(String::new()).log_file(self.machines.mode())
    }

    /// Boots instance `id`'s machine (its `nvidia-smi` for `gpus`) and runs the shell script in
    /// `user_data`, if any; other user data is noted in the log and not run.
    pub(crate) fn start(
        &self,
        id: &InstanceId,
        user_data: Option<&str>,
        gpus: &Gpus,
        mounts: &[(lambda_cloud::FilesystemId, String)],
        api_url: &str,
        time_scale: lambda_cloud::TimeScale,
    ) {
        let script = user_data.and_then(shell_script);
        if user_data.is_some() && script.is_none() {
            let log = self.machines.sandbox(id.as_str()).join(self.log_file());
            if let Some(parent) = log.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(log, format!("{NOT_A_SCRIPT}\n"));
        }
        self.machines.start(&Boot {
            id: id.as_str(),
            program: script.map(Program::UserData),
            gpus: &sim_machine::Gpus {
                model: gpus.model.clone(),
                visible: gpus.visible,
            },
            env: vec![
                (machine_env::SIMULATED.into(), "1".into()),
                (machine_env::INSTANCE_ID.into(), id.as_str().into()),
                (machine_env::API_URL.into(), api_url.into()),
                // Programs that keep time (the lambda-gha agent) run on the simulator's clock.
                (machine_env::TIME_SCALE.into(), time_scale.to_string()),
            ],
            secret_env: Vec::new(),
            // A filesystem is one directory on the host, seen by every machine that mounts it,
            // at the mount point the launch gave it (the OpenAPI spec's `Filesystem.mount_point`:
            // `/lambda/nfs/<name>` unless `file_system_mounts` says otherwise): Lambda's
            // filesystems are shared by the machines of their region.
            mounts: mounts
                .iter()
                .map(|(id, at)| sim_machine::Mount {
                    source: self.filesystem_dir(id),
                    target: at.clone(),
                })
                .collect(),
            // A hostname like Lambda's, which sudo can resolve.
            hostname: format!(
                "lambda-{}",
                id.as_str().chars().take(12).collect::<String>()
            ),
        });
    }

    /// Where filesystem `id`'s files are on the host: shared by every machine that mounts it.
    pub(crate) fn filesystem_dir(&self, id: &lambda_cloud::FilesystemId) -> PathBuf {
        self.machines.root().join(FILESYSTEMS_DIR).join(id.as_str())
    }

    /// Kills the instance's user data and every process running in its sandbox.
    pub(crate) fn stop(&self, id: &InstanceId) {
        self.machines.stop(id.as_str());
    }
}

/// The shell script in user data: the whole text when it starts with `#!`, or the first
/// `text/x-shellscript` part of a MIME multipart message.
pub(crate) fn shell_script(user_data: &str) -> Option<String> {
    if user_data.starts_with("#!") {
        return Some(user_data.to_owned());
    }
    let header_end = user_data
        .find("\n\n")
        .or_else(|| user_data.find("\r\n\r\n"))?;
    let headers = &user_data[..header_end];
    if !headers.to_ascii_lowercase().contains("multipart/") {
        return None;
    }
    let boundary = headers
        .split([';', '\n'])
        .find_map(|part| part.trim().strip_prefix("boundary="))?
        .trim()
        .trim_matches('"')
        .to_owned();
    let delimiter = format!("--{boundary}");
    for part in user_data.split(&delimiter).skip(1) {
        let part = part.trim_start_matches(['\r', '\n']);
        let Some(split) = part
            .find("\n\n")
            .map(|i| (i, 2))
            .or_else(|| part.find("\r\n\r\n").map(|i| (i, 4)))
        else {
            continue;
        };
        let (part_headers, body) = (&part[..split.0], &part[split.0 + split.1..]);
        if part_headers
            .to_ascii_lowercase()
            .contains("text/x-shellscript")
        {
            return Some(body.trim_end_matches(['\r', '\n', '-']).to_owned() + "\n");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_found_plain_or_in_multipart_messages() {
        assert_eq!(
            shell_script("#!/bin/bash\necho hi\n").as_deref(),
            Some("#!/bin/bash\necho hi\n")
        );
        assert_eq!(shell_script("#cloud-config\npackages: [jq]\n"), None);
        let multipart = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n\
            --XX\nContent-Type: text/cloud-config\n\npackages: [jq]\n\
            --XX\nContent-Type: text/x-shellscript\n\n#!/bin/bash\necho from-part\n\
            --XX--\n";
        assert_eq!(
            shell_script(multipart).as_deref(),
            Some("#!/bin/bash\necho from-part\n")
        );
    }
}
