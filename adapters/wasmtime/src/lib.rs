//! statemesh-wasmtime: value-codec plugins in a wasmtime sandbox.
//!
//! A plugin is a plain core wasm module (no WASI, no imports) that exports the statemesh codec ABI
//! (docs/plugins.md, [`abi`]). [`PluginHost::load`] compiles and checks it and returns a
//! [`WasmCodec`], which implements core's [`ValueCodec`] and can be registered with an engine or
//! a native store. The same `.wasm` file runs under Node's and the browser's WebAssembly engine
//! (`adapters/wasmtime/js/loader.mjs`).
//!
//! Every call runs with a fuel budget (a deterministic instruction budget: a loop ends in
//! [`CodecError::OutOfFuel`]), a linear-memory cap ([`CodecError::MemoryLimit`]), input and
//! output caps ([`CodecError::OutputTooLarge`]) and an empty linker (no host functions at all).
//! A call that traps, runs out of fuel, hits the memory cap or returns output the ABI does not
//! allow throws its instance away; the next call starts a fresh one from the compiled module.
//!
//! ```no_run
//! use std::sync::Arc;
//! use statemesh_core::{Engine, EngineConfig, ValueCodec};
//! use statemesh_wasmtime::{PluginHost, PluginLimits};
//!
//! let host = PluginHost::new().unwrap();
//! let wasm = std::fs::read("geo_point.wasm").unwrap();
//! let codec = Arc::new(host.load(&wasm, PluginLimits::default()).unwrap());
//! let mut engine = Engine::new(EngineConfig::default()).unwrap();
//! engine.register_codec("places:**", codec).unwrap();
//! ```

use std::fmt;
use std::path::Path;

use parking_lot::Mutex;
use statemesh_core::codec::{CodecError, CodecOp, ValueCodec};
use statemesh_core::value::{JsonValue, MAX_CODEC_NAME_LEN};
use wasmtime::{Config, Engine, Instance, Memory, Module, ResourceLimiter, Store, Trap, TypedFunc};

/// The plugin ABI: export names, version and status bytes (docs/plugins.md).
pub mod abi {
    /// The ABI version this host speaks; `statemesh_abi_version` must return it.
    pub const VERSION: i32 = 1;
    /// The plugin's linear memory.
    pub const MEMORY: &str = "memory";
    /// `() -> i32`: the ABI version the plugin was built for.
    pub const ABI_VERSION: &str = "statemesh_abi_version";
    /// `(len: i32) -> i32`: a buffer of `len` bytes for the host to fill (0 = out of memory).
    pub const ALLOC: &str = "statemesh_alloc";
    /// `(ptr: i32, len: i32)`: frees a result buffer the host has copied.
    pub const DEALLOC: &str = "statemesh_dealloc";
    /// `() -> i64`: a result whose payload is the descriptor JSON (`{"name": ...}`).
    pub const DESCRIBE: &str = "statemesh_describe";
    /// `(ptr: i32, len: i32) -> i64`: checks stored bytes (payload ignored).
    pub const VALIDATE: &str = "statemesh_validate";
    /// `(ptr: i32, len: i32) -> i64`: input form -> stored form.
    pub const ENCODE: &str = "statemesh_encode";
    /// `(ptr: i32, len: i32) -> i64`: stored form -> input form.
    pub const DECODE: &str = "statemesh_decode";
    /// Optional, `(ptr: i32, len: i32) -> i64`: searchable UTF-8 text.
    pub const TO_TEXT: &str = "statemesh_to_text";
    /// Optional, `(ptr: i32, len: i32) -> i64`: JSON text for display.
    pub const TO_JSON: &str = "statemesh_to_json";
    /// First byte of a result buffer: success, payload follows.
    pub const STATUS_OK: u8 = 0;
    /// First byte of a result buffer: the codec refuses; a UTF-8 message follows.
    pub const STATUS_ERROR: u8 = 1;
    /// First byte of a result buffer: no text / no JSON view for this value.
    pub const STATUS_NONE: u8 = 2;

    /// Splits a packed result into `(ptr, len)`: pointer in the high 32 bits, length in the low.
    pub const fn unpack(result: i64) -> (u32, u32) {
        let r = result as u64;
        ((r >> 32) as u32, r as u32)
    }
}

/// Per-call sandbox limits of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginLimits {
    /// Fuel (about one unit per wasm instruction) per call, reset before every call.
    /// Default 10,000,000 (a few milliseconds).
    pub fuel: u64,
    /// Most bytes of linear memory the instance may have. Default 64 MiB.
    pub memory_bytes: usize,
    /// Largest result buffer the host reads. Default 16 MiB.
    pub output_bytes: usize,
    /// Largest input the host passes in. Default 16 MiB.
    pub input_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            fuel: 10_000_000,
            memory_bytes: 64 << 20,
            output_bytes: 16 << 20,
            input_bytes: 16 << 20,
        }
    }
}

impl PluginLimits {
    /// Sets the fuel per call.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }
    /// Sets the linear-memory cap.
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }
    /// Sets the output cap.
    pub fn output_bytes(mut self, bytes: usize) -> Self {
        self.output_bytes = bytes;
        self
    }
    /// Sets the input cap.
    pub fn input_bytes(mut self, bytes: usize) -> Self {
        self.input_bytes = bytes;
        self
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("plugin file {path}: {message}")]
    Io { path: String, message: String },
    #[error("not a valid wasm module: {0}")]
    InvalidModule(String),
    #[error("plugin imports {0}; codec plugins must import nothing (no WASI, no host functions)")]
    HasImports(String),
    #[error("plugin does not export `{0}` (see docs/plugins.md for the ABI)")]
    MissingExport(&'static str),
    #[error("plugin export `{name}` has the wrong type: {message}")]
    ExportType { name: &'static str, message: String },
    #[error("plugin speaks codec ABI version {found}; this host speaks version {supported}")]
    AbiVersion { found: i32, supported: i32 },
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
    #[error("plugin describe failed: {0}")]
    Describe(String),
    #[error("wasmtime engine: {0}")]
    Engine(String),
}

/// Compiles plugins. One host (one wasmtime engine) serves any number of plugins.
#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost").finish_non_exhaustive()
    }
}

impl PluginHost {
    /// A host with fuel metering on.
    pub fn new() -> Result<Self, LoadError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.max_wasm_stack(512 << 10);
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Ok(PluginHost { engine })
    }

    /// Compiles and checks a plugin: valid module, no imports, every required export with its
    /// type, the ABI version, and a descriptor with a valid codec name.
    pub fn load(&self, wasm: &[u8], limits: PluginLimits) -> Result<WasmCodec, LoadError> {
        let module = Module::new(&self.engine, wasm)
            .map_err(|e| LoadError::InvalidModule(format!("{e:#}")))?;
        let imports: Vec<String> = module
            .imports()
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect();
        if !imports.is_empty() {
            return Err(LoadError::HasImports(imports.join(", ")));
        }
        for name in [
            abi::MEMORY,
            abi::ABI_VERSION,
            abi::ALLOC,
            abi::DEALLOC,
            abi::DESCRIBE,
            abi::VALIDATE,
            abi::ENCODE,
            abi::DECODE,
        ] {
            if module.get_export(name).is_none() {
                return Err(LoadError::MissingExport(name));
            }
        }
        let mut live = Live::new(&self.engine, &module, limits)?;
        let found = live
            .abi_version
            .call(&mut live.store, ())
            .map_err(|e| LoadError::Instantiate(format!("{}: {e:#}", abi::ABI_VERSION)))?;
        if found != abi::VERSION {
            return Err(LoadError::AbiVersion {
                found,
                supported: abi::VERSION,
            });
        }
        let descriptor = live
            .describe("plugin", limits)
            .map_err(|e| LoadError::Describe(e.to_string()))?;
        let name = descriptor
            .get("name")
            .and_then(JsonValue::as_str)
            .ok_or_else(|| LoadError::Describe("descriptor has no string `name`".into()))?
            .to_owned();
        let name_ok = !name.is_empty()
            && name.len() <= MAX_CODEC_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !name_ok {
            return Err(LoadError::Describe(format!(
                "invalid codec name {name:?}: 1 to 64 ASCII letters, digits, '_', '-' or '.'"
            )));
        }
        Ok(WasmCodec {
            name,
            descriptor,
            module,
            engine: self.engine.clone(),
            limits,
            live: Mutex::new(Some(live)),
        })
    }

    /// [`load`](Self::load) from a file.
    pub fn load_file(
        &self,
        path: impl AsRef<Path>,
        limits: PluginLimits,
    ) -> Result<WasmCodec, LoadError> {
        let path = path.as_ref();
        let wasm = std::fs::read(path).map_err(|e| LoadError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.load(&wasm, limits)
    }
}

/// A loaded plugin: a [`ValueCodec`] whose calls run in a wasmtime sandbox. Calls are serialized
/// (one instance per codec, behind a mutex).
pub struct WasmCodec {
    name: String,
    descriptor: JsonValue,
    module: Module,
    engine: Engine,
    limits: PluginLimits,
    live: Mutex<Option<Live>>,
}

impl fmt::Debug for WasmCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmCodec")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WasmCodec {
    /// The descriptor the plugin returned from `statemesh_describe`.
    pub fn descriptor(&self) -> &JsonValue {
        &self.descriptor
    }

    /// The sandbox limits of every call.
    pub fn limits(&self) -> PluginLimits {
        self.limits
    }

    /// Whether an instance is ready; false after a sandbox failure threw it away (the next call
    /// instantiates a fresh one).
    pub fn has_live_instance(&self) -> bool {
        self.live.lock().is_some()
    }

    /// Runs one ABI call; returns the status byte and the payload.
    fn call(&self, op: CodecOp, input: &[u8]) -> Result<(u8, Vec<u8>), CodecError> {
        if input.len() > self.limits.input_bytes {
            return Err(CodecError::InputTooLarge {
                codec: self.name.clone(),
                size: input.len() as u64,
                limit: self.limits.input_bytes as u64,
            });
        }
        let mut slot = self.live.lock();
        if slot.is_none() {
            let live = Live::new(&self.engine, &self.module, self.limits).map_err(|e| {
                CodecError::Unavailable {
                    codec: self.name.clone(),
                    message: e.to_string(),
                }
            })?;
            *slot = Some(live);
        }
        let Some(live) = slot.as_mut() else {
            return Err(CodecError::Unavailable {
                codec: self.name.clone(),
                message: "no instance".into(),
            });
        };
        let result = live.call(&self.name, op, input, self.limits);
        // After a sandbox failure the instance may be half-way through anything: start afresh
        // next time. (A refusal is a status byte, not an error here, and keeps the instance.)
        if matches!(&result, Err(e) if !matches!(e, CodecError::Unsupported { .. })) {
            *slot = None;
        }
        result
    }

    fn payload(&self, op: CodecOp, input: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let (status, payload) = self.call(op, input)?;
        match status {
            abi::STATUS_OK => Ok(Some(payload)),
            abi::STATUS_NONE if matches!(op, CodecOp::ToText | CodecOp::ToJson) => Ok(None),
            abi::STATUS_ERROR => Err(CodecError::Rejected {
                codec: self.name.clone(),
                op,
                message: String::from_utf8_lossy(&payload).into_owned(),
            }),
            other => {
                // A status the ABI does not allow is garbage: drop the instance too.
                *self.live.lock() = None;
                Err(CodecError::BadOutput {
                    codec: self.name.clone(),
                    op,
                    message: format!("unknown status byte {other}"),
                })
            }
        }
    }

    fn bytes(&self, op: CodecOp, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.payload(op, input)?
            .ok_or_else(|| CodecError::BadOutput {
                codec: self.name.clone(),
                op,
                message: "status `none` is only allowed from to_text and to_json".into(),
            })
    }
}

impl ValueCodec for WasmCodec {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self, data: &[u8]) -> Result<(), CodecError> {
        self.bytes(CodecOp::Validate, data).map(|_| ())
    }

    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.bytes(CodecOp::Encode, input)
    }

    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.bytes(CodecOp::Decode, data)
    }

    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        match self.payload(CodecOp::ToText, data)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| CodecError::BadOutput {
                    codec: self.name.clone(),
                    op: CodecOp::ToText,
                    message: "text is not UTF-8".into(),
                }),
        }
    }

    fn to_json(&self, data: &[u8]) -> Result<Option<JsonValue>, CodecError> {
        match self.payload(CodecOp::ToJson, data)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| CodecError::BadOutput {
                        codec: self.name.clone(),
                        op: CodecOp::ToJson,
                        message: format!("not JSON: {e}"),
                    })
            }
        }
    }
}

/// Store data: the memory cap, and what the last denied growth asked for.
struct Sandbox {
    memory_cap: usize,
    denied: Option<usize>,
}

impl ResourceLimiter for Sandbox {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.denied = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        4
    }
    fn memories(&self) -> usize {
        1
    }
}

type OpFunc = TypedFunc<(i32, i32), i64>;

/// One instance of a plugin with its typed exports.
struct Live {
    store: Store<Sandbox>,
    memory: Memory,
    abi_version: TypedFunc<(), i32>,
    alloc: TypedFunc<i32, i32>,
    dealloc: TypedFunc<(i32, i32), ()>,
    describe: TypedFunc<(), i64>,
    validate: OpFunc,
    encode: OpFunc,
    decode: OpFunc,
    to_text: Option<OpFunc>,
    to_json: Option<OpFunc>,
}

impl Live {
    fn new(engine: &Engine, module: &Module, limits: PluginLimits) -> Result<Live, LoadError> {
        let mut store = Store::new(
            engine,
            Sandbox {
                memory_cap: limits.memory_bytes,
                denied: None,
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        // An empty import list: the plugin gets no host functions at all.
        let instance = Instance::new(&mut store, module, &[]).map_err(|e| {
            let message = match (e.downcast_ref::<Trap>(), store.data().denied) {
                (_, Some(requested)) => format!(
                    "memory of {requested} bytes exceeds the cap of {}",
                    limits.memory_bytes
                ),
                (Some(Trap::OutOfFuel), _) => {
                    format!("start function exceeded the fuel budget of {}", limits.fuel)
                }
                _ => format!("{e:#}"),
            };
            LoadError::Instantiate(message)
        })?;
        let memory = instance
            .get_memory(&mut store, abi::MEMORY)
            .ok_or_else(|| LoadError::ExportType {
                name: abi::MEMORY,
                message: "not a memory".into(),
            })?;
        macro_rules! func {
            ($name:expr) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(|e| LoadError::ExportType {
                        name: $name,
                        message: format!("{e:#}"),
                    })?
            };
        }
        macro_rules! optional {
            ($name:expr) => {
                match instance.get_export(&mut store, $name) {
                    None => None,
                    Some(_) => Some(func!($name)),
                }
            };
        }
        Ok(Live {
            abi_version: func!(abi::ABI_VERSION),
            alloc: func!(abi::ALLOC),
            dealloc: func!(abi::DEALLOC),
            describe: func!(abi::DESCRIBE),
            validate: func!(abi::VALIDATE),
            encode: func!(abi::ENCODE),
            decode: func!(abi::DECODE),
            to_text: optional!(abi::TO_TEXT),
            to_json: optional!(abi::TO_JSON),
            memory,
            store,
        })
    }

    fn describe(&mut self, codec: &str, limits: PluginLimits) -> Result<JsonValue, CodecError> {
        let op = CodecOp::Describe;
        self.begin(codec, limits)?;
        let packed = self
            .describe
            .call(&mut self.store, ())
            .map_err(|e| self.trap(codec, op, limits, e))?;
        let (status, payload) = self.take_result(codec, op, limits, packed)?;
        if status != abi::STATUS_OK {
            return Err(CodecError::BadOutput {
                codec: codec.into(),
                op,
                message: format!("status {status}: {}", String::from_utf8_lossy(&payload)),
            });
        }
        serde_json::from_slice(&payload).map_err(|e| CodecError::BadOutput {
            codec: codec.into(),
            op,
            message: format!("descriptor is not JSON: {e}"),
        })
    }

    fn begin(&mut self, codec: &str, limits: PluginLimits) -> Result<(), CodecError> {
        self.store.data_mut().denied = None;
        self.store
            .set_fuel(limits.fuel)
            .map_err(|e| CodecError::Unavailable {
                codec: codec.into(),
                message: format!("{e:#}"),
            })
    }

    fn call(
        &mut self,
        codec: &str,
        op: CodecOp,
        input: &[u8],
        limits: PluginLimits,
    ) -> Result<(u8, Vec<u8>), CodecError> {
        let func = match op {
            CodecOp::Validate => self.validate.clone(),
            CodecOp::Encode => self.encode.clone(),
            CodecOp::Decode => self.decode.clone(),
            CodecOp::ToText => self.to_text.clone().ok_or(CodecError::Unsupported {
                codec: codec.into(),
                op,
            })?,
            CodecOp::ToJson => self.to_json.clone().ok_or(CodecError::Unsupported {
                codec: codec.into(),
                op,
            })?,
            _ => {
                return Err(CodecError::Unsupported {
                    codec: codec.into(),
                    op,
                });
            }
        };
        self.begin(codec, limits)?;
        let bad = |message: String| CodecError::BadOutput {
            codec: codec.into(),
            op,
            message,
        };
        let len = i32::try_from(input.len()).map_err(|_| CodecError::InputTooLarge {
            codec: codec.into(),
            size: input.len() as u64,
            limit: i32::MAX as u64,
        })?;
        let ptr = if input.is_empty() {
            0
        } else {
            let ptr = self
                .alloc
                .call(&mut self.store, len)
                .map_err(|e| self.trap(codec, op, limits, e))?;
            if ptr == 0 {
                return Err(self
                    .memory_error(codec, op, limits)
                    .unwrap_or_else(|| bad(format!("{} returned 0 for {len} bytes", abi::ALLOC))));
            }
            self.memory
                .write(&mut self.store, ptr as u32 as usize, input)
                .map_err(|_| {
                    bad(format!(
                        "{} returned {:#x}, outside its memory",
                        abi::ALLOC,
                        ptr as u32
                    ))
                })?;
            ptr
        };
        let packed = func
            .call(&mut self.store, (ptr, len))
            .map_err(|e| self.trap(codec, op, limits, e))?;
        self.take_result(codec, op, limits, packed)
    }

    /// Copies a packed result out of the plugin's memory, checks it and frees it.
    fn take_result(
        &mut self,
        codec: &str,
        op: CodecOp,
        limits: PluginLimits,
        packed: i64,
    ) -> Result<(u8, Vec<u8>), CodecError> {
        if packed == 0 {
            return Ok((abi::STATUS_OK, Vec::new()));
        }
        let (ptr, len) = abi::unpack(packed);
        let bad = |message: String| CodecError::BadOutput {
            codec: codec.into(),
            op,
            message,
        };
        // The status byte is not output.
        if (len as usize).saturating_sub(1) > limits.output_bytes {
            return Err(CodecError::OutputTooLarge {
                codec: codec.into(),
                op,
                size: u64::from(len).saturating_sub(1),
                limit: limits.output_bytes as u64,
            });
        }
        if len == 0 {
            return Err(bad(format!(
                "result at {ptr:#x} has length 0 (a result needs a status byte)"
            )));
        }
        let data = self.memory.data(&self.store);
        let range = ptr as usize..ptr as usize + len as usize;
        let Some(bytes) = data.get(range) else {
            return Err(bad(format!(
                "result {ptr:#x}+{len} lies outside its {} bytes of memory",
                data.len()
            )));
        };
        let status = bytes[0];
        let payload = bytes[1..].to_vec();
        self.dealloc
            .call(&mut self.store, (ptr as i32, len as i32))
            .map_err(|e| self.trap(codec, op, limits, e))?;
        Ok((status, payload))
    }

    fn memory_error(&self, codec: &str, op: CodecOp, limits: PluginLimits) -> Option<CodecError> {
        self.store
            .data()
            .denied
            .map(|requested| CodecError::MemoryLimit {
                codec: codec.into(),
                op,
                requested: requested as u64,
                limit: limits.memory_bytes as u64,
            })
    }

    fn trap(
        &self,
        codec: &str,
        op: CodecOp,
        limits: PluginLimits,
        e: wasmtime::Error,
    ) -> CodecError {
        if let Some(err) = self.memory_error(codec, op, limits) {
            return err;
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => CodecError::OutOfFuel {
                codec: codec.into(),
                op,
                fuel: limits.fuel,
            },
            // The trap itself ("wasm `unreachable` instruction executed", "call stack
            // exhausted", ...), without wasmtime's wasm backtrace.
            Some(trap) => CodecError::Trap {
                codec: codec.into(),
                op,
                message: trap.to_string(),
            },
            None => CodecError::Trap {
                codec: codec.into(),
                op,
                message: e.to_string(),
            },
        }
    }
}
