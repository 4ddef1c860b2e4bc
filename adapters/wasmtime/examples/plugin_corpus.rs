//! Writes the hostile plugin corpus (tests/corpus/*.wat compiled, plus `garbage.wasm`) into a
//! directory, for the Node loader's tests: `cargo run -p statemesh-wasmtime --example
//! plugin_corpus -- DIR`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: plugin_corpus DIR"))?;
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for (name, wasm) in common::corpus() {
        std::fs::write(dir.join(format!("{name}.wasm")), wasm)?;
    }
    Ok(())
}
