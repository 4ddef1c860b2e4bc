//! Deterministic fuel metering for statemesh codec plugins.
//!
//! A JavaScript WebAssembly engine (V8 in Chromium and Node) has no fuel and no epoch
//! interruption: a synchronous wasm call that loops hangs its thread. [`meter`] rewrites a
//! plugin module *before* it is compiled so that the module counts its own work in a global
//! and traps when the count runs out. It is pure (bytes in, bytes out, no IO) and builds for
//! wasm32, so the npm package runs the same code as the native tests.
//!
//! # What the metered module looks like
//!
//! * A new mutable `i64` global, appended after every existing global (so no index changes),
//!   exported as [`FUEL_EXPORT`] (`statemesh_fuel`). It holds the fuel left. Its initial value
//!   is [`MeterOptions::initial_fuel`]; a host sets it before every call.
//! * Every function body is cut into straight-line *segments*: a segment ends after each
//!   `block`, `loop`, `if`, `else`, `end`, `br`, `br_if`, `br_table`, `return` and
//!   `unreachable`. At the start of each segment the segment's static cost is subtracted from
//!   the global (`global.get; i64.const cost; i64.sub; global.set`, 4 instructions); segments
//!   that cost nothing get no charge.
//! * At the two places where code can start running again without a bound — the entry of every
//!   function and the header of every `loop` (the target of every backward branch) — the charge
//!   is followed by a check: if the global is now negative the code executes `unreachable`.
//!   Between two checks a function can only run forward, so it can overdraw the budget by at most
//!   the cost of one function body; it can never run unboundedly.
//! * A start function (a module's `start` section) is removed from the start section and
//!   exported as [`START_EXPORT`] (`statemesh_start`), so a host can run it under a budget and
//!   read the global afterwards (a trap inside `new WebAssembly.Instance` leaves no instance to
//!   read). The host must call it once, right after instantiation, before anything else.
//!
//! # The fuel unit
//!
//! Costs follow wasmtime 48's default operator costs, so a budget means the same on both hosts
//! (about one unit per executed instruction): `nop`, `drop`, `block`, `loop`, `unreachable`,
//! `return`, `else` and `end` cost 0, every other instruction 1. The charge is static (a whole
//! segment is paid on entry), so a call that traps halfway through a segment has paid for all
//! of it; wasmtime charges the same instructions. A trap caused by running out of fuel leaves
//! the global negative, which is how a host tells it apart from any other trap (a trap that
//! happens after the budget was overdrawn but before the next check also leaves it negative:
//! that call had spent its budget too).
//!
//! # What is accepted
//!
//! Modules valid under the WebAssembly 2.0 feature set without SIMD (MVP, mutable globals, sign
//! extension, saturating float-to-int, multi-value, bulk memory, reference types): everything
//! the plugin SDK emits for wasm32-unknown-unknown. Anything else (SIMD, threads, exceptions,
//! tail calls, GC, function references, memory64, multi-memory, components) is refused with
//! [`MeterError::Unsupported`]: most of those add control flow that the segmenting above does
//! not know, and SIMD is left out to keep its decoder out of the npm package (~40 KB gzipped).
//! Modules that already export [`FUEL_EXPORT`] or [`START_EXPORT`] are refused with
//! [`MeterError::ReservedExport`].
//!
//! The input is fully validated first, and that is load-bearing, not hygiene: code that names
//! the global index the fuel global is about to take is invalid before metering but would be
//! valid after it, and could then refill its own fuel.

use std::ops::Range;

use wasm_encoder::{Encode, Module, RawSection};
use wasmparser::{
    BinaryReader, FunctionBody, Operator, Parser, Payload, TypeRef, Validator, WasmFeatures,
};

/// The export name of the fuel global.
pub const FUEL_EXPORT: &str = "statemesh_fuel";
/// The export name the start function is moved to.
pub const START_EXPORT: &str = "statemesh_start";

/// How to meter a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MeterOptions {
    /// The fuel global's initial value. Hosts set the global before every call, so this only
    /// matters to a host that forgets to: with the default, 0, its first call runs out of fuel.
    pub initial_fuel: u64,
}

impl MeterOptions {
    /// Options with the given initial fuel.
    pub fn initial_fuel(mut self, fuel: u64) -> Self {
        self.initial_fuel = fuel;
        self
    }
}

/// Why a module could not be metered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The bytes are not a valid wasm module.
    #[error("not a valid wasm module: {0}")]
    Invalid(String),
    /// The module is valid but uses a feature outside WebAssembly 2.0.
    #[error("the module uses a WebAssembly feature that fuel metering does not support: {0}")]
    Unsupported(String),
    /// The module already exports a name the metering adds.
    #[error("the module already exports `{0}`, a name reserved for fuel metering")]
    ReservedExport(String),
}

/// The features a metered module may use: WebAssembly 2.0 without SIMD.
fn supported_features() -> WasmFeatures {
    WasmFeatures::WASM2.difference(WasmFeatures::SIMD)
}

/// The cost of one instruction: wasmtime 48's default (`default_operator_cost`).
fn cost(op: &Operator<'_>) -> i64 {
    match op {
        Operator::Nop
        | Operator::Drop
        | Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::Unreachable
        | Operator::Return
        | Operator::Else
        | Operator::End => 0,
        _ => 1,
    }
}

/// Whether a segment ends after `op`.
fn ends_segment(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return
            | Operator::Unreachable
    )
}

struct Segment {
    /// Byte range of the segment's instructions in the module.
    range: Range<usize>,
    cost: i64,
    /// Function entry or loop header: check after charging.
    check: bool,
}

fn segments(body: &FunctionBody<'_>) -> Result<Vec<Segment>, MeterError> {
    let mut reader = body.get_operators_reader().map_err(invalid)?;
    let body_end = body.range().end;
    let mut out = Vec::new();
    let mut start = reader.original_position();
    let mut cost_sum = 0i64;
    let mut check = true;
    let mut depth = 1usize;
    while !reader.eof() {
        let (op, _) = reader.read_with_offset().map_err(invalid)?;
        cost_sum += cost(&op);
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => depth += 1,
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
        if ends_segment(&op) || depth == 0 {
            let end = reader.original_position();
            out.push(Segment {
                range: start..end,
                cost: cost_sum,
                check,
            });
            start = end;
            cost_sum = 0;
            check = matches!(op, Operator::Loop { .. });
        }
    }
    if start < body_end {
        // Unreachable for a valid body (it ends with `end`), kept for robustness.
        out.push(Segment {
            range: start..body_end,
            cost: cost_sum,
            check,
        });
    }
    Ok(out)
}

fn invalid(e: wasmparser::BinaryReaderError) -> MeterError {
    MeterError::Invalid(e.to_string())
}

/// Validates `bytes`, telling an invalid module from one that uses unsupported features.
fn validate(bytes: &[u8]) -> Result<(), MeterError> {
    let Err(narrow) = Validator::new_with_features(supported_features()).validate_all(bytes) else {
        return Ok(());
    };
    let message = narrow.to_string();
    // Where wasmparser is built without SIMD decoding (the npm package), a SIMD module does not
    // even parse; say what it is all the same.
    if message.contains("SIMD") {
        return Err(MeterError::Unsupported(message));
    }
    match Validator::new_with_features(WasmFeatures::all()).validate_all(bytes) {
        Ok(_) => Err(MeterError::Unsupported(message)),
        Err(e) => Err(MeterError::Invalid(e.to_string())),
    }
}

/// The canonical order of the module's known sections (custom sections excepted).
fn order(id: u8) -> u8 {
    match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => 0,
    }
}

const GLOBAL: u8 = 6;
const EXPORT: u8 = 7;
const START: u8 = 8;
const CODE: u8 = 10;

/// A section's entries after its count, plus the count.
fn entries(data: &[u8]) -> Result<(u32, &[u8]), MeterError> {
    let mut r = BinaryReader::new(data, 0);
    let count = r.read_var_u32().map_err(invalid)?;
    Ok((count, &data[r.current_position()..]))
}

fn put_str(sink: &mut Vec<u8>, s: &str) {
    s.encode(sink);
}

/// Instruments `bytes` (see the crate documentation) and returns the metered module.
pub fn meter(bytes: &[u8], options: &MeterOptions) -> Result<Vec<u8>, MeterError> {
    validate(bytes)?;

    // First pass: what the rewrite needs to know.
    let mut imported_globals = 0u32;
    let mut defined_globals = 0u32;
    let mut start_func: Option<u32> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.map_err(invalid)?.ty, TypeRef::Global(_)) {
                        imported_globals += 1;
                    }
                }
            }
            Payload::GlobalSection(reader) => defined_globals = reader.count(),
            Payload::StartSection { func, .. } => start_func = Some(func),
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    if export.name == FUEL_EXPORT || export.name == START_EXPORT {
                        return Err(MeterError::ReservedExport(export.name.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    let fuel_global = imported_globals + defined_globals;
    let initial = i64::try_from(options.initial_fuel).unwrap_or(i64::MAX);

    let mut new_global = vec![0x7e, 0x01, 0x42]; // i64, mutable, i64.const
    initial.encode(&mut new_global);
    new_global.push(0x0b);
    let mut new_exports = Vec::new();
    put_str(&mut new_exports, FUEL_EXPORT);
    new_exports.push(0x03); // global
    fuel_global.encode(&mut new_exports);
    let mut export_count = 1u32;
    if let Some(f) = start_func {
        put_str(&mut new_exports, START_EXPORT);
        new_exports.push(0x00); // func
        f.encode(&mut new_exports);
        export_count += 1;
    }

    let mut module = Module::new();
    let mut global_done = false;
    let mut export_done = false;
    let mut code: Option<(u32, Vec<u8>)> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        if let Payload::CodeSectionEntry(body) = &payload {
            let (count, out) = code.get_or_insert_with(|| (0, Vec::new()));
            *count += 1;
            instrument(bytes, body, fuel_global, out)?;
            continue;
        }
        let Some((id, range)) = payload.as_section() else {
            if let Payload::End(_) = payload {
                flush_code(&mut module, &mut code);
            }
            continue;
        };
        if id != CODE {
            flush_code(&mut module, &mut code);
        }
        let data = &bytes[range];
        let rank = order(id);
        if rank == 0 {
            // A custom section: keep it where it was.
            module.section(&RawSection { id, data });
            continue;
        }
        if rank > order(GLOBAL) && !global_done {
            module.section(&RawSection {
                id: GLOBAL,
                data: &counted(1, &new_global),
            });
            global_done = true;
        }
        if rank > order(EXPORT) && !export_done {
            module.section(&RawSection {
                id: EXPORT,
                data: &counted(export_count, &new_exports),
            });
            export_done = true;
        }
        match id {
            GLOBAL => {
                let (count, rest) = entries(data)?;
                let mut body = rest.to_vec();
                body.extend_from_slice(&new_global);
                module.section(&RawSection {
                    id,
                    data: &counted(count + 1, &body),
                });
                global_done = true;
            }
            EXPORT => {
                let (count, rest) = entries(data)?;
                let mut body = rest.to_vec();
                body.extend_from_slice(&new_exports);
                module.section(&RawSection {
                    id,
                    data: &counted(count + export_count, &body),
                });
                export_done = true;
            }
            START => {} // moved to the START_EXPORT export
            CODE => code = Some((0, Vec::new())),
            _ => {
                module.section(&RawSection { id, data });
            }
        }
    }
    flush_code(&mut module, &mut code);
    if !global_done || !export_done {
        // A module with no section after the export section (no code, no data).
        let mut tail = Module::new();
        if !global_done {
            tail.section(&RawSection {
                id: GLOBAL,
                data: &counted(1, &new_global),
            });
        }
        if !export_done {
            tail.section(&RawSection {
                id: EXPORT,
                data: &counted(export_count, &new_exports),
            });
        }
        let mut out = module.finish();
        // Skip the second module's 8-byte header.
        out.extend_from_slice(&tail.finish()[8..]);
        return Ok(out);
    }
    Ok(module.finish())
}

/// Writes a pending code section.
fn flush_code(module: &mut Module, code: &mut Option<(u32, Vec<u8>)>) {
    if let Some((count, body)) = code.take() {
        module.section(&RawSection {
            id: CODE,
            data: &counted(count, &body),
        });
    }
}

fn counted(count: u32, entries: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() + 5);
    count.encode(&mut out);
    out.extend_from_slice(entries);
    out
}

/// Appends the instrumented body (size-prefixed) of one function to `out`.
fn instrument(
    bytes: &[u8],
    body: &FunctionBody<'_>,
    fuel: u32,
    out: &mut Vec<u8>,
) -> Result<(), MeterError> {
    let ops = body.get_operators_reader().map_err(invalid)?;
    let range = body.range();
    let locals = &bytes[range.start..ops.original_position()];
    let mut code = Vec::with_capacity(range.len() * 2);
    code.extend_from_slice(locals);
    for seg in segments(body)? {
        if seg.cost > 0 || seg.check {
            charge(&mut code, fuel, seg.cost);
        }
        if seg.check {
            check(&mut code, fuel);
        }
        code.extend_from_slice(&bytes[seg.range]);
    }
    u32::try_from(code.len())
        .map_err(|_| MeterError::Invalid("function body too large".into()))?
        .encode(out);
    out.extend_from_slice(&code);
    Ok(())
}

/// `global.get $fuel; i64.const cost; i64.sub; global.set $fuel`
fn charge(code: &mut Vec<u8>, fuel: u32, cost: i64) {
    code.push(0x23);
    fuel.encode(code);
    code.push(0x42);
    cost.encode(code);
    code.push(0x7d);
    code.push(0x24);
    fuel.encode(code);
}

/// `global.get $fuel; i64.const 0; i64.lt_s; if; unreachable; end`
fn check(code: &mut Vec<u8>, fuel: u32) {
    code.push(0x23);
    fuel.encode(code);
    code.extend_from_slice(&[0x42, 0x00, 0x53, 0x04, 0x40, 0x00, 0x0b]);
}
