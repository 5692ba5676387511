//! Model-based test of reading: random sequences of writes, rotations, truncations,
//! deletions and restarts, checked against a model of what must arrive (every line
//! written, exactly once). After each step the test waits until the model's lines
//! arrived, so every step starts from a known state.

use std::time::Duration;

use crate::agent_support::{Setup, append, copy_truncate};

#[derive(Debug, Clone, Copy)]
enum Step {
    Write(usize),
    Rotate,
    CopyTruncate,
    DeleteAndRecreate,
    Restart,
}

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
fn steps(seed: u64, count: usize) -> Vec<Step> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| match next() % 10 {
            0..=3 => Step::Write(1 + (next() % 300) as usize),
            4 | 5 => Step::Rotate,
            6 => Step::CopyTruncate,
            7 => Step::DeleteAndRecreate,
            _ => Step::Restart,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn random_sequences_of_file_events_deliver_every_line_once() {
    for seed in 1..=8u64 {
        let setup = Setup::new(2).await;
        let path = setup.logs().join("app.log");
        let config = setup.config(&["app.log"], &[], "");
        std::fs::write(&path, b"").unwrap();
        let mut agent = setup.start(config.clone()).await;
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut rotations = 0;
        let sequence = steps(seed, 15);
        for (n, step) in sequence.iter().enumerate() {
            match *step {
                Step::Write(count) => {
                    let lines: Vec<Vec<u8>> = (0..count)
                        .map(|i| format!("seed {seed} step {n} line {i}").into_bytes())
                        .collect();
                    append(&path, &lines);
                    model.extend(lines);
                }
                Step::Rotate => {
                    rotations += 1;
                    std::fs::rename(&path, setup.logs().join(format!("app.log.{rotations}")))
                        .unwrap();
                    std::fs::write(&path, b"").unwrap();
                }
                Step::CopyTruncate => {
                    copy_truncate(&path, &setup.logs().join("app.log.copy"));
                }
                Step::DeleteAndRecreate => {
                    std::fs::remove_file(&path).unwrap();
                    std::fs::write(&path, b"").unwrap();
                }
                Step::Restart => {
                    agent.stop().await;
                    agent = setup.start(config.clone()).await;
                }
            }
            let arrived = setup.wait_for(&model, Duration::from_secs(20)).await;
            let twice: Vec<_> = arrived
                .iter()
                .filter(|(_, c)| **c > 1)
                .map(|(l, _)| String::from_utf8_lossy(l).into_owned())
                .collect();
            assert!(
                twice.is_empty(),
                "seed {seed}, after {sequence:?}[..={n}]: arrived twice: {:?}",
                &twice[..twice.len().min(3)]
            );
            let unexpected = arrived.len() - model.len();
            assert_eq!(
                unexpected, 0,
                "seed {seed}: lines that were never written arrived"
            );
        }
        agent.stop().await;
    }
}
