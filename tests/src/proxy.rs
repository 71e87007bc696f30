//! A TCP proxy in front of a real server that a test can take down, stall and bring back, to
//! see what the receiver does while its store is unreachable or slow.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every byte both ways.
    Up,
    /// Closes every connection, open or new: a server that is down.
    Down,
    /// Accepts connections and never answers: a server that hangs.
    Stall,
}

/// A proxy on 127.0.0.1 in front of `target`.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Up);
        let mode = Arc::new(mode);
        let modes = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, target, modes.subscribe()));
            }
        });
        Self { addr, mode }
    }

    /// Switches every connection, open or new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn serve(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
    match current {
        Mode::Down => {}
        Mode::Stall => {
            // Hold the connection, unanswered, until the mode changes; then drop it.
            let _ = mode.changed().await;
        }
        Mode::Up => {
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                // Any change ends the connection: the client must reconnect through the new mode.
                _ = mode.changed() => {}
            }
        }
    }
}
