//! The AWS SDK for JavaScript v3, installed from npm under the target directory,
//! against the real binary with signatures verified.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::ServerProcess;

/// A directory with `@aws-sdk/client-kinesis` installed, made once.
fn js_env() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("aws-js");
        if !dir.join("node_modules/@aws-sdk/client-kinesis").exists() {
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            let installed = Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg("@aws-sdk/client-kinesis")
                .status()
                .unwrap_or_else(|e| panic!("run npm: {e}"));
            assert!(
                installed.success(),
                "npm install @aws-sdk/client-kinesis failed (the npm registry must be reachable)"
            );
        }
        dir
    })
    .clone()
}

/// Runs `tests/js/SCRIPT` with Node against a server that verifies signatures;
/// returns what it printed.
fn run_js(script: &str) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, "AKIDJS js-secret\n").unwrap_or_else(|e| panic!("{e}"));
    let server = ServerProcess::start(&[
        "--credentials-file",
        credentials.to_str().unwrap_or_default(),
        "--create-delay-ms",
        "0",
    ]);
    let env = js_env();
    // Node resolves packages next to the script: run a copy inside the npm directory.
    let copy = env.join(script);
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/js")
            .join(script),
        &copy,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new("node")
        .arg(&copy)
        .args([server.endpoint.as_str(), "AKIDJS", "js-secret"])
        .output()
        .unwrap_or_else(|e| panic!("run node: {e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_javascript_sdk_signs_over_http2_and_round_trips_records() {
    assert!(run_js("roundtrip.mjs").contains("js sdk ok"));
}

/// A consumer registered through the JS SDK gets records pushed by SubscribeToShard
/// over HTTP/2, live and across a split (`tests/js/subscribe.mjs`).
#[test]
fn the_javascript_sdk_subscribes_over_http2_and_follows_a_split() {
    assert!(run_js("subscribe.mjs").contains("js efo ok"));
}
