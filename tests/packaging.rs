//! The packages, as an operator installs them: build both, check their contents and
//! metadata, verify the systemd unit, and run the binary from an unpacked .deb on
//! the config it ships. A test binary of its own, so its release build does not run
//! alongside the timing-sensitive integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Installs a Debian package providing `tool` when it is missing.
fn ensure_tool(tool: &str, package: &str) {
    let present = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        run("apt-get", &["install", "-y", "-q", package]);
    }
}

fn find(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

#[test]
fn packages_build_install_and_run() {
    ensure_tool("rpm", "rpm");
    ensure_tool("systemd-analyze", "systemd");
    run("bash", &["packaging/build.sh"]);
    let packages = root().join("target/packages");
    let deb = find(&packages, ".deb");
    let rpm = find(&packages, ".rpm");
    let deb = deb.to_str().unwrap();
    let rpm = rpm.to_str().unwrap();

    let contents = run("dpkg-deb", &["-c", deb]);
    for path in [
        "./usr/bin/shardcar",
        "./etc/shardcar/agent.toml",
        "./lib/systemd/system/shardcar.service",
        "./usr/share/doc/shardcar/copyright",
        "./usr/share/doc/shardcar/shardcar-help.txt",
    ] {
        assert!(
            contents.contains(path),
            "{path} missing from the .deb:\n{contents}"
        );
    }
    let info = run("dpkg-deb", &["-I", deb]);
    assert!(info.contains("Package: shardcar"));
    assert!(
        info.contains("adduser"),
        "depends on adduser for the system user"
    );
    let conffiles = run("dpkg-deb", &["-f", deb, "Package"]);
    assert_eq!(conffiles.trim(), "shardcar");
    let control = Command::new("dpkg-deb")
        .args(["--ctrl-tarfile", deb])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&control.stdout).contains("conffiles"));

    let listed = run("rpm", &["-qpl", rpm]);
    for path in [
        "/usr/bin/shardcar",
        "/etc/shardcar/agent.toml",
        "/usr/lib/systemd/system/shardcar.service",
        "/usr/share/licenses/shardcar/LICENSE",
    ] {
        assert!(
            listed.contains(path),
            "{path} missing from the .rpm:\n{listed}"
        );
    }
    assert!(run("rpm", &["-qpi", rpm]).contains("Name        : shardcar"));
    assert!(run("rpm", &["-qp", "--configfiles", rpm]).contains("/etc/shardcar/agent.toml"));
    let scripts = run("rpm", &["-qp", "--scripts", rpm]);
    assert!(scripts.contains("useradd --system"), "{scripts}");
    let enables = |text: &str| {
        text.lines().any(|l| {
            l.trim_start().starts_with("systemctl enable")
                || l.trim_start().starts_with("systemctl start")
        })
    };
    assert!(!enables(&scripts), "nothing is enabled without asking");

    // Unpack the .deb into a throwaway root and use what it installed.
    let unpacked = tempfile::tempdir().unwrap();
    let target = unpacked.path().to_str().unwrap();
    run("dpkg-deb", &["-x", deb, target]);
    let binary = unpacked.path().join("usr/bin/shardcar");
    let binary = binary.to_str().unwrap();
    assert!(run(binary, &["--version"]).starts_with("shardcar "));
    let config = unpacked.path().join("etc/shardcar/agent.toml");
    assert!(run(binary, &["check-config", "-c", config.to_str().unwrap()]).contains(": ok"));

    let unit = std::fs::read_to_string(unpacked.path().join("lib/systemd/system/shardcar.service"))
        .unwrap();
    for directive in [
        "Type=notify",
        "User=shardcar",
        "StateDirectory=shardcar",
        "ExecStartPre=/usr/bin/shardcar check-config",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=78",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "SupplementaryGroups=adm",
    ] {
        assert!(unit.contains(directive), "unit lacks {directive}");
    }
    // Verify the unit against this system's systemd, pointing it at the unpacked binary.
    let checked = unpacked.path().join("shardcar.service");
    std::fs::write(&checked, unit.replace("/usr/bin/shardcar", binary)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&checked)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let postinst = std::fs::read_to_string(root().join("packaging/debian/postinst")).unwrap();
    assert!(!enables(&postinst), "nothing is enabled without asking");
}
