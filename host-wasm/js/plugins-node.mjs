// `statemesh/plugins` in Node: the codec-plugin loader (adapters/wasmtime/js/loader.mjs) with fuel
// metering always on. Every plugin is instrumented by the package's own wasm (`meterPlugin`, the
// Rust crate statemesh-plugin-meter), so each call runs under `limits.fuel` (docs/plugins.md).
import { meterPlugin } from '../node.mjs';
import { loadPlugin as loadUnmetered } from './loader.mjs';

export {
  ABI_VERSION, DEFAULT_LIMITS, FUEL_EXPORT, START_EXPORT, STATUS_OK, STATUS_ERROR, STATUS_NONE,
  PluginLoadError, CodecError, Plugin, capMemory,
} from './loader.mjs';

/** Compiles, meters and checks a plugin; see loader.mjs. `instrument` cannot be overridden. */
export function loadPlugin(bytes, limits = {}) {
  return loadUnmetered(bytes, { ...limits, instrument: meterPlugin });
}
