//! Helpers shared by the property-test binaries.

use proptest::test_runner::Config as ProptestConfig;

/// `PROPTEST_CASES` when set (a long run), `default` otherwise.
pub(crate) fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Regression files would land beside the test files; reproductions live in the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
