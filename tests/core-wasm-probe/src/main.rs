//! Prints the native result of the probe workload, for comparison with the wasm one.

#[allow(clippy::print_stdout)]
fn main() {
    println!("{}", statemesh_core_wasm_probe::probe());
}
