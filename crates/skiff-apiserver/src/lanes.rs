//! Client connections served on "lanes": one single-threaded runtime per core, each owning the
//! connections handed to it, instead of on the process's work-stealing runtime.
//!
//! Why: a request that writes waits for the store's writer thread, and the writer's answer wakes
//! the request's task from outside the runtime. On the work-stealing runtime that wake unparks a
//! worker, and a worker that finds work after being unparked wakes another one to look for more
//! (tokio's hand-off to a searching worker), so every write woke two threads where one would do.
//! A lane is one thread: the answer wakes it and only it. Connections are dealt to the lanes in
//! turn, so several clients still use every core; the controllers, the scheduler and the embedded
//! node agent stay on the shared runtime.
//!
//! The cost: a lane does not lend its connections to an idle one, so a long request (a large list)
//! holds up the other requests of its lane, as it would in any thread-per-core server.

use std::future::Future;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The lanes' doors: connections are dealt to them in turn. Dropping it ends the lanes, and with
/// them the connections they serve.
pub(crate) struct Lanes {
    doors: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
    next: usize,
}

impl Lanes {
    /// Starts `count` lanes (at least one), each running `serve` for every connection it is handed.
    pub fn start<F, Fut>(count: usize, serve: F) -> std::io::Result<Lanes>
    where
        F: Fn(TcpStream) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut doors = Vec::new();
        for lane in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (door, mut arrivals) = mpsc::unbounded_channel::<std::net::TcpStream>();
            let serve = serve.clone();
            std::thread::Builder::new().name(format!("skiff-api-lane-{lane}")).spawn(move || {
                runtime.block_on(async move {
                    while let Some(tcp) = arrivals.recv().await {
                        match TcpStream::from_std(tcp) {
                            Ok(tcp) => {
                                tokio::spawn(serve(tcp));
                            }
                            Err(e) => tracing::warn!(error = %e, lane, "cannot take a connection"),
                        }
                    }
                });
            })?;
            doors.push(door);
        }
        Ok(Lanes { doors, next: 0 })
    }

    /// Hands `tcp` to the next lane.
    pub fn hand(&mut self, tcp: TcpStream) {
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a connection to a lane");
                return;
            }
        };
        let lane = self.next % self.doors.len();
        self.next = self.next.wrapping_add(1);
        if self.doors[lane].send(tcp).is_err() {
            tracing::error!(lane, "a connection lane has stopped; the connection is dropped");
        }
    }
}

/// One lane per core the process may use.
pub(crate) fn per_core() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair on loopback: the accepted end and the client's.
    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (accepted.expect("accept").0, client.expect("connect"))
    }

    #[tokio::test]
    async fn connections_are_dealt_to_the_lanes_in_turn_and_end_with_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (seen, mut served) = mpsc::unbounded_channel::<String>();
        // Each connection reports the thread serving it, then stays open until its lane ends.
        let serve = move |tcp: TcpStream| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(std::thread::current().name().unwrap_or_default().to_owned());
                std::future::pending::<()>().await;
                drop(tcp);
            }
        };
        let mut lanes = Lanes::start(2, serve).expect("lanes");
        let mut clients = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (accepted, client) = pair(&listener).await;
            lanes.hand(accepted);
            clients.push(client);
            let name = tokio::time::timeout(Duration::from_secs(10), served.recv()).await.expect("served in time");
            threads.push(name.expect("a thread name"));
        }
        assert_eq!(threads, ["skiff-api-lane-0", "skiff-api-lane-1", "skiff-api-lane-0", "skiff-api-lane-1"]);

        drop(lanes);
        for mut client in clients {
            let mut buf = [0u8; 1];
            let read =
                tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await.expect("closed in time");
            assert!(matches!(read, Ok(0) | Err(_)), "the lane's end closes its connections: {read:?}");
        }
    }
}
