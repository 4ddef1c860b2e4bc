//! Shared by the adapter's tests, bench and the corpus example: the hostile WAT corpus and the
//! guest plugins built from `adapters/wasmtime/guest` for wasm32-unknown-unknown.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `adapters/wasmtime`, whichever crate includes this file.
pub fn adapter_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.ends_with("adapters/wasmtime") {
        here.to_path_buf()
    } else if here.ends_with("adapters/wasmtime/meter") {
        here.join("..")
    } else {
        here.join("../adapters/wasmtime")
    }
}

/// The WAT corpus (`tests/corpus/*.wat`) compiled to wasm, by file stem, plus `garbage` (bytes
/// that are not a module).
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = adapter_dir().join("tests/corpus");
    let mut out = vec![("garbage".to_string(), b"\0asm\x01\0\0\0garbage!".to_vec())];
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let wasm = wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((stem, wasm));
    }
    out
}

/// One corpus module by name.
pub fn corpus_module(name: &str) -> Vec<u8> {
    corpus()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no corpus module {name}"))
        .1
}

/// Path of a guest plugin (`geo_point`, `hostile`). Under tests/run, `STATEMESH_GUEST_DIR` points
/// at the release build it made; otherwise the guest workspace is built here (once per process)
/// into `<target>/guest`. If that build fails (no wasm32 target), the test fails, unless
/// `STATEMESH_SKIP_GUEST_TESTS=1` asks to skip it (`None`, with a message on stderr).
pub fn guest(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATEMESH_GUEST_DIR") {
        let path = PathBuf::from(dir).join(format!("{name}.wasm"));
        assert!(
            path.exists(),
            "{} is missing: tests/run should have built it",
            path.display()
        );
        return Some(path);
    }
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    let dir = BUILT.get_or_init(build_guests).as_ref()?;
    Some(dir.join(format!("{name}.wasm")))
}

fn build_guests() -> Option<PathBuf> {
    // <target>/debug/deps/<test binary> -> <target>; a separate target dir avoids cargo's lock.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("guest");
    let manifest = adapter_dir().join("guest/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status();
    match status {
        Ok(s) if s.success() => Some(target.join("wasm32-unknown-unknown/release")),
        other => {
            let message = format!(
                "building the guest plugins ({}) for wasm32-unknown-unknown failed ({other:?}); \
                 run `rustup target add wasm32-unknown-unknown`, or set \
                 STATEMESH_SKIP_GUEST_TESTS=1 to skip the tests that need them",
                manifest.display()
            );
            if std::env::var_os("STATEMESH_SKIP_GUEST_TESTS").is_some() {
                eprintln!("\n!!!!!!!! SKIPPING guest-plugin tests: {message}\n");
                return None;
            }
            panic!("{message}");
        }
    }
}
