//! `shardcar server` as a child process, for the benchmark programs that drive it.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

pub struct ServerProcess {
    pub child: Child,
    pub endpoint: String,
}

/// Starts `BIN server --listen LISTEN --create-delay-ms 0 ARGS...` and waits until it
/// prints the address it listens on.
pub fn start_server(bin: &str, listen: &str, args: &[&str]) -> ServerProcess {
    let mut child = Command::new(bin)
        .args(["server", "--listen", listen, "--create-delay-ms", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn shardcar server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line.trim().trim_start_matches("listening on ").to_owned();
    ServerProcess {
        child,
        endpoint: format!("http://{addr}"),
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this build of the server terminates TLS itself (`--tls-self-signed`).
#[allow(dead_code)] // only the benchmarks with TLS rows ask
pub fn has_tls(bin: &str) -> bool {
    Command::new(bin)
        .args(["server", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--tls-self-signed"))
        .unwrap_or(false)
}
