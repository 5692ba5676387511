//! What the agent benchmarks share: the agent as a child process, log files of
//! 200-byte lines, and how much of them Kinesis acknowledged (the checkpoints).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};

/// A child process, sent SIGTERM (a clean stop) and waited for when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Sum of checkpointed offsets (what Kinesis acknowledged).
#[allow(dead_code)] // the Firehose benchmark counts acknowledged lines on /metrics
pub fn acknowledged(dir: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(dir.join("state/checkpoints.json")) else {
        return 0;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    value["files"].as_array().map_or(0, |files| {
        files.iter().filter_map(|f| f["offset"].as_u64()).sum()
    })
}

/// `files` files `app-N.log` of numbered 200-byte lines, `bytes_each` bytes each
/// (rounded up to a line); returns the bytes written.
pub fn write_files(dir: &Path, files: usize, bytes_each: u64) -> u64 {
    let mut line = vec![b'x'; 199];
    line.push(b'\n');
    let mut total = 0;
    for f in 0..files {
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dir.join(format!("app-{f}.log"))).expect("create"),
        );
        let mut written = 0;
        let mut n = 0u64;
        while written < bytes_each {
            let id = format!("{f:02}-{n:012} ");
            line[..id.len()].copy_from_slice(id.as_bytes());
            out.write_all(&line).expect("write");
            written += line.len() as u64;
            n += 1;
        }
        total += written;
    }
    total
}
