//! Shared by the example tests: the simulator, served in this process on 127.0.0.1.

use std::net::TcpListener;
use std::time::Duration;

use replicate_webhook_cli::simulator;

/// Serves `config` on a free loopback port in a thread of its own; returns once it listens.
pub(crate) fn serve_simulator(config: simulator::Config) -> simulator::Running {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (server, running) = simulator::serve(config, listener).unwrap();
            tx.send(running).unwrap();
            server.await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}
