//! `check-config` as the real binary, and the shipped example config.

use crate::support::{data_path, shardcar};

fn example_path() -> std::path::PathBuf {
    data_path("../../agent.toml.example")
}

#[test]
fn the_example_config_is_valid() {
    let path = example_path();
    let output = shardcar(&["check-config", "-c", path.to_str().unwrap()], b"");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(": ok"));
}

#[test]
fn three_mistakes_are_all_named_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        r#"
[agent]
shutdown_grace_period_secs = 99999

[[flows]]
include = ["/var/log/*.log"]
stream = "app logs"
oversize = "chop"
"#,
    )
    .unwrap();
    let output = shardcar(&["check-config", "-c", path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(
        stderr.contains("agent.shutdown_grace_period_secs = 99999: must be between 0 and 3600"),
        "{stderr}"
    );
    assert!(
        stderr.contains("flows[0].stream = \"app logs\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "flows[0].oversize = \"chop\": must be one of \"split\", \"truncate\", \"skip\""
        ),
        "{stderr}"
    );
}

#[test]
fn unreadable_and_malformed_configs_exit_78() {
    let missing = shardcar(&["check-config", "-c", "/nonexistent/agent.toml"], b"");
    assert_eq!(missing.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/agent.toml"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "[[flows]\ninclude = ").unwrap();
    let broken = shardcar(&["check-config", "-c", path.to_str().unwrap()], b"");
    assert_eq!(broken.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("not valid TOML"));
}
