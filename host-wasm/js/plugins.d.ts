// Types of `statemesh/plugins`: the codec-plugin loader (adapters/wasmtime/js/loader.mjs).
export declare const ABI_VERSION: number;
export interface PluginLimits { memoryBytes?: number; outputBytes?: number; inputBytes?: number }
export declare const DEFAULT_LIMITS: Readonly<Required<PluginLimits>>;
/** A plugin that cannot be loaded; `kind` says why (invalid_module, has_imports, ...). */
export declare class PluginLoadError extends Error { readonly kind: string }
/** A failed codec call; `kind` is one of core's CodecError variants (rejected, trap, ...). */
export declare class CodecError extends Error { readonly kind: string; readonly codec: string; readonly op: string }
/** A loaded codec plugin: pass it to `Store.open({ codecs: [{ pattern, plugin }] })`. */
export declare class Plugin {
  readonly name: string;
  readonly descriptor: { name: string; abi: number; [key: string]: unknown };
  validate(data: Uint8Array): void;
  encode(input: Uint8Array): Uint8Array;
  decode(data: Uint8Array): Uint8Array;
  toText(data: Uint8Array): string | null;
  toJson(data: Uint8Array): unknown;
}
/** Compiles and checks a plugin (no imports, the ABI's exports, memory capped at the limit). */
export declare function loadPlugin(bytes: BufferSource, limits?: PluginLimits): Promise<Plugin>;
