// A wall-clock limit for codec plugins on Node: the plugin runs in a worker thread and every call
// has a deadline. In-thread, the loader bounds calls by fuel when given an `instrument` function
// (statemesh/plugins always gives it; docs/plugins.md), which is deterministic and synchronous;
// this Worker is the other tool, for a hard limit in milliseconds: Node can terminate a Worker,
// which stops the wasm code running in it at once. A call past its deadline rejects with a CodecError of kind "timeout"; the worker is
// terminated and the next call starts a fresh one. Loading runs under the same deadline, counted
// from when the thread starts running (Node's start of a worker is not the plugin's time, and
// takes hundreds of milliseconds on a loaded machine), so a start function that never returns
// fails the load instead of hanging it.
//
// Costs: every call is a message round trip between threads (tens of microseconds, against
// well under a microsecond in-thread), and calls are asynchronous. The browser equivalent is a
// Web Worker and worker.terminate(); host-wasm can reuse the protocol below.

import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { CodecError, PluginLoadError, loadPlugin } from "./loader.mjs";

if (!isMainThread && workerData && workerData.statemeshPlugin) {
  const { bytes, limits } = workerData;
  // Node's own start of the thread is not the plugin's time: the load deadline starts here.
  parentPort.postMessage({ booted: true });
  let plugin;
  try {
    plugin = await loadPlugin(bytes, limits);
    parentPort.postMessage({ ready: true, name: plugin.name, descriptor: plugin.descriptor });
  } catch (e) {
    parentPort.postMessage({ loadError: { kind: e.kind ?? "instantiate", message: e.message } });
  }
  parentPort.on("message", ({ id, method, input }) => {
    try {
      const value = plugin[method](input);
      parentPort.postMessage({ id, value });
    } catch (e) {
      parentPort.postMessage({ id, error: { kind: e.kind ?? "trap", op: e.op, message: e.message } });
    }
  });
}

/** How long a worker thread may take to start running at all (not the plugin's load time). */
const WORKER_START_MS = 30_000;

const METHODS = { validate: "validate", encode: "encode", decode: "decode", toText: "to_text", toJson: "to_json" };

/** A plugin in a worker thread, every call bounded by `timeoutMs`. */
export class WorkerPlugin {
  static async load(bytes, limits = {}, { timeoutMs = 1000 } = {}) {
    const p = new WorkerPlugin(new Uint8Array(bytes), limits, timeoutMs);
    const ready = await p._start();
    p.name = ready.name;
    p.descriptor = ready.descriptor;
    return p;
  }

  constructor(bytes, limits, timeoutMs) {
    this.bytes = bytes;
    this.limits = limits;
    this.timeoutMs = timeoutMs;
    this.name = "plugin";
    this.worker = null;
    this.ready = null;
    this.pending = new Map();
    this.nextId = 1;
    this.restarts = 0;
  }

  _start() {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { statemeshPlugin: true, bytes: this.bytes, limits: this.limits },
    });
    this.worker = worker;
    this.ready = new Promise((resolve, reject) => {
      const fail = (error) => {
        clearTimeout(timer);
        this._kill();
        reject(error);
      };
      // Until the thread runs, only a stuck start is guarded against (a loaded machine can take
      // seconds to start a worker); from its first message the plugin has `timeoutMs` to load.
      let timer = setTimeout(
        () => fail(new PluginLoadError("instantiate", `the worker did not start within ${WORKER_START_MS} ms`)),
        WORKER_START_MS,
      );
      const onLoad = (m) => {
        if (m.booted) {
          clearTimeout(timer);
          timer = setTimeout(
            () => fail(new PluginLoadError("instantiate", `plugin did not load within ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
          return;
        }
        clearTimeout(timer);
        worker.off("message", onLoad);
        if (m.ready) {
          resolve(m);
          worker.on("message", (msg) => this._reply(msg));
        } else {
          fail(new PluginLoadError(m.loadError.kind, m.loadError.message));
        }
      };
      worker.on("message", onLoad);
      worker.once("error", (e) => fail(new PluginLoadError("instantiate", e.message)));
    });
    return this.ready;
  }

  _reply({ id, value, error }) {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    clearTimeout(call.timer);
    if (error) call.reject(new CodecError(error.kind, this.name, error.op ?? call.op, error.message));
    else call.resolve(value);
  }

  _kill() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    this.ready = null;
  }

  async _call(method, input) {
    const op = METHODS[method];
    if (!this.worker) {
      this.restarts++;
      await this._start();
    }
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this._kill();
        for (const [, other] of this.pending) {
          clearTimeout(other.timer);
          other.reject(new CodecError("timeout", this.name, other.op, "the worker was terminated"));
        }
        this.pending.clear();
        reject(new CodecError("timeout", this.name, op, `exceeded its time limit of ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer, op });
      this.worker.postMessage({ id, method, input });
    });
  }

  validate(data) {
    return this._call("validate", data);
  }
  encode(input) {
    return this._call("encode", input);
  }
  decode(data) {
    return this._call("decode", data);
  }
  toText(data) {
    return this._call("toText", data);
  }
  toJson(data) {
    return this._call("toJson", data);
  }
  close() {
    this._kill();
  }
}
