//! PostgreSQL for the replica tests: a fresh database per test on the server at
//! `DATABASE_URL` (`cargo xtask ci` starts a throwaway cluster and sets it; for one test
//! binary, `cargo xtask postgres cargo nextest run …`), and a link to it that can be cut.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A database made for one test, dropped by [`TestDatabase::remove`].
pub struct TestDatabase {
    /// `postgres://…/<name>`.
    pub url: String,
    admin: String,
    name: String,
}

/// The server's URL, or a panic saying how to get one.
fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(
            "the replica tests need PostgreSQL at DATABASE_URL: run them through `cargo xtask ci`, \
             or `cargo xtask postgres cargo nextest run …` (a throwaway cluster)",
        )
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at DATABASE_URL: {e}"));
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    /// A new, empty database on the server at `DATABASE_URL`.
    pub async fn create() -> TestDatabase {
        let admin = admin_url();
        let name = format!("lambda_gha_{:08x}", fastrand::u32(..));
        admin_client(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        let url = with_database(&admin, &name);
        TestDatabase { url, admin, name }
    }

    /// The URL of this database through `address` (a [`CuttableLink`]) instead of the server.
    pub fn url_via(&self, address: SocketAddr) -> String {
        let config: tokio_postgres::Config = self.url.parse().expect("the database URL");
        let user = config.get_user().unwrap_or("postgres");
        format!("postgres://{user}@{address}/{}", self.name)
    }

    /// The server's address.
    pub fn server_address(&self) -> SocketAddr {
        let config: tokio_postgres::Config = self.url.parse().expect("the database URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
            .parse()
            .expect("the server's address is an IP and a port")
    }

    /// Drops the database, ending the sessions still on it.
    pub async fn remove(self) {
        let _ = admin_client(&self.admin)
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

/// `url` naming database `name` instead of its own (the path after the authority).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// A TCP relay to the database that can be cut as a network partition cuts it: from
/// [`CuttableLink::cut`] on, bytes either way are dropped and connections stay open, so
/// neither end hears that the other is gone (no reset, no close) until its own timeouts.
pub struct CuttableLink {
    /// Where clients connect.
    pub address: SocketAddr,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableLink {
    /// A relay on 127.0.0.1 to `target`.
    pub async fn to(target: SocketAddr) -> CuttableLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let cut = cut.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let cut = cut.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(target).await else {
                            return;
                        };
                        // As PostgreSQL and its clients set it: without, Nagle's algorithm and
                        // delayed ACKs hold each small message ~40 ms.
                        let _ = (client.set_nodelay(true), server.set_nodelay(true));
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::spawn(relay(client_read, server_write, cut.clone()));
                        relay(server_read, client_write, cut).await;
                    });
                }
            }
        });
        CuttableLink { address, cut, task }
    }

    /// Cuts the link: nothing passes any more, in either direction.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either closes; once `cut`, reads and drops.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                if cut.load(Ordering::SeqCst) {
                    // A partition does not carry the close either: hold the other side open.
                    std::future::pending::<()>().await;
                }
                return;
            }
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_names_another_database() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::with_database("postgres://u@h/db?sslmode=disable", "t2"),
            "postgres://u@h/t2?sslmode=disable"
        );
    }
}
