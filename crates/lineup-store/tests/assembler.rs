//! The assembler protocol against a producer shaped like lineup-cluster's apply: effects
//! sent one by one while an entry is applied, the applied index moved past it only after.
//! Even when the consumer runs in the middle of an entry, every entry comes out whole, once.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lineup_store::assembler::ASSEMBLER_OPEN_RECHECK_MS;
use lineup_store::{AppliedEntry, EntryAssembler};
use tokio::sync::broadcast;

/// Rounds the consumer may take before the test gives up.
const CONSUMER_MAX_ROUNDS: u32 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_come_out_whole_whatever_the_interleaving() {
    let mut h = Harness::new();
    busy_morning(&mut h);
    let expected: Vec<AppliedEntry> = h.entries.iter().filter(|(_, e)| !e.is_empty()).cloned().collect();
    let last_index = h.index;

    let (tx, mut rx) = broadcast::channel(4_096);
    let applied = Arc::new(AtomicU64::new(0));
    // The producer stops halfway through every entry of two or more effects until the
    // consumer has run a full round: the interleaving that would split an entry.
    let (paused_tx, paused_rx) = std::sync::mpsc::channel::<u64>();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let producer_applied = applied.clone();
    let entries = h.entries.clone();
    let producer = std::thread::spawn(move || {
        for (index, effects) in entries {
            let half = effects.len() / 2;
            for (k, effect) in effects.into_iter().enumerate() {
                if k == half && half > 0 {
                    paused_tx.send(index).unwrap();
                    resume_rx.recv().unwrap();
                }
                tx.send((index, effect)).unwrap();
            }
            // Like the cluster: the applied index moves past an entry only after all of
            // its effects are out.
            producer_applied.store(index, Ordering::Release);
        }
    });

    let mut assembler = EntryAssembler::new();
    let mut out: Vec<AppliedEntry> = Vec::new();
    let mut pauses = 0;
    // One round of the node's loop (module docs of lineup_store::assembler).
    let round = |rx: &mut broadcast::Receiver<_>, assembler: &mut EntryAssembler, out: &mut Vec<AppliedEntry>| {
        let applied_through = applied.load(Ordering::Acquire);
        while let Ok((index, effect)) = rx.try_recv() {
            assembler.push(index, effect);
        }
        out.extend(assembler.take_complete(applied_through));
    };
    for _ in 0..CONSUMER_MAX_ROUNDS {
        if out.last().map(|(i, _)| *i) == expected.last().map(|(i, _)| *i) && !assembler.has_open_entries() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(ASSEMBLER_OPEN_RECHECK_MS), rx.recv()).await {
            Ok(Ok((index, effect))) => assembler.push(index, effect),
            // The producer is done: keep finishing open entries.
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {}
            Ok(Err(e)) => panic!("stream failed: {e}"),
        }
        round(&mut rx, &mut assembler, &mut out);
        if let Ok(index) = paused_rx.try_recv() {
            // A round while `index` is half sent: it must not come out.
            round(&mut rx, &mut assembler, &mut out);
            assert!(out.iter().all(|(i, _)| *i < index), "entry {index} came out half sent");
            pauses += 1;
            resume_tx.send(()).unwrap();
        }
    }
    producer.join().unwrap();
    assert!(pauses > 10, "the dangerous interleaving happened ({pauses} times)");
    assert_eq!(out, expected);
    assert!(out.last().unwrap().0 <= last_index);
}
