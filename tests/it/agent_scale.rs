//! The agent at scale: many shards, many files, and the safety net behind file
//! events. Correctness only; the costs are `bench/scale.sh`'s.

use std::time::{Duration, Instant};

use shardcar::agent::{FileEvents, RunOptions};

use crate::agent_support::{Setup, append, lines, parse_config};
use crate::support::{kcl_user_records, read_stream};

/// A 500-shard stream, two flows into it: one leaves keys to the producer (which fills
/// one shard's aggregate at a time), one keys every line by its hash (so 500
/// aggregates fill at once, and a small budget makes the producer seal them under
/// pressure). Every line arrives once, and no aggregate holds a record outside its
/// shard's hash-key range (a KCL would drop it).
#[tokio::test(flavor = "multi_thread")]
async fn a_500_shard_stream_gets_every_line_once_with_every_aggregate_inside_its_shard() {
    let setup = Setup::new(500).await;
    let spread = lines("spread", 40_000);
    let keyed = lines("keyed", 40_000);
    append(&setup.logs().join("spread.log"), &spread);
    append(&setup.logs().join("keyed.log"), &keyed);
    let text = setup
        .config_text(&["spread.log"], &[], "")
        .replace(
            "shutdown_grace_period_secs = 10",
            "shutdown_grace_period_secs = 10\nmax_in_flight_bytes = 1048576",
        )
        .replace("linger_ms = 20", "linger_ms = 1000");
    let text = format!(
        "{text}\n[[flows]]\nname = \"keyed\"\nstream = \"logs\"\nstart_at = \"start\"\ninclude = [\"{}\"]\npartition_key = \"line_hash\"\n[flows.aggregation]\nlinger_ms = 1000\n",
        setup.logs().join("keyed.log").display()
    );
    let agent = setup.start(parse_config(&text)).await;
    let all: Vec<Vec<u8>> = spread.iter().chain(&keyed).cloned().collect();
    let arrived = setup.wait_for(&all, Duration::from_secs(45)).await;
    let twice = arrived.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines delivered more than once");
    assert_eq!(arrived.len(), all.len(), "only the lines written");
    let (_, outside) = kcl_user_records(&read_stream(&setup.client, "logs").await);
    assert_eq!(
        outside, 0,
        "aggregates holding records outside their shard's range"
    );
    agent.stop().await;
}

/// An ON_DEMAND stream written to faster than the 4 MiB/s it starts with splits its
/// busy shards (the server's limits on, on the real clock), and the agent follows the
/// new shards as they open: every line arrives once, as a KCL reads them, and the
/// stream ends with more shards than it began with.
#[tokio::test(flavor = "multi_thread")]
async fn an_on_demand_stream_under_load_scales_out_and_the_agent_follows_losing_nothing() {
    use aws_sdk_kinesis::types::{ShardFilter, ShardFilterType};
    let mut config = crate::support::verifying_server_config();
    config.store.limits = true;
    let setup = Setup::on_demand(config).await;
    // 24 MB of 1 KB lines: six seconds at the first capacity, fewer as it grows.
    let written: Vec<Vec<u8>> = (0..24_000)
        .map(|i| format!("od {i:06} {}", "x".repeat(1000)).into_bytes())
        .collect();
    append(&setup.logs().join("busy.log"), &written);
    let agent = setup.start(setup.config(&["busy.log"], &[], "")).await;
    let arrived = setup.wait_for(&written, Duration::from_secs(90)).await;
    agent.stop().await;
    let twice = arrived.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines delivered more than once");
    let open = setup
        .client
        .list_shards()
        .stream_name("logs")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .shards
        .unwrap_or_default();
    assert!(
        open.len() > 4,
        "{} open shards: the stream did not scale",
        open.len()
    );
    // An aggregate sent just before a split can straddle the new boundary: a KCL drops
    // it whole (as `arrived` does), and the producer sends its records again. The
    // once-each check above is what covers that.
}

/// 2,000 files, each appended to by one of four writers while the agent reads: every
/// line arrives once.
#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_files_appended_to_concurrently_deliver_every_line_once() {
    let setup = Setup::new(4).await;
    let files = 2_000;
    let rounds = 5;
    for f in 0..files {
        append(
            &setup.logs().join(format!("f{f:04}.log")),
            &lines(&format!("f{f:04} r-"), 1),
        );
    }
    let agent = setup.start(setup.config(&["*.log"], &[], "")).await;
    let logs = setup.logs();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for round in 0..rounds {
                    for f in (w..files).step_by(4) {
                        append(
                            &logs.join(format!("f{f:04}.log")),
                            &lines(&format!("f{f:04} r{round}"), 2),
                        );
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer
            .join()
            .unwrap_or_else(|_| panic!("a writer panicked"));
    }
    let mut all = Vec::new();
    for f in 0..files {
        all.extend(lines(&format!("f{f:04} r-"), 1));
        for round in 0..rounds {
            all.extend(lines(&format!("f{f:04} r{round}"), 2));
        }
    }
    let arrived = setup.wait_for(&all, Duration::from_secs(60)).await;
    assert_eq!(arrived.len(), all.len(), "only the lines written");
    let twice = arrived.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines delivered more than once");
    agent.stop().await;
}

/// With every file event lost, a file quiet for several scan intervals and then
/// appended to is still read within about one scan interval: the sweep behind the
/// events reads every file each interval and never backs off.
#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_file_appended_to_is_read_within_the_scan_interval_when_events_are_lost() {
    let setup = Setup::new(1).await;
    let log = setup.logs().join("app.log");
    let first = lines("first", 10);
    append(&log, &first);
    let scan_interval = Duration::from_millis(1500);
    let text = setup.config_text(&["app.log"], &[], "").replace(
        "scan_interval_ms = 100",
        &format!("scan_interval_ms = {}", scan_interval.as_millis()),
    );
    let options = RunOptions {
        file_events: FileEvents::Dropped,
        ..Default::default()
    };
    let agent = setup.start_with(parse_config(&text), options).await;
    setup.wait_for(&first, Duration::from_secs(30)).await;
    // The quiet spell is the scenario itself, not a wait for something.
    std::thread::sleep(scan_interval * 3);
    let later = lines("after the quiet", 1);
    append(&log, &later);
    let appended = Instant::now();
    setup.wait_for(&later, Duration::from_secs(30)).await;
    let took = appended.elapsed();
    // One interval until the sweep, plus sending and reading the stream back.
    let bound = scan_interval + Duration::from_millis(1500);
    assert!(
        took <= bound,
        "read {took:?} after the append; the bound is {bound:?}"
    );
    agent.stop().await;
}
