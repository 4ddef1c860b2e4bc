// Types of `statemesh/plugins`: the codec-plugin loader (adapters/wasmtime/js/loader.mjs).
export declare const ABI_VERSION: number;
/** Per-call caps. `fuel`: instructions per call (about one unit each, as wasmtime counts them;
 * default 10,000,000); every plugin loaded here is metered, so a loop ends in `out_of_fuel`. */
export interface PluginLimits { fuel?: number; memoryBytes?: number; outputBytes?: number; inputBytes?: number }
export declare const DEFAULT_LIMITS: Readonly<Required<PluginLimits>>;
/** Names the fuel metering adds to a plugin (a plugin may not export them itself). */
export declare const FUEL_EXPORT: 'statemesh_fuel';
export declare const START_EXPORT: 'statemesh_start';
/** A plugin that cannot be loaded; `kind` says why (invalid_module, has_imports, ...). */
export declare class PluginLoadError extends Error { readonly kind: string }
/** A failed codec call; `kind` is one of core's CodecError variants (rejected, out_of_fuel,
 * trap, ...); `fuel` is the budget when `kind` is `out_of_fuel`. */
export declare class CodecError extends Error { readonly kind: string; readonly codec: string; readonly op: string; readonly fuel?: number }
/** A loaded codec plugin: pass it to `Store.open({ codecs: [{ pattern, plugin }] })`. */
export declare class Plugin {
  readonly name: string;
  readonly descriptor: { name: string; abi: number; [key: string]: unknown };
  /** Always true for plugins from this module: calls run under `limits.fuel`. */
  readonly metered: boolean;
  validate(data: Uint8Array): void;
  encode(input: Uint8Array): Uint8Array;
  decode(data: Uint8Array): Uint8Array;
  toText(data: Uint8Array): string | null;
  toJson(data: Uint8Array): unknown;
}
/** Compiles, meters and checks a plugin (no imports, the ABI's exports, memory capped at the
 * limit, fuel per call). In browsers it awaits `init()` first. */
export declare function loadPlugin(bytes: ArrayBuffer | ArrayBufferView, limits?: PluginLimits): Promise<Plugin>;
