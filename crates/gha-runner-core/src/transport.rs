//! Reaching a machine: a shell command there, with our end of its stdin and stdout. One
//! trait with two implementations serves a real machine over OpenSSH and a simulated one
//! through its sandbox directory: the CLI's `run` does everything (listing, uploading,
//! scripts, downloading) as commands, and the action reads a failed machine's boot log.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

/// Runs shell commands on one machine.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// A command that runs `script` with bash-compatible `sh` on the machine, in the login
    /// user's home directory. Callers set stdin/stdout/stderr.
    fn command(&self, script: &str) -> Command;

    /// Waits until commands can run (the SSH server answers and accepts the key), up to
    /// `timeout`.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), String>;

    /// Ends anything the transport keeps open (the shared SSH connection).
    async fn close(&self);

    /// Where commands run, for people: `ubuntu@198.51.100.7`.
    fn describe(&self) -> String;
}

/// OpenSSH's `ssh`, with every command over one shared connection (a control master), so the
/// handshake is paid once per run.
#[derive(Debug, Clone)]
pub struct OpenSsh {
    /// The machine's address.
    pub host: String,
    /// Its SSH port (22 on Lambda).
    pub port: u16,
    /// The login user (`ubuntu` on Lambda's images).
    pub user: String,
    /// The private key, when not ssh's own choice.
    pub identity: Option<PathBuf>,
    /// The known-hosts file for this machine: a new machine's key is accepted on first use
    /// and checked afterwards; one file per instance, since Lambda reuses addresses.
    pub known_hosts: PathBuf,
    /// The control socket of the shared connection.
    pub control_path: PathBuf,
}

impl OpenSsh {
    /// The options every ssh invocation gets.
    pub fn options(&self) -> Vec<String> {
        let mut args = vec![
            "-p".to_owned(),
            self.port.to_string(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
            "-o".to_owned(),
            "StrictHostKeyChecking=accept-new".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".to_owned(),
            "ServerAliveInterval=15".to_owned(),
            "-o".to_owned(),
            "ConnectTimeout=10".to_owned(),
            "-o".to_owned(),
            "ControlMaster=auto".to_owned(),
            "-o".to_owned(),
            format!("ControlPath={}", self.control_path.display()),
            "-o".to_owned(),
            "ControlPersist=120".to_owned(),
            "-o".to_owned(),
            "LogLevel=ERROR".to_owned(),
            // AES-GCM first: with AES instructions (any x86_64 or arm64 server or laptop) it
            // moves bulk data faster than the default ChaCha20.
            "-o".to_owned(),
            "Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com".to_owned(),
        ];
        if let Some(identity) = &self.identity {
            args.push("-i".to_owned());
            args.push(identity.display().to_string());
            // Only this key: agents with many keys hit the server's MaxAuthTries first.
            args.push("-o".to_owned());
            args.push("IdentitiesOnly=yes".to_owned());
        }
        args
    }

    fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Whether the port answers with an SSH banner.
    async fn banner(&self) -> bool {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
            return false;
        };
        let mut buf = [0u8; 4];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await,
            Ok(Ok(_)) if &buf == b"SSH-"
        )
    }
}

#[async_trait::async_trait]
impl Transport for OpenSsh {
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(self.options())
            .arg(self.destination())
            .arg("--")
            .arg(script)
            .kill_on_drop(true)
            // Not in the terminal's process group: Ctrl-C reaches `run`, which cleans up,
            // rather than killing ssh under it.
            .process_group(0);
        command
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no SSH banner yet");
        loop {
            if self.banner().await {
                let output = self
                    .command("true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .output()
                    .await
                    .map_err(|e| format!("cannot run ssh ({e}): install OpenSSH's client"))?;
                if output.status.success() {
                    return Ok(());
                }
                String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .clone_into(&mut last);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{} did not accept SSH within {}: {last}",
                    self.describe(),
                    crate::duration::format_duration(timeout)
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn close(&self) {
        let _ = Command::new("ssh")
            .args(self.options())
            .args(["-O", "exit"])
            .arg(self.destination())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }

    fn describe(&self) -> String {
        if self.port == 22 {
            self.destination()
        } else {
            format!("{}:{}", self.destination(), self.port)
        }
    }
}

/// Where a simulated machine keeps its own programs (its `nvidia-smi`), inside its sandbox:
/// `sim_machine::SANDBOX_BIN` (a test keeps the two equal).
pub const SIM_SANDBOX_BIN: &str = ".sim-machine/bin";

/// A simulated machine: commands run locally with bash in the instance's sandbox directory,
/// which is their home, with the machine's own programs first on `PATH`. The simulator kills
/// what runs there when the instance is terminated. A machine that boots as root (the
/// simulator's root mode) is entered instead, as `ssh` would enter a real one: commands run
/// as its root inside its namespaces (`nsenter`), found through the holder file the simulator
/// writes beside the sandbox ([`SIM_MACHINE_HOLDER`]).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The instance's sandbox directory.
    pub dir: PathBuf,
    /// Extra environment for commands (the simulated machine's).
    pub env: Vec<(String, String)>,
}

/// The file beside a root machine's sandbox (`.<instance id>.holder`) holding the PID of the
/// process that holds its namespaces; the machine's PID 1 is that process's child.
pub const SIM_MACHINE_HOLDER: &str = ".{id}.holder";

impl Sandbox {
    /// A sandbox at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            dir: dir.into(),
            env: Vec::new(),
        }
    }

    /// What this sandbox is now: a root machine that is up (and its PID 1), one still starting,
    /// or files only (a sandbox machine, or a root machine that ended: its files are then read
    /// where it left them).
    fn machine(&self) -> SimMachine {
        let holder = || -> Option<u32> {
            let id = self.dir.file_name()?.to_str()?;
            let file = self
                .dir
                .parent()?
                .join(SIM_MACHINE_HOLDER.replace("{id}", id));
            std::fs::read_to_string(file).ok()?.trim().parse().ok()
        };
        let Some(holder) = holder() else {
            return SimMachine::Files;
        };
        let Ok(children) =
            std::fs::read_to_string(format!("/proc/{holder}/task/{holder}/children"))
        else {
            return SimMachine::Files;
        };
        let init: Option<u32> = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok());
        // Up means inside its own root: until its `chroot`, its root is the host's, and
        // entering it then would write to the host.
        let inside = |init: u32| {
            use std::os::unix::fs::MetadataExt as _;
            let root = std::fs::metadata(format!("/proc/{init}/root"));
            let host = std::fs::metadata("/");
            matches!((root, host), (Ok(r), Ok(h)) if (r.dev(), r.ino()) != (h.dev(), h.ino()))
        };
        match init {
            Some(init) if inside(init) => SimMachine::Up(init),
            _ => SimMachine::Starting,
        }
    }
}

/// What a simulated machine's sandbox is, for entering it.
enum SimMachine {
    /// A root machine that is up: its PID 1's host PID.
    Up(u32),
    /// A root machine whose PID 1 is not in its root yet.
    Starting,
    /// Files in a directory: a sandbox machine, or a root machine that ended.
    Files,
}

#[async_trait::async_trait]
impl Transport for Sandbox {
    fn command(&self, script: &str) -> Command {
        match self.machine() {
            SimMachine::Files => {}
            // Its files are only consistent from inside (an overlay): never written around it.
            SimMachine::Starting => {
                let mut command = Command::new("bash");
                command.args(["-c", "echo 'the machine is still starting' >&2; exit 255"]);
                return command;
            }
            SimMachine::Up(init) => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--target={init}"))
                    // The machine's root and working directory, as its PID 1 sees them.
                    .args(["--mount", "--pid", "--root", "--wd", "--"])
                    .args([
                        "/usr/bin/env",
                        "-i",
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "HOME=/root",
                        "LANG=C.UTF-8",
                        "bash",
                        "-c",
                        script,
                    ])
                    .kill_on_drop(true)
                    .process_group(0);
                return command;
            }
        }
        let mut command = Command::new("bash");
        let mut path = vec![self.dir.join(SIM_SANDBOX_BIN)];
        path.extend(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        );
        // (A sandbox path with a `:` in it cannot go on PATH; its programs are then missing.)
        if let Ok(path) = std::env::join_paths(path) {
            command.env("PATH", path);
        }
        command
            .args(["-c", script])
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            // The simulator's marker: terminating the instance kills these processes.
            .env("SIM_MACHINE_SANDBOX", &self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .process_group(0);
        command
    }

    async fn wait_ready(&self, _timeout: Duration) -> Result<(), String> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| format!("cannot prepare {}: {e}", self.dir.display()))
    }

    async fn close(&self) {}

    fn describe(&self) -> String {
        format!("the simulated machine at {}", self.dir.display())
    }
}

/// Runs `script` and returns its stdout; a non-zero exit is an error carrying its stderr.
pub async fn capture(transport: &dyn Transport, script: &str) -> Result<Vec<u8>, String> {
    let output = transport
        .command(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| format!("cannot start the command: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(failure(transport, script, output.status, &output.stderr))
    }
}

fn failure(
    transport: &dyn Transport,
    script: &str,
    status: std::process::ExitStatus,
    stderr: &[u8],
) -> String {
    format!(
        "`{script}` failed on {} ({status}): {}",
        transport.describe(),
        String::from_utf8_lossy(stderr).trim()
    )
}

/// Runs `script` with `input` written to its stdin (by a blocking writer on its own thread,
/// so producing the stream overlaps sending it); returns the writer's result.
pub async fn feed<T, F>(transport: &dyn Transport, script: &str, input: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn std::io::Write) -> std::io::Result<T> + Send + 'static,
{
    pump(transport, script, Pipe::Stdin, move |file| {
        let mut pipe = std::io::BufWriter::with_capacity(256 * 1024, file);
        let value = input(&mut pipe)?;
        // Dropping the pipe then closes it: the far end sees the end of the stream.
        std::io::Write::flush(&mut pipe)?;
        Ok(value)
    })
    .await
}

/// Runs `script` and hands its stdout to `output` (a blocking reader on its own thread).
pub async fn drain<T, F>(transport: &dyn Transport, script: &str, output: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn std::io::Read) -> std::io::Result<T> + Send + 'static,
{
    pump(transport, script, Pipe::Stdout, move |file| {
        output(&mut std::io::BufReader::with_capacity(256 * 1024, file))
    })
    .await
}

/// Which end of the command a blocking worker gets.
enum Pipe {
    Stdin,
    Stdout,
}

/// Runs `script` with `work` on its stdin or stdout (on a blocking thread) while its stderr is
/// collected; a failed command is reported with its stderr.
async fn pump<T, F>(
    transport: &dyn Transport,
    script: &str,
    pipe: Pipe,
    work: F,
) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(std::fs::File) -> std::io::Result<T> + Send + 'static,
{
    let (stdin, stdout) = match pipe {
        Pipe::Stdin => (Stdio::piped(), Stdio::null()),
        Pipe::Stdout => (Stdio::null(), Stdio::piped()),
    };
    let mut child = transport
        .command(script)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the command: {e}"))?;
    let fd = match pipe {
        Pipe::Stdin => child
            .stdin
            .take()
            .map(tokio::process::ChildStdin::into_owned_fd),
        Pipe::Stdout => child
            .stdout
            .take()
            .map(tokio::process::ChildStdout::into_owned_fd),
    }
    .ok_or("the command has no pipe")?
    .map_err(|e| format!("cannot take the command's pipe: {e}"))?;
    let mut stderr = child.stderr.take().ok_or("the command has no stderr")?;
    let worker = tokio::task::spawn_blocking(move || work(std::fs::File::from(fd)));
    let mut errors = Vec::new();
    let (status, _) = tokio::join!(child.wait(), stderr.read_to_end(&mut errors));
    let status = status.map_err(|e| format!("the command failed: {e}"))?;
    let result = worker
        .await
        .map_err(|e| format!("the stream's worker stopped: {e}"))?;
    if !status.success() {
        return Err(failure(transport, script, status, &errors));
    }
    let direction = match pipe {
        Pipe::Stdin => "sending to",
        Pipe::Stdout => "receiving from",
    };
    result.map_err(|e| format!("{direction} {} failed: {e}", transport.describe()))
}

/// Quotes `text` for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(shell_quote("train.py"), "train.py");
        assert_eq!(shell_quote("my file"), "'my file'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn ssh_shares_one_connection_and_pins_the_host_key_per_machine() {
        let ssh = OpenSsh {
            host: "198.51.100.7".into(),
            port: 22,
            user: "ubuntu".into(),
            identity: Some("/k".into()),
            known_hosts: "/kh/i-1".into(),
            control_path: "/c/i-1".into(),
        };
        let options = ssh.options().join(" ");
        for expected in [
            "ControlMaster=auto",
            "ControlPath=/c/i-1",
            "UserKnownHostsFile=/kh/i-1",
            "StrictHostKeyChecking=accept-new",
            "BatchMode=yes",
            "-i /k -o IdentitiesOnly=yes",
        ] {
            assert!(options.contains(expected), "{expected} in {options}");
        }
        assert_eq!(ssh.describe(), "ubuntu@198.51.100.7");
    }

    #[tokio::test]
    async fn a_sandbox_runs_commands_at_home_and_streams_both_ways() {
        let dir = std::env::temp_dir().join(format!("lambda-gha-sandbox-{}", fastrand::u64(..)));
        let sandbox = Sandbox::new(&dir);
        sandbox
            .wait_ready(Duration::from_secs(1))
            .await
            .expect("ready");
        let home = capture(&sandbox, "pwd; echo $HOME").await.expect("pwd");
        let home = String::from_utf8(home).expect("utf8");
        assert_eq!(home.lines().count(), 2);
        assert!(
            home.lines().all(|l| std::path::Path::new(l) == dir),
            "{home}"
        );

        let sent = feed(&sandbox, "cat > echo.txt", |w| {
            w.write_all(b"hello")?;
            Ok(5)
        })
        .await
        .expect("feed");
        assert_eq!(sent, 5);
        let back = drain(&sandbox, "cat echo.txt", |r| {
            let mut s = String::new();
            r.read_to_string(&mut s)?;
            Ok(s)
        })
        .await
        .expect("drain");
        assert_eq!(back, "hello");
        let failed = capture(&sandbox, "echo oops >&2; exit 3")
            .await
            .expect_err("exit 3");
        assert!(failed.contains("oops"), "{failed}");
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
