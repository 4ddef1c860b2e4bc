// Node entry for require(): the module is ready as soon as it is loaded; init() is a no-op kept
// so code can call it the same way everywhere.
'use strict';
const wasm = require('./node/statemesh_wasm.js');
const { StatemeshError, install } = require('./install.cjs');

wasm.__registerNodeFs(require('./node-fs.cjs'));
install(wasm);

const init = () => Promise.resolve();

module.exports = {
  Store: wasm.Store,
  Subscription: wasm.Subscription,
  ScanIterator: wasm.ScanIterator,
  Transaction: wasm.Transaction,
  meterPlugin: wasm.meterPlugin,
  StatemeshError,
  init,
  default: init,
};
