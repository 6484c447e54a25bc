//! HTTPS without a process-wide TLS provider: the client's own `ring` configuration shakes
//! hands with a real TLS server (OpenSSL's `s_server`) and checks its certificate, and nothing
//! is installed behind the program's back.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lambda_cloud::{Client, ErrorKind, RetryPolicy};

/// `openssl s_server` with a fresh self-signed certificate, killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = std::env::temp_dir().join(format!("lambda-cloud-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args([
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ])
            .current_dir(&dir)
            .stderr(Stdio::null())
            .status()
            .expect("openssl (cargo xtask ci installs it)");
        assert!(made.success(), "openssl req failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server", "-quiet", "-www", "-cert", "cert.pem", "-key", "key.pem",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsServer { child, port, dir }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The error and every source below it, in one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn https_works_without_a_process_wide_provider_and_checks_certificates() {
    let server = TlsServer::start();
    let client = Client::builder()
        .api_key("tls-test-key")
        .base_url(format!("https://localhost:{}", server.port))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let error = client.regions().list().await.unwrap_err();
    // The handshake ran to the certificate check, which refused a self-signed certificate
    // (webpki: a CA used as an end entity, signed by no root): TLS is set up — protocol
    // versions, ALPN, the platform's verifier — not missing.
    assert!(matches!(error.kind(), ErrorKind::Transport(_)), "{error:?}");
    let text = chain(&error).to_lowercase();
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "building a client installed a process-wide TLS provider"
    );
}
