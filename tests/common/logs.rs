//! Test logging: env_logger's output (`RUST_LOG`, captured by the test
//! harness) plus a capture of every warning and error, so that a test can
//! show that something the code only logs did happen (e.g. a hub that lagged).
//!
//! One logger per test binary: every fixture that starts a server calls
//! [`init`]; a second `env_logger` init would be refused, so do not add one.

use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// How many warnings a binary keeps; older ones are dropped first (tests
/// look for a warning logged during the test that looks).
pub const MAX_CAPTURED: usize = 10_000;

struct Capture {
    inner: env_logger::Logger,
    warnings: Mutex<std::collections::VecDeque<String>>,
}

static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= Level::Warn || self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if record.level() <= Level::Warn {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
            if warnings.len() >= MAX_CAPTURED {
                warnings.pop_front();
            }
            warnings.push_back(line);
        }
        if self.inner.matches(record) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger once per binary (later calls do nothing).
pub fn init() {
    CAPTURE.get_or_init(|| {
        let inner = env_logger::Builder::from_env(env_logger::Env::default())
            .is_test(true)
            .build();
        let level = inner.filter().max(LevelFilter::Warn);
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            inner,
            warnings: Mutex::new(std::collections::VecDeque::new()),
        }));
        if log::set_logger(capture).is_ok() {
            log::set_max_level(level);
        }
        capture
    });
}

/// The captured warnings and errors (`LEVEL target: message`) that contain
/// `needle`. Panics if [`init`] was not called: nothing would be captured.
pub fn warnings_containing(needle: &str) -> Vec<String> {
    let capture = CAPTURE
        .get()
        .expect("logs::init() was not called: no warning is captured");
    let warnings = capture.warnings.lock().unwrap_or_else(|e| e.into_inner());
    warnings
        .iter()
        .filter(|line| line.contains(needle))
        .cloned()
        .collect()
}
