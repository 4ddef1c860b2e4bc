//! Scanning as an async iterator, and batches of entries from JavaScript.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use statemesh_core::{Cursor, Value};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::convert::{self, value_from_js, value_to_js};
use crate::error::{HostError, Result};
use crate::host::{self, Shared, now};
use crate::types::Entry;

/// Every key under a prefix, fetched a page at a time: `for await (const e of store.iterate(p))`.
/// Each page is read when it is fetched; keys written behind the cursor meanwhile are not seen,
/// keys written ahead of it are.
#[wasm_bindgen]
pub struct ScanIterator {
    state: Rc<RefCell<ScanState>>,
}

struct ScanState {
    shared: Shared,
    prefix: String,
    batch: usize,
    buffer: VecDeque<(String, Value)>,
    cursor: Option<Cursor>,
    finished: bool,
}

impl ScanIterator {
    pub(crate) fn new(shared: Shared, prefix: String, batch: usize) -> ScanIterator {
        ScanIterator {
            state: Rc::new(RefCell::new(ScanState {
                shared,
                prefix,
                batch: batch.max(1),
                buffer: VecDeque::new(),
                cursor: None,
                finished: false,
            })),
        }
    }
}

impl ScanState {
    fn fill(&mut self) -> Result<()> {
        let state = self.shared.borrow();
        state.check()?;
        let page = state
            .engine
            .scan(now(), &self.prefix, self.batch, self.cursor.as_ref())?;
        self.buffer.extend(page.items);
        self.finished = page.next.is_none();
        self.cursor = page.next;
        Ok(())
    }

    fn step(&mut self) -> Result<Option<JsValue>> {
        if self.buffer.is_empty() && !self.finished {
            self.fill()?;
        }
        match self.buffer.pop_front() {
            Some((key, value)) => Ok(Some(convert::to_js(&Entry {
                key,
                value: value_to_js(&value)?,
            })?)),
            None => Ok(None),
        }
    }
}

fn result(value: Option<JsValue>) -> JsValue {
    let obj = js_sys::Object::new();
    let done = value.is_none();
    convert::set(&obj, "value", &value.unwrap_or(JsValue::UNDEFINED));
    convert::set(&obj, "done", &JsValue::from_bool(done));
    obj.into()
}

#[wasm_bindgen]
impl ScanIterator {
    /// The next entry (the async-iterator protocol). A page is read once earlier writes are
    /// durable (CP).
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<Entry, undefined>>")]
    pub fn next(&self) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (needs_page, shared) = {
                let s = state.borrow();
                (s.buffer.is_empty() && !s.finished, s.shared.clone())
            };
            if needs_page {
                host::before_read(&shared).await?;
            }
            let next = state.borrow_mut().step()?;
            Ok(result(next))
        })
    }

    /// Stops early (called by `for await` on `break`).
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<Entry, undefined>>"
    )]
    pub fn return_(&self) -> js_sys::Promise {
        let mut s = self.state.borrow_mut();
        s.buffer.clear();
        s.finished = true;
        js_sys::Promise::resolve(&result(None))
    }
}

/// `[key, value]` pairs or `{ key, value }` objects.
pub(crate) fn entries_from_js(entries: &JsValue) -> Result<Vec<(String, Value)>> {
    let Some(array) = entries.dyn_ref::<js_sys::Array>() else {
        return Err(HostError::Argument(
            "entries must be an array of [key, value] pairs or { key, value } objects".into(),
        ));
    };
    let mut out = Vec::with_capacity(array.length() as usize);
    for item in array.iter() {
        let (key, value) = match item.dyn_ref::<js_sys::Array>() {
            Some(pair) => (pair.get(0), pair.get(1)),
            None => (convert::get(&item, "key"), convert::get(&item, "value")),
        };
        let Some(key) = key.as_string() else {
            return Err(HostError::Argument("every entry needs a string key".into()));
        };
        out.push((key, value_from_js(&value)?));
    }
    Ok(out)
}

#[wasm_bindgen(typescript_custom_section)]
const SCAN_ITERATOR_TS: &'static str = r#"
export interface ScanIterator {
  [Symbol.asyncIterator](): AsyncIterator<Entry, undefined>;
}
"#;
