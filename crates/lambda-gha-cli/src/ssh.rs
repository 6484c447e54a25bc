//! `lambda-gha ssh`: the OpenSSH command line for an instance. Lambda images log in as
//! `ubuntu`; a new machine's host key is accepted on first use and checked afterwards.

use std::path::Path;

/// The `ssh` arguments to reach `ip` as `user`, with `identity` when given, running
/// `command` (an interactive shell when empty).
pub fn ssh_args(ip: &str, user: &str, identity: Option<&Path>, command: &[String]) -> Vec<String> {
    let mut args = vec![
        "-o".to_owned(),
        "StrictHostKeyChecking=accept-new".to_owned(),
        "-o".to_owned(),
        "ServerAliveInterval=30".to_owned(),
    ];
    if let Some(identity) = identity {
        args.push("-i".to_owned());
        args.push(identity.display().to_string());
        // Only this key: agents with many keys hit the server's MaxAuthTries first.
        args.push("-o".to_owned());
        args.push("IdentitiesOnly=yes".to_owned());
    }
    args.push(format!("{user}@{ip}"));
    if !command.is_empty() {
        args.push("--".to_owned());
        args.extend(command.iter().cloned());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_follows_a_double_dash_and_a_key_is_used_alone() {
        let args = ssh_args(
            "198.51.100.2",
            "ubuntu",
            Some(Path::new("/k")),
            &["nvidia-smi".into(), "-L".into()],
        );
        assert_eq!(
            args.join(" "),
            "-o StrictHostKeyChecking=accept-new -o ServerAliveInterval=30 -i /k -o IdentitiesOnly=yes ubuntu@198.51.100.2 -- nvidia-smi -L"
        );
        assert!(
            ssh_args("h", "u", None, &[])
                .last()
                .is_some_and(|a| a == "u@h")
        );
    }
}
