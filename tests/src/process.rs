//! Running the example binaries as users do: real processes on loopback ports, their stdout read
//! line by line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running receiver process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Process {
    /// The process.
    pub child: Child,
    /// Its stdout, a line at a time.
    pub stdout: Receiver<String>,
    /// Its stderr after the banner; the reader thread keeps draining the pipe so the child never
    /// blocks on it.
    pub stderr: Receiver<String>,
    /// Stderr lines printed up to "listening on".
    pub banner: Vec<String>,
    /// `http://127.0.0.1:<port>/webhooks/replicate`.
    pub url: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `bin` with `env` in `dir` on a free port (`BIND`) and waits until it says it listens.
    pub fn start(bin: &str, dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(bin, &[], dir, env)
    }

    /// Like [`Process::start`], with command-line arguments.
    pub fn start_with_args(bin: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(dir)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env_remove("REPLICATE_WEBHOOK_STORE")
            .env_remove("REPLICATE_WEBHOOK_SECRET")
            .env_remove("REPLICATE_WEBHOOK_INBOX")
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
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Kills the process with SIGKILL, as a crash or `kill -9` would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every stdout line printed until `quiet` passes without a new one.
    pub fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(quiet) {
            seen.push(line);
        }
        seen
    }
}

/// The lines `reader` yields, read on a thread of their own.
pub fn lines(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
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

/// A loopback port free when asked.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines up to and including the first one containing `needle`.
pub fn wait_for(rx: &Receiver<String>, needle: &str) -> Vec<String> {
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
