// statemesh codec plugins on a JavaScript WebAssembly engine (Node and browsers; host-wasm ships
// this file as `statemesh/plugins`). Drives the same ABI as the wasmtime host (docs/plugins.md)
// with the same caps:
//
// - time: fuel. With an `instrument` function (the package's `statemesh/plugins` always passes
//   host-wasm's `meterPlugin`, the Rust crate statemesh-plugin-meter) the module is rewritten
//   before compiling so that it counts its own instructions in an exported i64 global,
//   `statemesh_fuel`, and traps when that goes negative. The loader sets the global to
//   `limits.fuel` before every ABI call (and before the start function and `describe`), and
//   reports a trap that left it negative as `out_of_fuel`. Deterministic, in-thread, on every
//   engine. Without `instrument` there is no time limit (run such plugins through worker.mjs);
// - memory: the module's memory section is rewritten before compiling so that its maximum is
//   the cap; the engine itself then refuses to grow past it (memory.grow returns -1);
// - output and input caps, pointer checks, status bytes: checked here before anything is read;
// - imports: the module is instantiated with an empty import object, so nothing is reachable.
//
// Platform-neutral: uses only WebAssembly, TextEncoder/TextDecoder and BigInt.

export const ABI_VERSION = 1;
const PAGE = 65536;

export const DEFAULT_LIMITS = Object.freeze({
  fuel: 10_000_000,
  memoryBytes: 64 << 20,
  outputBytes: 16 << 20,
  inputBytes: 16 << 20,
});

export const STATUS_OK = 0;
export const STATUS_ERROR = 1;
export const STATUS_NONE = 2;

/** The metered module's fuel global and its start function (statemesh-plugin-meter). */
export const FUEL_EXPORT = "statemesh_fuel";
export const START_EXPORT = "statemesh_start";

const REQUIRED = [
  "statemesh_abi_version",
  "statemesh_alloc",
  "statemesh_dealloc",
  "statemesh_describe",
  "statemesh_validate",
  "statemesh_encode",
  "statemesh_decode",
];
const SIGNATURES = {
  statemesh_abi_version: [0, "i32"],
  statemesh_alloc: [1, "i32"],
  statemesh_dealloc: [2, undefined],
  statemesh_describe: [0, "i64"],
  statemesh_validate: [2, "i64"],
  statemesh_encode: [2, "i64"],
  statemesh_decode: [2, "i64"],
  statemesh_to_text: [2, "i64"],
  statemesh_to_json: [2, "i64"],
};

/** A plugin that cannot be loaded. `kind`: invalid_module, has_imports, missing_export,
 * export_type, abi_version, instantiate, describe. */
export class PluginLoadError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "PluginLoadError";
    this.kind = kind;
  }
}

/** A failed codec call. `kind`: rejected, unsupported, out_of_fuel, timeout, memory_limit,
 * output_too_large, input_too_large, bad_output, trap, unavailable (the names of core's
 * CodecError variants; `timeout` only from worker.mjs). */
export class CodecError extends Error {
  constructor(kind, codec, op, message) {
    super(`codec ${codec} ${kind.replaceAll("_", " ")} in ${op}: ${message}`);
    this.name = "CodecError";
    this.kind = kind;
    this.codec = codec;
    this.op = op;
  }
}

function readLeb(bytes, pos) {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= bytes.length) throw new PluginLoadError("invalid_module", "truncated LEB128");
    const b = bytes[pos++];
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [result, pos];
    if (shift > 35) throw new PluginLoadError("invalid_module", "LEB128 too long");
  }
}

function leb(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Returns a copy of `bytes` whose memory section caps every memory at `maxBytes` (rounded
 * down to pages). Throws a PluginLoadError if a memory's minimum is already above the cap. */
export function capMemory(bytes, maxBytes) {
  bytes = new Uint8Array(bytes);
  const capPages = Math.floor(maxBytes / PAGE);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new PluginLoadError("invalid_module", "not a wasm module (bad magic)");
  }
  let pos = 8;
  while (pos < bytes.length) {
    const id = bytes[pos];
    const [size, body] = readLeb(bytes, pos + 1);
    const end = body + size;
    if (end > bytes.length) throw new PluginLoadError("invalid_module", "section runs past the end");
    if (id === 5) {
      let [count, p] = readLeb(bytes, body);
      const out = [...leb(count)];
      for (let i = 0; i < count; i++) {
        const flags = bytes[p++];
        if (flags !== 0 && flags !== 1) {
          throw new PluginLoadError("invalid_module", `memory flags ${flags} (shared or 64-bit) are not supported`);
        }
        let min, max;
        [min, p] = readLeb(bytes, p);
        if (flags === 1) [max, p] = readLeb(bytes, p);
        if (min > capPages) {
          throw new PluginLoadError("instantiate", `memory of ${min * PAGE} bytes exceeds the cap of ${maxBytes}`);
        }
        max = max === undefined ? capPages : Math.min(max, capPages);
        out.push(1, ...leb(min), ...leb(max));
      }
      if (p !== end) throw new PluginLoadError("invalid_module", "malformed memory section");
      const section = [5, ...leb(out.length), ...out];
      const result = new Uint8Array(pos + section.length + bytes.length - end);
      result.set(bytes.subarray(0, pos), 0);
      result.set(section, pos);
      result.set(bytes.subarray(end), pos + section.length);
      return result;
    }
    pos = end;
  }
  return bytes;
}

/** Compiles and checks a plugin (as PluginHost::load does natively) and instantiates it.
 * `limits`: `fuel`, `memoryBytes`, `outputBytes`, `inputBytes` (DEFAULT_LIMITS), and
 * `instrument(bytes, fuel) -> bytes`, the fuel-metering rewrite (without it, no fuel). */
export async function loadPlugin(bytes, limits = {}) {
  const { instrument, ...rest } = limits;
  limits = { ...DEFAULT_LIMITS, ...rest };
  if (!Number.isSafeInteger(limits.fuel) || limits.fuel <= 0) {
    throw new TypeError(`fuel must be a positive integer, not ${limits.fuel}`);
  }
  let capped = capMemory(bytes, limits.memoryBytes);
  if (instrument !== undefined) {
    try {
      capped = instrument(capped, limits.fuel);
    } catch (e) {
      throw new PluginLoadError("invalid_module", `cannot meter the plugin: ${e.message}`);
    }
  }
  let module;
  try {
    module = await WebAssembly.compile(capped);
  } catch (e) {
    throw new PluginLoadError("invalid_module", `not a valid wasm module: ${e.message}`);
  }
  const imports = WebAssembly.Module.imports(module);
  if (imports.length > 0) {
    const list = imports.map((i) => `${i.module}::${i.name}`).join(", ");
    throw new PluginLoadError("has_imports", `plugin imports ${list}; codec plugins must import nothing`);
  }
  const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const name of ["memory", ...REQUIRED]) {
    if (!exports.has(name)) throw new PluginLoadError("missing_export", `plugin does not export \`${name}\``);
  }
  if (exports.get("memory") !== "memory") {
    throw new PluginLoadError("export_type", "plugin export `memory` is not a memory");
  }
  const plugin = new Plugin(module, limits, instrument !== undefined);
  plugin._instantiate();
  let found;
  try {
    plugin._refuel();
    found = plugin._exports.statemesh_abi_version();
  } catch (e) {
    throw new PluginLoadError("abi_version", `statemesh_abi_version failed: ${plugin._outOfFuel() ? "out of fuel" : e.message}`);
  }
  if (found !== ABI_VERSION) {
    throw new PluginLoadError("abi_version", `plugin speaks codec ABI version ${found}; this host speaks version ${ABI_VERSION}`);
  }
  let descriptor;
  try {
    plugin._refuel();
    let packed;
    try {
      packed = plugin._exports.statemesh_describe();
    } catch (e) {
      if (plugin._outOfFuel()) throw new Error(`exceeded the fuel budget of ${limits.fuel}`);
      throw e;
    }
    const [status, payload] = plugin._result("describe", packed);
    if (status !== STATUS_OK) throw new Error(`status ${status}`);
    descriptor = JSON.parse(new TextDecoder().decode(payload));
  } catch (e) {
    throw new PluginLoadError("describe", `plugin describe failed: ${e.message}`);
  }
  const name = descriptor && descriptor.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new PluginLoadError("describe", `invalid codec name ${JSON.stringify(name)}`);
  }
  plugin.name = name;
  plugin.descriptor = descriptor;
  return plugin;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** A loaded plugin. Calls are synchronous; each runs under `limits.fuel` when `metered`. */
export class Plugin {
  constructor(module, limits, metered = false) {
    this.module = module;
    this.limits = limits;
    /** Whether calls run under a fuel budget (the module was instrumented). */
    this.metered = metered;
    this._fuel = null;
    this._budget = BigInt(limits.fuel);
    this.name = "plugin";
    this.descriptor = null;
    this._exports = null;
    this._bytes = null;
    this._sizeBefore = 0;
  }

  _instantiate() {
    let instance;
    try {
      instance = new WebAssembly.Instance(this.module, {});
    } catch (e) {
      throw new PluginLoadError("instantiate", `plugin could not be instantiated: ${e.message}`);
    }
    const ex = instance.exports;
    for (const [name, [arity]] of Object.entries(SIGNATURES)) {
      const f = ex[name];
      if (f === undefined && !REQUIRED.includes(name)) continue;
      if (typeof f !== "function" || f.length !== arity) {
        throw new PluginLoadError("export_type", `plugin export \`${name}\` has the wrong type`);
      }
    }
    this._fuel = null;
    if (this.metered) {
      if (!(ex[FUEL_EXPORT] instanceof WebAssembly.Global)) {
        throw new PluginLoadError("instantiate", `the instrumented plugin lacks \`${FUEL_EXPORT}\``);
      }
      this._fuel = ex[FUEL_EXPORT];
      // The metering moved the start function here, so that it runs under the budget too.
      const start = ex[START_EXPORT];
      if (typeof start === "function") {
        this._refuel();
        try {
          start();
        } catch (e) {
          const why = this._outOfFuel() ? `exceeded the fuel budget of ${this.limits.fuel}` : `trapped: ${e.message}`;
          throw new PluginLoadError("instantiate", `plugin could not be instantiated: start function ${why}`);
        }
      }
    }
    this._exports = ex;
    this._bytes = null;
  }

  /** Resets the fuel to one call's budget. */
  _refuel() {
    if (this._fuel !== null) this._fuel.value = this._budget;
  }

  /** Whether the last trap was the metering's: it leaves the fuel negative. */
  _outOfFuel() {
    return this._fuel !== null && this._fuel.value < 0n;
  }

  /** A byte view of the memory, rebuilt when growth replaced the buffer. */
  _view() {
    const buffer = this._exports.memory.buffer;
    if (this._bytes === null || this._bytes.buffer !== buffer) this._bytes = new Uint8Array(buffer);
    return this._bytes;
  }

  get hasLiveInstance() {
    return this._exports !== null;
  }

  _fail(kind, op, message) {
    return new CodecError(kind, this.name, op, message);
  }

  /** Copies a packed result out, checks it, frees it. */
  _result(op, packed) {
    if (typeof packed !== "bigint") throw this._fail("bad_output", op, "result is not an i64");
    if (packed === 0n) return [STATUS_OK, new Uint8Array(0)];
    const len = Number(BigInt.asUintN(32, packed));
    const ptr = Number(BigInt.asUintN(32, packed >> 32n));
    if (Math.max(len - 1, 0) > this.limits.outputBytes) {
      throw this._fail("output_too_large", op, `returned ${len - 1} bytes; the output cap is ${this.limits.outputBytes}`);
    }
    if (len === 0) throw this._fail("bad_output", op, "result has length 0 (a result needs a status byte)");
    const view = this._view();
    if (ptr + len > view.length) {
      throw this._fail("bad_output", op, `result 0x${ptr.toString(16)}+${len} lies outside its ${view.length} bytes of memory`);
    }
    const status = view[ptr];
    const payload = view.slice(ptr + 1, ptr + len);
    this._exports.statemesh_dealloc(ptr, len);
    return [status, payload];
  }

  _call(op, exportName, input) {
    input = input instanceof Uint8Array ? input : new TextEncoder().encode(String(input));
    if (input.length > this.limits.inputBytes) {
      throw new CodecError("input_too_large", this.name, op, `input of ${input.length} bytes exceeds the cap of ${this.limits.inputBytes}`);
    }
    if (this._exports === null) {
      try {
        this._instantiate();
      } catch (e) {
        throw this._fail("unavailable", op, e.message);
      }
    }
    const f = this._exports[exportName];
    if (f === undefined) throw this._fail("unsupported", op, "not exported");
    this._sizeBefore = this._view().length;
    this._refuel(); // one budget for the whole ABI call: alloc, the op, dealloc (as on wasmtime)
    try {
      let ptr = 0;
      if (input.length > 0) {
        ptr = this._exports.statemesh_alloc(input.length) >>> 0;
        const view = this._view();
        if (ptr === 0) throw this._memoryOr("bad_output", op, `statemesh_alloc returned 0 for ${input.length} bytes`);
        if (ptr + input.length > view.length) {
          throw this._fail("bad_output", op, `statemesh_alloc returned 0x${ptr.toString(16)}, outside its memory`);
        }
        view.set(input, ptr);
      }
      const [status, payload] = this._result(op, f(ptr, input.length));
      if (status === STATUS_OK) return payload;
      if (status === STATUS_NONE && (op === "to_text" || op === "to_json")) return null;
      if (status === STATUS_ERROR) {
        const err = this._fail("rejected", op, new TextDecoder().decode(payload));
        err.keepInstance = true;
        throw err;
      }
      throw this._fail("bad_output", op, `unknown status byte ${status}`);
    } catch (e) {
      if (!(e instanceof CodecError)) {
        if (this._outOfFuel()) {
          e = this._fail("out_of_fuel", op, `exceeded the fuel budget of ${this.limits.fuel}`);
          e.fuel = this.limits.fuel;
        } else {
          e = this._memoryOr("trap", op, e.message);
        }
      }
      // As on wasmtime: after a sandbox failure the instance may be in any state; start afresh.
      if (!e.keepInstance) this._exports = null;
      throw e;
    }
  }

  /** JS cannot observe a refused memory.grow (it just returns -1 inside the plugin), so a failed
   * call is reported as memory_limit when it grew memory during the call to within
   * max(1 MiB, cap / 4) of the cap: a heuristic, where wasmtime knows for sure. */
  _memoryOr(kind, op, message) {
    const size = this._exports ? this._exports.memory.buffer.byteLength : 0;
    const headroom = Math.max(16 * PAGE, this.limits.memoryBytes / 4);
    if (size > this._sizeBefore && size + headroom > this.limits.memoryBytes) {
      return this._fail("memory_limit", op, `memory reached ${size} of its ${this.limits.memoryBytes}-byte cap (${message})`);
    }
    return this._fail(kind, op, message);
  }

  validate(data) {
    this._call("validate", "statemesh_validate", data);
  }
  encode(input) {
    return this._call("encode", "statemesh_encode", input);
  }
  decode(data) {
    return this._call("decode", "statemesh_decode", data);
  }
  toText(data) {
    const out = this._call("to_text", "statemesh_to_text", data);
    if (out === null) return null;
    try {
      return decoder.decode(out);
    } catch {
      throw this._fail("bad_output", "to_text", "text is not UTF-8");
    }
  }
  toJson(data) {
    const out = this._call("to_json", "statemesh_to_json", data);
    if (out === null) return null;
    try {
      return JSON.parse(decoder.decode(out));
    } catch (e) {
      throw this._fail("bad_output", "to_json", `not JSON: ${e.message}`);
    }
  }
}
