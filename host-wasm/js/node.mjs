// Node entry for import: the same instance as require('statemesh'), so a store opened through
// either is the same kind of object.
import cjs from './node.cjs';

export const { Store, Subscription, ScanIterator, Transaction, StatemeshError, meterPlugin, init } = cjs;
export default init;
