//! The packages, as an operator installs them: build both, check their contents and
//! metadata, install the .deb on this machine, run the unit's ExecStartPre and
//! ExecStart exactly as written, as the `shardcar` user, shipping a `root:adm 0640`
//! log under /var/log to a local shard server; then remove and purge, checking what
//! stays. It changes the machine (a package, a user, files under /etc, /var): CI runs
//! it on a throwaway one. A test binary of its own, so its release build does not run
//! alongside the timing-sensitive integration tests.

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The oldest glibc the binary may need: Amazon Linux 2's.
const GLIBC_FLOOR: &str = "2.26";

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

/// Owner, group and mode of a path, as `user:group 0640`.
fn owner_and_mode(path: &str) -> String {
    run("stat", &["-c", "%U:%G %a", path]).trim().to_owned()
}

fn unit_value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// Runs a unit command line as the unit's user, groups and environment file would.
fn as_service_user(unit: &str, command: &str) -> Command {
    let user = unit_value(unit, "User")[0];
    let group = unit_value(unit, "Group")[0];
    let mut runuser = Command::new("runuser");
    runuser.args(["-u", user, "-g", group]);
    for extra in unit_value(unit, "SupplementaryGroups") {
        runuser.args(["-G", extra]);
    }
    runuser.arg("--");
    runuser.args(command.split_whitespace());
    runuser
}

#[test]
fn packages_build_install_run_as_the_unit_does_and_uninstall() {
    ensure_tool("rpm", "rpm");
    ensure_tool("systemd-analyze", "systemd");
    ensure_tool("objdump", "binutils");
    // The binary `cargo test` built: every build is linked for the glibc floor, so it is
    // what a release ships, with debug symbols stripped.
    let status = Command::new("bash")
        .arg("packaging/build.sh")
        .env("SHARDCAR_BINARY", env!("CARGO_BIN_EXE_shardcar"))
        .current_dir(root())
        .status()
        .unwrap();
    assert!(status.success(), "packaging/build.sh failed");
    let packages = root().join("target/packages");
    let deb = find(&packages, ".deb");
    let rpm = find(&packages, ".rpm");
    let deb = deb.to_str().unwrap();
    let rpm = rpm.to_str().unwrap();

    // The .deb: contents, dependencies, conffiles.
    let contents = run("dpkg-deb", &["-c", deb]);
    for path in [
        "./usr/bin/shardcar",
        "./etc/shardcar/agent.toml",
        "./etc/default/shardcar",
        "./lib/systemd/system/shardcar.service",
        "./var/lib/shardcar/",
        "./usr/share/doc/shardcar/copyright",
        "./usr/share/doc/shardcar/shardcar-help.txt",
    ] {
        assert!(
            contents.contains(path),
            "{path} missing from the .deb:\n{contents}"
        );
    }
    let depends = run("dpkg-deb", &["-f", deb, "Depends"]);
    assert!(
        depends.contains(&format!("libc6 (>= {GLIBC_FLOOR})")),
        "{depends}"
    );
    assert!(depends.contains("adduser"), "{depends}");
    let control = Command::new("dpkg-deb")
        .args(["-I", deb, "conffiles"])
        .output()
        .unwrap();
    let conffiles = String::from_utf8_lossy(&control.stdout);
    assert!(
        conffiles.contains("/etc/shardcar/agent.toml")
            && conffiles.contains("/etc/default/shardcar")
    );

    // The .rpm: contents, ownership, Requires(pre) for the user's creation.
    let dump = run("rpm", &["-qp", "--dump", rpm]);
    let entry = |path: &str| {
        dump.lines()
            .find(|l| l.split_whitespace().next() == Some(path))
            .unwrap_or_else(|| panic!("{path} not in the .rpm:\n{dump}"))
            .to_owned()
    };
    assert!(
        entry("/etc/shardcar").contains(" root shardcar "),
        "the rpm owns /etc/shardcar"
    );
    assert!(entry("/etc/shardcar/agent.toml").contains("0100640 root shardcar"));
    assert!(entry("/var/lib/shardcar").contains(" shardcar shardcar "));
    entry("/etc/sysconfig/shardcar");
    entry("/usr/lib/systemd/system/shardcar.service");
    let requires = run(
        "rpm",
        &[
            "-qp",
            "--qf",
            "[%{REQUIREFLAGS:deptype} %{REQUIRENAME} %{REQUIREVERSION}\n]",
            rpm,
        ],
    );
    assert!(requires.contains("pre shadow-utils"), "{requires}");
    assert!(
        requires.contains(&format!("glibc {GLIBC_FLOOR}")),
        "{requires}"
    );
    let configs = run("rpm", &["-qp", "--configfiles", rpm]);
    assert!(
        configs.contains("/etc/shardcar/agent.toml") && configs.contains("/etc/sysconfig/shardcar")
    );
    let scripts = run("rpm", &["-qp", "--scripts", rpm]);
    assert!(scripts.contains("useradd --system"), "{scripts}");
    let enables = |text: &str| {
        text.lines().any(|l| {
            l.trim_start().starts_with("systemctl enable")
                || l.trim_start().starts_with("systemctl start")
        })
    };
    assert!(!enables(&scripts), "nothing is enabled without asking");

    // Install on this machine (after any earlier run's leftovers).
    let _ = Command::new("dpkg").args(["--purge", "shardcar"]).output();
    run("dpkg", &["--install", deb]);
    assert_eq!(
        owner_and_mode("/etc/shardcar/agent.toml"),
        "root:shardcar 640"
    );
    assert_eq!(owner_and_mode("/etc/shardcar"), "root:shardcar 750");
    assert_eq!(owner_and_mode("/var/lib/shardcar"), "shardcar:shardcar 750");

    // The installed binary needs no glibc newer than the floor.
    let symbols = run("objdump", &["-T", "/usr/bin/shardcar"]);
    let floor: Vec<u32> = GLIBC_FLOOR.split('.').map(|p| p.parse().unwrap()).collect();
    for version in symbols.split("GLIBC_").skip(1) {
        let version: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap()
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        assert!(
            version <= floor,
            "a symbol needs glibc {version:?}, over {GLIBC_FLOOR}"
        );
    }

    let unit = std::fs::read_to_string("/lib/systemd/system/shardcar.service").unwrap();
    for directive in [
        "Type=notify",
        "User=shardcar",
        "StateDirectory=shardcar",
        "EnvironmentFile=-/etc/default/shardcar",
        "EnvironmentFile=-/etc/sysconfig/shardcar",
        "ExecReload=/usr/bin/shardcar check-config -c /etc/shardcar/agent.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=78",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "SupplementaryGroups=adm",
    ] {
        assert!(unit.contains(directive), "unit lacks {directive}");
    }
    let verify = Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/shardcar.service"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The config as installed passes the unit's ExecStartPre as the service user.
    let check = unit_value(&unit, "ExecStartPre")[0];
    let status = as_service_user(&unit, check).status().unwrap();
    assert!(
        status.success(),
        "{check} fails as the service user on the installed config"
    );

    // A local shard server, and a root:adm 0640 log under /var/log, as on a host.
    let mut server = Command::new("/usr/bin/shardcar")
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--create-stream",
            "app-logs:1",
            "--create-delay-ms",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = format!("http://{}", line.trim().trim_start_matches("listening on "));
    let logs = Path::new("/var/log/shardcar-package-test");
    let _ = std::fs::remove_dir_all(logs);
    std::fs::create_dir_all(logs).unwrap();
    let log = logs.join("app.log");
    std::fs::write(&log, "installed line one\ninstalled line two\n").unwrap();
    run("chown", &["-R", "root:adm", logs.to_str().unwrap()]);
    run("chmod", &["0750", logs.to_str().unwrap()]);
    run("chmod", &["0640", log.to_str().unwrap()]);
    let config = std::fs::read_to_string("/etc/shardcar/agent.toml")
        .unwrap()
        .replace("http://127.0.0.1:4567", &endpoint)
        .replace("/var/log/app/*.log", &format!("{}/*.log", logs.display()))
        .replace("[[flows]]", "[[flows]]\nstart_at = \"start\"");
    std::fs::write("/etc/shardcar/agent.toml", config).unwrap();
    assert_eq!(
        owner_and_mode("/etc/shardcar/agent.toml"),
        "root:shardcar 640"
    );

    let start = unit_value(&unit, "ExecStart")[0];
    assert!(as_service_user(&unit, check).status().unwrap().success());
    let mut agent = as_service_user(&unit, start)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let delivered = wait_for_delivery(&endpoint, 2);
    let _ = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    let status = agent.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut agent.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        delivered,
        "the installed agent did not ship the lines:\n{stderr}"
    );
    // runuser reports the signal it passed on; the agent says how it stopped.
    let _ = status;
    assert!(
        stderr.contains("stopped; final checkpoint written"),
        "the agent did not stop cleanly on SIGTERM:\n{stderr}"
    );
    let checkpoints = std::fs::metadata("/var/lib/shardcar/checkpoints.json").unwrap();
    assert_eq!(
        checkpoints.uid(),
        run("id", &["-u", "shardcar"])
            .trim()
            .parse::<u32>()
            .unwrap(),
        "checkpoints belong to the service user"
    );
    let _ = server.kill();
    let _ = server.wait();

    // Remove keeps the config and the checkpoints; purge takes both and the user.
    run("dpkg", &["--remove", "shardcar"]);
    assert!(!Path::new("/usr/bin/shardcar").exists());
    assert!(
        Path::new("/etc/shardcar/agent.toml").exists(),
        "remove keeps the config"
    );
    assert!(
        Path::new("/var/lib/shardcar/checkpoints.json").exists(),
        "remove keeps checkpoints"
    );
    run("dpkg", &["--purge", "shardcar"]);
    assert!(
        !Path::new("/etc/shardcar").exists(),
        "purge removes the config"
    );
    assert!(
        !Path::new("/var/lib/shardcar").exists(),
        "purge removes the checkpoints"
    );
    assert!(
        !Command::new("id")
            .arg("shardcar")
            .output()
            .unwrap()
            .status
            .success(),
        "purge removes the user"
    );
    let _ = std::fs::remove_dir_all(logs);
}

/// Reads the stream back with `shardcar consume`, from the build tree's binary (the
/// installed one goes with the package).
fn wait_for_delivery(endpoint: &str, lines: usize) -> bool {
    let binary = env!("CARGO_BIN_EXE_shardcar");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let output = Command::new(binary)
            .args([
                "consume",
                "app-logs",
                "--endpoint-url",
                endpoint,
                "--region",
                "us-east-1",
            ])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        if text
            .lines()
            .filter(|l| l.contains("installed line"))
            .count()
            >= lines
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
