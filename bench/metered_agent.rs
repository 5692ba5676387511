//! `shardcar run` as a child process with its metrics page on a free port, for the
//! benchmarks that read its counters (lines acknowledged, records sent, calls).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::agent_files::Process;

/// A port free now, for the agent's metrics endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Agent {
    pub process: Process,
    #[allow(dead_code)] // read by `counter`, which agent_load does not use
    metrics_port: u16,
}

/// Writes `dir/agent.toml` (its `[agent]` section with the state directory and the
/// metrics address, then `rest`) and starts `BIN run` on it.
pub fn spawn(bin: &str, dir: &Path, rest: &str) -> Agent {
    let config = dir.join("agent.toml");
    let metrics_port = free_port();
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n{rest}",
            dir.join("state").display()
        ),
    )
    .expect("config");
    let process = Process(
        Command::new(bin)
            .args(["run", "-c", config.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("agent"),
    );
    Agent {
        process,
        metrics_port,
    }
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// The sum of every sample of a counter on the agent's /metrics page.
    #[allow(dead_code)] // agent_load counts acknowledged bytes in the checkpoints
    pub fn counter(&self, name: &str) -> f64 {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return 0.0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let mut page = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut page);
        page.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}
