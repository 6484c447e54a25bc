//! A network link with a chosen rate and round-trip time, for benchmarks that must cross one:
//! a TCP relay on 127.0.0.1 in front of a local server that holds each direction's bytes for
//! half the round trip and lets them out no faster than the rate, with no more in flight than
//! the link would carry (its bandwidth-delay product), so a client feels the distance:
//! per-request round trips, the rate, and back-pressure.
//!
//! Why a relay and not `tc netem` in a network namespace: this machine's kernel has no netem
//! qdisc (`tc qdisc add … netem` answers "Specified qdisc kind is unknown") and no modules to
//! load one. The relay differs from a real link in one way: TCP's own slow start and loss
//! recovery happen over loopback, not over the shaped path.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A link's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkShape {
    /// Bits per second, each way.
    pub rate_bits: u64,
    /// The round-trip time, milliseconds.
    pub rtt_ms: u32,
}

impl LinkShape {
    /// Reads `100mbit,30ms` (rate in `kbit`, `mbit` or `gbit`; round trip in `ms`).
    pub fn parse(text: &str) -> Result<LinkShape, String> {
        let bad = || format!("{text:?}: give a link as RATE,RTT, like 100mbit,30ms or 1gbit,5ms");
        let (rate, rtt) = text.split_once(',').ok_or_else(bad)?;
        let rate = rate.trim().to_ascii_lowercase();
        let digits = rate.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = rate.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let scale = match unit {
            "kbit" => 1_000,
            "mbit" => 1_000_000,
            "gbit" => 1_000_000_000,
            _ => return Err(bad()),
        };
        let rtt_ms = rtt
            .trim()
            .strip_suffix("ms")
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        Ok(LinkShape {
            rate_bits: number * scale,
            rtt_ms,
        })
    }

    /// How long a byte takes one way (half the round trip).
    fn one_way(self) -> Duration {
        Duration::from_micros(u64::from(self.rtt_ms) * 500)
    }

    /// How long `bytes` take to go onto the wire.
    fn serialization(self, bytes: usize) -> Duration {
        let bits = u128::try_from(bytes).unwrap_or(u128::MAX) * 8;
        let nanos = bits * 1_000_000_000 / u128::from(self.rate_bits.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The bytes in flight one way: the bandwidth-delay product, at least one chunk.
    fn in_flight(self) -> usize {
        let micros = u128::from(u64::from(self.rtt_ms) * 500);
        let bytes = u128::from(self.rate_bits) / 8 * micros / 1_000_000;
        usize::try_from(bytes).unwrap_or(usize::MAX).max(CHUNK)
    }
}

/// Bytes read and let out at a time.
const CHUNK: usize = 16 * 1024;

/// A running relay, on a thread of its own (so it serves async and blocking callers alike);
/// it stops when dropped.
pub struct ShapedLink {
    /// The port clients connect to instead of the server's.
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShapedLink {
    /// Starts a relay to `127.0.0.1:upstream` shaped as `shape`.
    pub fn start(shape: LinkShape, upstream: u16) -> std::io::Result<ShapedLink> {
        let (ready, port) = std::sync::mpsc::channel::<std::io::Result<u16>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(listener.local_addr().map(|a| a.port()));
                let target = SocketAddr::from(([127, 0, 0, 1], upstream));
                let serve = async move {
                    while let Ok((client, _)) = listener.accept().await {
                        tokio::spawn(relay(shape, client, target));
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        });
        let port = port
            .recv()
            .map_err(|_| std::io::Error::other("the link's thread ended at start"))??;
        Ok(ShapedLink {
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection through the link, both ways.
async fn relay(shape: LinkShape, client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_in, client_out) = client.into_split();
    let (server_in, server_out) = server.into_split();
    tokio::join!(
        carry(shape, client_in, server_out),
        carry(shape, server_in, client_out)
    );
}

/// One direction: each chunk leaves `from` when read, arrives at `to` a one-way delay later,
/// and the link carries one chunk at a time at its rate.
async fn carry(
    shape: LinkShape,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    // Bounded by what is in flight: a full link stops reading, as TCP's window would.
    let slots = shape.in_flight().div_ceil(CHUNK).max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(slots);
    let reader = async move {
        let mut free = Instant::now();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.truncate(n);
            // On the wire after the chunks before it, then a one-way delay to the far end.
            let start = free.max(Instant::now());
            free = start + shape.serialization(n);
            if tx.send((free + shape.one_way(), buf)).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_read_and_sized() {
        let shape = LinkShape::parse("100mbit,30ms").unwrap();
        assert_eq!(
            shape,
            LinkShape {
                rate_bits: 100_000_000,
                rtt_ms: 30
            }
        );
        assert_eq!(shape.one_way(), Duration::from_millis(15));
        // 100 Mbit/s × 15 ms = 187.5 kB one way.
        assert_eq!(shape.in_flight(), 187_500);
        assert_eq!(
            LinkShape::parse("1gbit,5ms").unwrap().rate_bits,
            1_000_000_000
        );
        assert!(LinkShape::parse("100mb,30ms").is_err());
        assert!(LinkShape::parse("100mbit").is_err());
    }

    #[test]
    fn the_relay_carries_every_byte_both_ways_in_order() {
        // An echo server behind a shaped link: what goes through comes back unchanged.
        let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = echo.accept().unwrap();
            let mut back = stream.try_clone().unwrap();
            std::io::copy(&mut stream, &mut back).unwrap();
        });
        let link = ShapedLink::start(LinkShape::parse("1gbit,2ms").unwrap(), port).unwrap();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", link.port)).unwrap();
        let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = client.try_clone().unwrap();
        let receiver = std::thread::spawn(move || {
            let mut got = vec![0u8; 1_000_000];
            std::io::Read::read_exact(&mut reader, &mut got).unwrap();
            got
        });
        std::io::Write::write_all(&mut client, &sent).unwrap();
        assert!(
            receiver.join().unwrap() == sent,
            "the bytes came back as sent"
        );
    }
}
