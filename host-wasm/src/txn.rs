//! Transactions from JavaScript: compare-then-else (`store.txn`) and interactive optimistic
//! ones (`store.begin()` → `Transaction`).

use statemesh_core::{
    Compare, CompareOp, CompareTarget, Isolation, Txn, TxnId, TxnOp, TxnOpResult,
};
use wasm_bindgen::prelude::*;

use crate::convert::{self, value_from_js};
use crate::error::{HostError, Result};
use crate::host::{self, Shared, now};
use crate::store::optional;
use crate::types::{self, BeginOptions, CompareSpec, TxnOpKind, TxnOpSpec, TxnSpec, WriteResult};

/// Default lifetime of an interactive transaction.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

pub(crate) fn txn_from_js(spec: &JsValue) -> Result<Txn> {
    let spec: TxnSpec = serde_wasm_bindgen::from_value(spec.clone())?;
    let mut txn = Txn::new();
    for c in spec.compare {
        txn = txn.when(compare(c)?);
    }
    for op in spec.success {
        txn = txn.then(txn_op(op)?);
    }
    for op in spec.failure {
        txn = txn.otherwise(txn_op(op)?);
    }
    Ok(txn)
}

fn compare(c: CompareSpec) -> Result<Compare> {
    let mut targets = Vec::new();
    if !c.value.is_undefined() {
        targets.push(CompareTarget::Value(value_from_js(&c.value)?));
    }
    if let Some(v) = c.version {
        targets.push(CompareTarget::Version(v));
    }
    if let Some(r) = c.mod_revision {
        targets.push(CompareTarget::ModRevision(r));
    }
    if let Some(r) = c.create_revision {
        targets.push(CompareTarget::CreateRevision(r));
    }
    if let Some(e) = c.exists {
        targets.push(CompareTarget::Exists(e));
    }
    let (Some(target), 1) = (targets.pop(), targets.len() + 1) else {
        return Err(HostError::Argument(format!(
            "compare on {} needs exactly one of value, version, modRevision, createRevision, exists",
            c.key
        )));
    };
    let op = match c.op.unwrap_or(types::CompareOp::Equal) {
        types::CompareOp::Equal => CompareOp::Equal,
        types::CompareOp::NotEqual => CompareOp::NotEqual,
        types::CompareOp::Greater => CompareOp::Greater,
        types::CompareOp::Less => CompareOp::Less,
    };
    Ok(Compare::new(c.key, op, target))
}

fn txn_op(op: TxnOpSpec) -> Result<TxnOp> {
    Ok(match op.op {
        TxnOpKind::Put => {
            if op.value.is_undefined() {
                return Err(HostError::Argument(format!(
                    "put of {} needs a value",
                    op.key
                )));
            }
            let value = value_from_js(&op.value)?;
            match op.ttl_ms {
                Some(ttl) => TxnOp::put_with_ttl(op.key, value, ttl),
                None => TxnOp::put(op.key, value),
            }
        }
        TxnOpKind::Delete => TxnOp::delete(op.key),
        TxnOpKind::Get => TxnOp::get(op.key),
    })
}

pub(crate) fn txn_result_js(r: &statemesh_core::TxnResult) -> Result<JsValue> {
    let results = js_sys::Array::new();
    for op in &r.results {
        let obj = js_sys::Object::new();
        let item: JsValue = match op {
            TxnOpResult::Put { version } | TxnOpResult::Patch { version } => {
                convert::set(&obj, "version", &convert::num(*version));
                obj.into()
            }
            TxnOpResult::Delete { deleted } => {
                convert::set(&obj, "deleted", &JsValue::from_bool(*deleted));
                obj.into()
            }
            TxnOpResult::Get(v) => types::ValueAt::js(v.as_ref())?,
            _ => JsValue::UNDEFINED,
        };
        results.push(&item);
    }
    convert::to_js(&types::TxnResult {
        succeeded: r.succeeded,
        revision: r.revision,
        results: results.into(),
    })
}

pub(crate) fn begin(shared: &Shared, opts: BeginOptions) -> js_sys::Promise {
    let isolation = match opts.isolation {
        Some(types::Isolation::Snapshot) => Isolation::Snapshot,
        _ => Isolation::Serializable,
    };
    let timeout = opts.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let shared = shared.clone();
    wasm_bindgen_futures::future_to_promise(async move {
        // The snapshot must not include writes a crash could take back.
        host::before_read(&shared).await?;
        let (id, _) = shared
            .borrow_mut()
            .apply(|e, now| e.begin_txn(now, isolation, timeout))?;
        Ok(Transaction { shared, id }.into())
    })
}

/// An interactive optimistic transaction: reads see a snapshot, writes are buffered, `commit()`
/// validates and applies them as one revision (or fails with `TXN_CONFLICT`).
#[wasm_bindgen]
pub struct Transaction {
    shared: Shared,
    id: TxnId,
}

#[wasm_bindgen]
impl Transaction {
    /// The value as this transaction sees it (its own writes, else its snapshot).
    #[wasm_bindgen(unchecked_return_type = "Promise<Value | undefined>")]
    pub fn get(&self, key: String) -> js_sys::Promise {
        let id = self.id;
        self.run(move |e, now| {
            e.txn_get(now, id, &key)?
                .map_or(Ok(JsValue::UNDEFINED), |v| convert::value_to_js(&v))
        })
    }

    /// Buffers a put (with an optional TTL counted from the commit).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn put(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
        #[wasm_bindgen(unchecked_param_type = "{ ttlMs?: number }")] options: Option<
            js_sys::Object,
        >,
    ) -> js_sys::Promise {
        let options = optional(options);
        let id = self.id;
        let parsed =
            value_from_js(&value).and_then(|v| Ok((v, convert::opt_u64(&options, "ttlMs")?)));
        let (value, ttl) = match parsed {
            Ok(p) => p,
            Err(e) => return crate::store::reject(e),
        };
        self.run(move |e, now| {
            match ttl {
                Some(ttl) => e.txn_put_with_ttl(now, id, &key, &value, ttl)?,
                None => e.txn_put(now, id, &key, &value)?,
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Buffers a delete.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(&self, key: String) -> js_sys::Promise {
        let id = self.id;
        self.run(move |e, now| {
            e.txn_delete(now, id, &key)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Validates and applies the buffered writes as one revision; durable when it resolves (CP).
    #[wasm_bindgen(unchecked_return_type = "Promise<WriteResult>")]
    pub fn commit(&self) -> js_sys::Promise {
        let id = self.id;
        let applied = self
            .shared
            .borrow_mut()
            .apply(|e, now| e.commit_txn(now, id));
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (result, queued) = applied?;
            host::settle(&shared, queued).await?;
            Ok(WriteResult::js(&result)?)
        })
    }

    /// Drops the buffered writes.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn rollback(&self) -> js_sys::Promise {
        let id = self.id;
        self.run(move |e, now| {
            e.rollback_txn(now, id)?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Transaction {
    fn run(
        &self,
        op: impl FnOnce(&mut statemesh_core::Engine, statemesh_core::Timestamp) -> Result<JsValue>,
    ) -> js_sys::Promise {
        let result = {
            let mut state = self.shared.borrow_mut();
            state.check().and_then(|()| op(&mut state.engine, now()))
        };
        match result {
            Ok(v) => js_sys::Promise::resolve(&v),
            Err(e) => crate::store::reject(e),
        }
    }
}
