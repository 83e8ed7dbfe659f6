//! A tiny run of the soak tool (`examples/soak.rs`): a few RTMPS streams and
//! RTMPT sessions through rtmpgate in-process for a few seconds, every byte
//! checked both ways.

#[allow(dead_code)]
#[path = "../examples/soak.rs"]
mod soak;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_smoke_holds_every_stream_without_loss() {
    let opts = soak::Options {
        rtmps_streams: 8,
        rtmpt_streams: 8,
        duration: Duration::from_secs(3),
        rate: 16 * 1024,
        drain: Duration::from_secs(5),
        ramp: Duration::from_millis(200),
        ..soak::Options::default()
    };
    let report = soak::run(opts).await;
    let table = report.table();
    println!("{table}");
    assert_eq!(report.rtmps_held, 8, "RTMPS streams held\n{table}");
    assert_eq!(report.rtmpt_held, 8, "RTMPT sessions held\n{table}");
    assert_eq!(report.lost, 0, "bytes lost\n{table}");
    assert_eq!(report.mismatched, 0, "bytes mismatched\n{table}");
    assert!(report.errors.is_empty(), "errors\n{table}");
    assert!(
        report.up_received > 0 && report.down_received > 0,
        "no bytes moved\n{table}"
    );
    assert!(report.passed(), "{table}");
}

/// The checker the soak relies on notices a lost, a reordered and a
/// corrupted byte (so "0 mismatched" means something).
#[test]
fn soak_checker_detects_loss_reorder_and_corruption() {
    let mut stream = vec![0u8; 4096];
    soak::fill(7, 0, &mut stream);
    let mut split = vec![0u8; 4096];
    soak::fill(7, 0, &mut split[..1000]);
    soak::fill(7, 1000, &mut split[1000..]);
    assert_eq!(stream, split, "the stream is addressable by offset");

    let mut exact = soak::Checker::new(7);
    assert_eq!(exact.check(&stream[..100]) + exact.check(&stream[100..]), 0);

    let mut lost = soak::Checker::new(7);
    assert!(lost.check(&stream[..100]) + lost.check(&stream[101..]) > 0);

    let mut reordered = soak::Checker::new(7);
    let swapped = [&stream[2048..], &stream[..2048]].concat();
    assert!(reordered.check(&swapped) > 0);

    let mut corrupt = stream.clone();
    corrupt[3000] ^= 1;
    assert_eq!(soak::Checker::new(7).check(&corrupt), 1);
    assert!(
        soak::Checker::new(8).check(&stream) > 0,
        "streams differ by seed"
    );
}
