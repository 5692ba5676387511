//! The agent end to end: real files, real rotations, the real server.

use std::time::Duration;

use crate::agent_support::{Setup, append, copy_truncate, lines, parse_config};

#[tokio::test(flavor = "multi_thread")]
async fn nested_directories_with_double_star_and_exclude() {
    let setup = Setup::new(2).await;
    let logs = setup.logs();
    let mut expected = Vec::new();
    for (i, dir) in ["", "a", "a/b", "c/d/e"].iter().enumerate() {
        let path = logs.join(dir);
        std::fs::create_dir_all(&path).unwrap();
        let batch = lines(&format!("file{i}"), 200);
        append(&path.join("app.log"), &batch);
        expected.extend(batch);
        append(&path.join("app.log.gz"), &lines("compressed", 10));
    }
    append(&logs.join("a/skip.log"), &lines("excluded", 50));
    let agent = setup
        .start(setup.config(&["**/*.log"], &["**/skip.log"], ""))
        .await;
    // Files created while running are found too.
    std::fs::create_dir_all(logs.join("late/dir")).unwrap();
    let late = lines("late", 100);
    append(&logs.join("late/dir/new.log"), &late);
    expected.extend(late);
    let arrived = setup.wait_for(&expected, Duration::from_secs(30)).await;
    assert!(
        arrived
            .keys()
            .all(|l| !l.starts_with(b"excluded") && !l.starts_with(b"compressed"))
    );
    assert_eq!(arrived.len(), expected.len());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_and_create_rotation_loses_nothing() {
    let setup = Setup::new(2).await;
    let path = setup.logs().join("app.log");
    let before = lines("before", 500);
    append(&path, &before);
    let agent = setup.start(setup.config(&["app.log"], &[], "")).await;
    setup.wait_for(&before, Duration::from_secs(20)).await;
    let during = lines("during", 500);
    append(&path, &during[..250]);
    std::fs::rename(&path, setup.logs().join("app.log.1")).unwrap();
    // The application keeps writing to its open file for a moment, then reopens.
    append(&setup.logs().join("app.log.1"), &during[250..]);
    let after = lines("after", 500);
    append(&path, &after);
    let all: Vec<Vec<u8>> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .cloned()
        .collect();
    let arrived = setup.wait_for(&all, Duration::from_secs(30)).await;
    assert!(arrived.values().all(|&n| n == 1), "no duplicates");
    assert!(agent.flow_stats("test").unwrap().rotations >= 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_rotation_reads_the_file_again_from_the_start() {
    let setup = Setup::new(1).await;
    let path = setup.logs().join("app.log");
    let before = lines("before", 300);
    append(&path, &before);
    let agent = setup.start(setup.config(&["app.log"], &[], "")).await;
    setup.wait_for(&before, Duration::from_secs(20)).await;
    // copytruncate: copy away, truncate in place, keep writing.
    copy_truncate(&path, &setup.logs().join("app.log.1"));
    let after = lines("after", 300);
    append(&path, &after);
    setup.wait_for(&after, Duration::from_secs(20)).await;
    assert_eq!(agent.flow_stats("test").unwrap().truncations, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_deleted_while_open_is_finished() {
    let setup = Setup::new(1).await;
    let path = setup.logs().join("app.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let agent = setup.start(setup.config(&["app.log"], &[], "")).await;
    use std::io::Write;
    let first = lines("first", 100);
    for line in &first {
        file.write_all(line).unwrap();
        file.write_all(b"\n").unwrap();
    }
    // The agent has the file open once its first lines arrived; then it is deleted.
    setup.wait_for(&first, Duration::from_secs(20)).await;
    std::fs::remove_file(&path).unwrap();
    let more = lines("after-delete", 100);
    for line in &more {
        file.write_all(line).unwrap();
        file.write_all(b"\n").unwrap();
    }
    let all: Vec<Vec<u8>> = first.iter().chain(&more).cloned().collect();
    setup.wait_for(&all, Duration::from_secs(20)).await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_stop_and_start_sends_nothing_twice() {
    let setup = Setup::new(2).await;
    let path = setup.logs().join("app.log");
    let config = setup.config(&["*.log"], &[], "");
    let first = lines("first", 2000);
    append(&path, &first);
    let agent = setup.start(config.clone()).await;
    setup.wait_for(&first, Duration::from_secs(20)).await;
    agent.stop().await;
    let second = lines("second", 2000);
    append(&path, &second);
    append(&setup.logs().join("other.log"), &lines("other", 10));
    let agent = setup.start(config).await;
    let mut all: Vec<Vec<u8>> = first.iter().chain(&second).cloned().collect();
    all.extend(lines("other", 10));
    let arrived = setup.wait_for(&all, Duration::from_secs(20)).await;
    agent.stop().await;
    let twice: Vec<_> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} lines arrived twice", twice.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_while_stopped_are_found_by_identity() {
    let setup = Setup::new(1).await;
    let path = setup.logs().join("app.log");
    let config = setup.config(&["app.log"], &[], "");
    let first = lines("first", 100);
    append(&path, &first);
    let agent = setup.start(config.clone()).await;
    setup.wait_for(&first, Duration::from_secs(20)).await;
    agent.stop().await;
    // While stopped: more lines, then two rotations.
    let unread = lines("unread", 100);
    append(&path, &unread);
    std::fs::rename(&path, setup.logs().join("app.log.1")).unwrap();
    let middle = lines("middle", 100);
    append(&path, &middle);
    std::fs::rename(
        setup.logs().join("app.log.1"),
        setup.logs().join("app.log.2"),
    )
    .unwrap();
    std::fs::rename(&path, setup.logs().join("app.log.1")).unwrap();
    let newest = lines("newest", 100);
    append(&path, &newest);
    let agent = setup.start(config).await;
    // The checkpointed file is finished under its new name; the current file is read
    // from its start. ("middle" lives in a file the agent never saw: app.log.1 is not
    // included, and it is not the checkpointed file, so it is not read.)
    let expected: Vec<Vec<u8>> = unread.iter().chain(&newest).cloned().collect();
    let arrived = setup.wait_for(&expected, Duration::from_secs(20)).await;
    assert!(arrived.values().all(|&n| n == 1));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn awkward_input_is_handled_and_counted() {
    let setup = Setup::new(1).await;
    let logs = setup.logs();
    std::fs::write(logs.join("crlf.log"), b"windows line\r\nsecond\r\n").unwrap();
    std::fs::write(logs.join("binary.log"), b"\xff\xfe\x00binary\n").unwrap();
    std::fs::write(logs.join("empty.log"), b"").unwrap();
    std::fs::write(logs.join("partial.log"), b"no newline yet").unwrap();
    let big = vec![b'z'; 5 * 1024 * 1024];
    std::fs::write(logs.join("big.log"), [&big[..], b"\nafter big\n"].concat()).unwrap();
    std::fs::create_dir(logs.join("dir.log")).unwrap();
    std::fs::write(logs.join("secret.log"), b"hidden\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        logs.join("secret.log"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let running_as_root = std::fs::read(logs.join("secret.log")).is_ok();

    let agent = setup
        .start(setup.config(
            &["*.log"],
            &[],
            "max_record_bytes = 1048000\noversize = \"split\"",
        ))
        .await;
    std::fs::write(logs.join("grows.log"), b"").unwrap();
    append(&logs.join("grows.log"), &[b"grew".to_vec()]);
    let expected: Vec<Vec<u8>> = vec![
        b"windows line".to_vec(),
        b"second".to_vec(),
        b"\xff\xfe\x00binary".to_vec(),
        b"no newline yet".to_vec(),
        b"after big".to_vec(),
        b"grew".to_vec(),
    ];
    setup.wait_for(&expected, Duration::from_secs(30)).await;
    // The 5 MB line arrives split into pieces of at most max_record_bytes, all of it
    // (at a shard's 1 MiB/s, it takes a few seconds).
    let marker = shardcar::config::DEFAULT_SPLIT_MARKER.as_bytes();
    let piece = |l: &[u8]| -> Vec<u8> { l.strip_suffix(marker).unwrap_or(l).to_vec() };
    let big_bytes = |arrived: &std::collections::HashMap<Vec<u8>, usize>| -> usize {
        arrived
            .iter()
            .map(|(l, n)| (piece(l), n))
            .filter(|(l, _)| !l.is_empty() && l.iter().all(|&b| b == b'z'))
            .map(|(l, n)| l.len() * n)
            .sum()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let arrived = loop {
        let arrived = setup.arrived().await;
        if big_bytes(&arrived) >= big.len() || std::time::Instant::now() > deadline {
            break arrived;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        big_bytes(&arrived),
        big.len(),
        "the 5 MB line arrived split, whole"
    );
    assert!(arrived.keys().all(|l| l.len() <= 1_048_000));
    let stats = agent.flow_stats("test").unwrap();
    assert_eq!(stats.oversize_records, 1);
    if !running_as_root {
        assert!(stats.unreadable_files >= 1);
        assert!(!arrived.contains_key(b"hidden".as_slice()));
    }
    agent.stop().await;
}

/// A reader held back by a full in-flight budget is behind, not idle: the line it
/// stopped in the middle of is completed by its next read, never sent in two pieces
/// because the partial-line timeout passed while it waited.
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_waiting_on_the_budget_never_splits_a_line() {
    let setup = Setup::new(2).await;
    let path = setup.logs().join("app.log");
    // About 12 MB: each read turn (4 MiB) and read chunk ends inside a line.
    let expected = lines("backlog", 200_000);
    append(&path, &expected);
    let defaults = setup.config_text(&["app.log"], &[], "");
    let timeout = "flush_partial_line_after_ms = 300";
    assert!(defaults.contains(timeout), "the setting this test lowers");
    let text = defaults
        .replace("[agent]\n", "[agent]\nmax_in_flight_bytes = 1048576\n")
        .replace(timeout, "flush_partial_line_after_ms = 1");
    let agent = setup.start(parse_config(&text)).await;
    let arrived = setup.wait_for(&expected, Duration::from_secs(60)).await;
    let whole: std::collections::HashSet<&Vec<u8>> = expected.iter().collect();
    let fragments: Vec<String> = arrived
        .keys()
        .filter(|l| !whole.contains(l))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(fragments.is_empty(), "lines sent in pieces: {fragments:?}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_truncate_and_skip_are_counted() {
    let setup = Setup::new(1).await;
    let logs = setup.logs();
    let long = vec![b'q'; 3000];
    std::fs::write(logs.join("t.log"), [&long[..], b"\nshort\n"].concat()).unwrap();
    let config = setup.config(
        &["t.log"],
        &[],
        "max_record_bytes = 1000\noversize = \"truncate\"",
    );
    let agent = setup.start(config).await;
    let arrived = setup
        .wait_for(
            &[b"short".to_vec(), vec![b'q'; 1000]],
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(arrived.len(), 2);
    assert_eq!(agent.flow_stats("test").unwrap().oversize_records, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transforms_and_partition_keys_apply_to_the_sent_records() {
    let setup = Setup::new(4).await;
    let logs = setup.logs();
    std::fs::write(
        logs.join("access.log"),
        b"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /a HTTP/1.0\" 200 2326 \"-\" \"curl\"\nnot apache\n",
    )
    .unwrap();
    let extra = "transforms = [\"log_to_json:combined_apache\", \"add_metadata\"]\npartition_key = { json_pointer = \"/host\" }";
    let agent = setup.start(setup.config(&["access.log"], &[], extra)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let records = loop {
        let (users, _) = crate::support::kcl_user_records(
            &crate::support::read_stream(&setup.client, "logs").await,
        );
        if users.len() >= 2 || std::time::Instant::now() > deadline {
            break users;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(records.len(), 2);
    let parsed: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, u)| serde_json::from_slice(&u.data).unwrap())
        .collect();
    let apache = parsed.iter().find(|v| v.get("request").is_some()).unwrap();
    assert_eq!(
        apache["host"], "127.0.0.1",
        "the parsed client address survives"
    );
    assert_eq!(apache["response"], "200");
    assert!(
        apache["metadata"]["file"]
            .as_str()
            .unwrap()
            .ends_with("access.log")
    );
    let apache_key = records
        .iter()
        .find(|(_, u)| u.data.windows(7).any(|w| w == b"request"))
        .unwrap();
    assert_eq!(
        apache_key.1.partition_key, "127.0.0.1",
        "key from /host, the client address"
    );
    let stats = agent.flow_stats("test").unwrap();
    assert_eq!(
        stats.transform_failures, 1,
        "the non-apache line went raw into add_metadata"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_changes_and_removes_flows_without_losing_lines() {
    let setup = Setup::new(2).await;
    let logs = setup.logs();
    let first = lines("a-first", 300);
    append(&logs.join("a.log"), &first);
    let config_a = setup.config(&["a.log"], &[], "");
    let mut agent = setup.start(config_a.clone()).await;
    setup.wait_for(&first, Duration::from_secs(20)).await;

    // Change flow "test" (its partition key) and add a second flow over b.log.
    let mut changed = setup.config(&["a.log"], &[], "partition_key = \"file\"");
    let mut second = setup.config(&["b.log"], &[], "").flows.remove(0);
    second.name = "second".into();
    changed.flows.push(second);
    let during = lines("a-during", 300);
    append(&logs.join("a.log"), &during);
    agent.reload(changed).await.unwrap();
    let b_lines = lines("b", 300);
    append(&logs.join("b.log"), &b_lines);
    let after = lines("a-after", 300);
    append(&logs.join("a.log"), &after);
    let all: Vec<Vec<u8>> = first
        .iter()
        .chain(&during)
        .chain(&after)
        .chain(&b_lines)
        .cloned()
        .collect();
    let arrived = setup.wait_for(&all, Duration::from_secs(20)).await;
    assert!(
        arrived.values().all(|&n| n == 1),
        "a reload sends nothing twice"
    );
    assert!(agent.flow_stats("second").is_some());

    // Remove the second flow again.
    agent.reload(config_a).await.unwrap();
    assert!(agent.flow_stats("second").is_none());
    let last = lines("a-last", 100);
    append(&logs.join("a.log"), &last);
    setup.wait_for(&last, Duration::from_secs(20)).await;
    agent.stop().await;
}

/// File events only speed reading up: with none at all (a filesystem without them, or
/// events lost), scans and polls alone read appends and find new files.
#[tokio::test(flavor = "multi_thread")]
async fn without_file_events_scans_alone_read_appends_and_new_files() {
    let setup = Setup::new(1).await;
    let log = setup.logs().join("app.log");
    let first = lines("first", 100);
    append(&log, &first);
    let agent = setup
        .start_with(
            setup.config(&["*.log"], &[], ""),
            shardcar::agent::RunOptions {
                file_events: shardcar::agent::FileEvents::Off,
                ..Default::default()
            },
        )
        .await;
    setup.wait_for(&first, Duration::from_secs(30)).await;
    // Appends once the first lines are in, and a file that appears while running.
    let later = lines("later", 100);
    append(&log, &later);
    let other = lines("other", 50);
    append(&setup.logs().join("other.log"), &other);
    let all: Vec<Vec<u8>> = first.iter().chain(&later).chain(&other).cloned().collect();
    let arrived = setup.wait_for(&all, Duration::from_secs(30)).await;
    assert!(arrived.values().all(|n| *n == 1), "each line once");
    agent.stop().await;
}
