//! Running the example binaries as users do: real processes on loopback ports, their stdout read
//! line by line.

#![allow(dead_code)] // each test file uses part of this

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running receiver process, killed (SIGKILL) when dropped.
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) stdout: Receiver<String>,
    /// Kept so the reader thread keeps draining the pipe and the child never blocks on it.
    pub(crate) stderr: Receiver<String>,
    /// Stderr lines printed before the server listened.
    pub(crate) banner: Vec<String>,
    pub(crate) url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `bin` with `env` in `dir` on a free port and waits until it listens.
    pub(crate) fn start(bin: &str, dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env_remove("REPLICATE_WEBHOOK_STORE")
            .env_remove("REPLICATE_WEBHOOK_SECRET")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let banner = wait_for(&stderr, "listening on");
        Self {
            child,
            stdout,
            stderr,
            banner,
            url: format!("http://127.0.0.1:{port}/webhooks/replicate"),
        }
    }

    /// Kills the process with SIGKILL, as a crash or `kill -9` would.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every stdout line printed until `quiet` passes without a new one.
    pub(crate) fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(quiet) {
            seen.push(line);
        }
        seen
    }
}

pub(crate) fn lines(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines up to and including the first one containing `needle`.
pub(crate) fn wait_for(rx: &Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line containing {needle:?} in {seen:?}: {e}"),
        }
    }
}
