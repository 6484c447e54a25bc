//! Uses `lambda-cloud` the way a program that depends on it from crates.io does, and checks
//! what such a program relies on:
//!
//! - building a client installs nothing process-wide, so the program's own TLS provider can be
//!   installed afterwards (with `ring` here; `aws-lc-rs` works the same way);
//! - the client then sends through that provider, and the typed API answers;
//! - response models are matched with `..` (they are `#[non_exhaustive]`), ids are given as
//!   plain strings.

use std::io::{Read as _, Write as _};

const TYPES: &str = r#"{"data":{"gpu_1x_a10":{"instance_type":{"name":"gpu_1x_a10","description":"1x A10 (24 GB PCIe)","gpu_description":"A10 (24 GB PCIe)","price_cents_per_hour":75,"specs":{"vcpus":30,"memory_gib":200,"storage_gib":1400,"gpus":1}},"regions_with_capacity_available":[{"name":"us-east-1","description":"Virginia, USA"}]}}}"#;

/// Answers every request on `listener` with `body`, as many times as asked.
fn serve(listener: std::net::TcpListener, body: &'static str, times: usize) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(times) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    serve(listener, TYPES, 1);

    let client = lambda_cloud::Client::builder()
        .api_key("downstream-test-key")
        .base_url(&url)
        .build()?;
    // The program's own provider, installed after the client was built: this fails if the
    // library had installed one behind the program's back.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| "lambda-cloud installed a process-wide TLS provider")?;

    let types = client.instance_types().list().await?;
    let available: Vec<&str> = types
        .available()
        .iter()
        .map(|item| item.instance_type.name.as_str())
        .collect();
    assert_eq!(available, ["gpu_1x_a10"]);
    let lambda_cloud::InstanceType { name, .. } = &types.by_price()[0].instance_type;
    println!("lambda-cloud downstream: {name} listed through the program's own TLS set-up");

    // Ids as plain strings; a refused connection is a transport error naming the operation.
    let unreachable = lambda_cloud::Client::builder()
        .api_key("downstream-test-key")
        .base_url("http://127.0.0.1:9")
        .retry_policy(lambda_cloud::RetryPolicy::none())
        .build()?;
    let error = unreachable.instances().get("0920582c7ff041399e34823a0be62549").await;
    match error {
        Err(error) if matches!(error.kind(), lambda_cloud::ErrorKind::Transport(_)) => {}
        other => return Err(format!("expected a transport error, got {other:?}").into()),
    }
    Ok(())
}
