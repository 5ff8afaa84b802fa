//! The sandbox fuzzer's bounded run (CI): generated and mutated programs never crash the
//! interpreter, never overrun a cell's limits, never leave an episode mute, never push a process
//! past its memory bound. `cargo xtask fuzz world --seconds N` runs it longer.

use std::sync::Arc;
use std::time::Duration;

use rung_world::fuzz::{FuzzOptions, fuzz};
use rung_world::{Suite, SuiteOptions};

#[test]
fn generated_and_mutated_programs_break_nothing() {
    let suite = Arc::new(Suite::generate(SuiteOptions::default()));
    let options = FuzzOptions {
        seed: 20261202,
        max_programs: 3000,
        max_time: Duration::from_secs(600),
        ..FuzzOptions::default()
    };
    let report = fuzz(&suite, &options);
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.programs, 3000);
    assert!(
        report.findings.is_empty(),
        "findings: {:#?}",
        report.findings
    );
    // The programs reach every kind of outcome, or the fuzzer tests less than it claims.
    assert!(report.succeeded > 20, "{report:?}");
    assert!(report.failed > 20, "{report:?}");
    assert!(
        report.memory > 0,
        "no program reached the memory limit: {report:?}"
    );
}
