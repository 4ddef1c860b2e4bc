//! The directory lock against another process. A test binary of its own: it spawns a child
//! process, and a child forked while another test in the same process holds a lock file open
//! shares that lock until it execs, which made the same-process lock test in `basic.rs` flaky.
#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stdout)] // the child reports to the parent on stdout

use statemesh_core::StorageError;
use statemesh_fs::{FsOptions, FsStorage};

const PROBE_ENV: &str = "STATEMESH_FS_LOCK_PROBE_DIR";

/// Runs in a child process started by `a_second_open_is_locked_in_another_process`.
#[test]
fn lock_probe_child() {
    let Ok(dir) = std::env::var(PROBE_ENV) else {
        return; // not the child: nothing to do
    };
    match FsStorage::open(&dir, FsOptions::default()) {
        Err(StorageError::Locked { .. }) => println!("PROBE:LOCKED"),
        Ok(_) => println!("PROBE:OPENED"),
        Err(e) => println!("PROBE:ERROR {e}"),
    }
}

#[test]
fn a_second_open_is_locked_in_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = |expect: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "lock_probe_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROBE_ENV, tmp.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(expect), "expected {expect}: {stdout}");
    };
    let held = FsStorage::open(tmp.path(), FsOptions::default()).unwrap();
    probe("PROBE:LOCKED");
    drop(held);
    probe("PROBE:OPENED");
}
