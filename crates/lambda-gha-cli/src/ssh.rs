//! `lambda-gha ssh`: the OpenSSH command line for an instance. Lambda images log in as
//! `ubuntu`; a new machine's host key is accepted on first use and checked afterwards, in a
//! known-hosts file of that instance's own: Lambda reuses addresses, and a global
//! `known_hosts` would refuse a new machine at an old address ("host key changed").

use std::path::Path;

/// Where and how `ssh` reaches an instance.
#[derive(Debug, Clone)]
pub struct SshTarget<'a> {
    pub ip: &'a str,
    /// Its SSH port (22 on Lambda).
    pub port: u16,
    pub user: &'a str,
    /// The private key, when not ssh's own choice.
    pub identity: Option<&'a Path>,
    /// The instance's own known-hosts file.
    pub known_hosts: &'a Path,
}

/// The `ssh` arguments to reach `target`, running `command` (an interactive shell when
/// empty).
pub fn ssh_args(target: &SshTarget<'_>, command: &[String]) -> Vec<String> {
    let mut args = vec![
        "-p".to_owned(),
        target.port.to_string(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", target.known_hosts.display()),
        "-o".to_owned(),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        "-o".to_owned(),
        "StrictHostKeyChecking=accept-new".to_owned(),
        "-o".to_owned(),
        "ServerAliveInterval=30".to_owned(),
    ];
    let (ip, user, identity) = (target.ip, target.user, target.identity);
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
    fn a_command_follows_a_double_dash_a_key_is_used_alone_and_hosts_are_per_instance() {
        let mut target = SshTarget {
            ip: "198.51.100.2",
            port: 22,
            user: "ubuntu",
            identity: Some(Path::new("/k")),
            known_hosts: Path::new("/state/known_hosts/i-1"),
        };
        let args = ssh_args(&target, &["nvidia-smi".into(), "-L".into()]);
        assert_eq!(
            args.join(" "),
            "-p 22 -o UserKnownHostsFile=/state/known_hosts/i-1 -o GlobalKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking=accept-new -o ServerAliveInterval=30 -i /k \
             -o IdentitiesOnly=yes ubuntu@198.51.100.2 -- nvidia-smi -L"
        );
        target.identity = None;
        assert!(
            ssh_args(&target, &[])
                .last()
                .is_some_and(|a| a == "ubuntu@198.51.100.2")
        );
    }
}
