// Loads the probe module with no imports at all (instantiation fails if it needs any), runs the
// fixed workload and prints its digest.
import { readFileSync } from "node:fs";

const module = new WebAssembly.Module(readFileSync(process.argv[2]));
const imports = WebAssembly.Module.imports(module);
if (imports.length > 0) {
  console.error("core wasm imports from its host:", JSON.stringify(imports));
  process.exit(1);
}
const { exports } = new WebAssembly.Instance(module, {});
console.log(BigInt.asUintN(64, exports.probe()).toString());
