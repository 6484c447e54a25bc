//! A real OpenSSH server on 127.0.0.1 for tests and benchmarks: a high port, a throwaway host
//! key and client key made here, the current user, and a home directory of its own (so
//! nothing lands in the real home).

use std::io::Read as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `sshd`; stopped and its files removed when dropped.
pub struct Sshd {
    child: Child,
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The login user (whoever runs the test).
    pub user: String,
    /// The client's private key file.
    pub key: PathBuf,
    /// The client's public key (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    /// `$HOME` of every session.
    pub home: PathBuf,
}

/// How to start it.
#[derive(Debug, Default, Clone)]
pub struct SshdOptions {
    /// A directory put first on sessions' `PATH` (to stand in for programs on the machine).
    pub path_prefix: Option<PathBuf>,
    /// Where its keys and the sessions' home go (default: the temporary directory).
    pub root: Option<PathBuf>,
    /// GPUs the machine's `nvidia-smi` shows (the simulator's fake, on `PATH` after
    /// `path_prefix`); `None`: no `nvidia-smi`.
    pub gpus: Option<u32>,
}

fn find(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

fn keygen(path: &Path) -> Result<(), String> {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "lambda-gha-test",
            "-f",
        ])
        .arg(path)
        .status()
        .map_err(|e| format!("cannot run ssh-keygen ({e}): install openssh-client"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "ssh-keygen failed".to_owned())
}

impl Sshd {
    /// Starts one, waiting until it answers with its banner.
    pub fn start(options: &SshdOptions) -> Result<Sshd, String> {
        let sshd = find("sshd").ok_or(
            "no sshd: install openssh-server (`cargo xtask ci` does: apt-get install -y openssh-server)",
        )?;
        let dir = options
            .root
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("lambda-gha-sshd-{:016x}", fastrand::u64(..)));
        let home = dir.join("home");
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        keygen(&dir.join("host_ed25519"))?;
        let key = dir.join("client_ed25519");
        keygen(&key)?;
        let public_key = std::fs::read_to_string(key.with_extension("pub"))
            .map_err(|e| e.to_string())?
            .trim()
            .to_owned();
        std::fs::write(dir.join("authorized_keys"), format!("{public_key}\n"))
            .map_err(|e| e.to_string())?;
        // As root, sshd wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut path = "/usr/local/bin:/usr/bin:/bin".to_owned();
        if let Some(gpus) = options.gpus {
            let bin = dir.join("bin");
            lambda_cloud_sim::write_fake_nvidia_smi(&bin, "A10 (24 GB PCIe)", gpus)
                .map_err(|e| e.to_string())?;
            path = format!("{}:{path}", bin.display());
        }
        if let Some(prefix) = &options.path_prefix {
            path = format!("{}:{path}", prefix.display());
        }
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\n\
             PidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n\
             MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n\
             SetEnv HOME={home} PATH={path}\n",
            dir = dir.display(),
            home = home.display(),
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start sshd: {e}"))?;
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .map_err(|e| e.to_string())?
        .trim()
        .to_owned();
        let mut server = Sshd {
            child,
            dir,
            port,
            user,
            key,
            public_key,
            home,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    // Say hello back, or sshd logs the probe as a reset connection.
                    let _ = std::io::Write::write_all(&mut stream, b"SSH-2.0-probe\r\n");
                    return Ok(server);
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("sshd exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err("sshd did not answer within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `ssh` options that reach it (for `scp -o…`/`rsync -e`): port, key, no host-key
    /// bookkeeping.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
