//! The exact-value index: keys by the scalar at a JSON field (or their whole value).

use std::collections::{BTreeMap, BTreeSet};

use super::extract::{Scalar, as_json, at_path};
use super::image::{ImageError, decode};
use crate::value::Value;

/// `None` as the field name stands for the whole value.
type FieldKey = Option<String>;

#[derive(Debug, Default)]
pub(crate) struct ValueIndex {
    fields: Vec<String>,
    /// (field, scalar) -> keys. Ordered so lookups return keys in order.
    postings: BTreeMap<(FieldKey, Scalar), BTreeSet<String>>,
    /// key -> what it is filed under, to unfile it on update or removal.
    filed: hashbrown::HashMap<String, Vec<(FieldKey, Scalar)>>,
}

impl ValueIndex {
    pub(crate) fn new(fields: Vec<String>) -> ValueIndex {
        ValueIndex {
            fields,
            ..Default::default()
        }
    }

    pub(crate) fn put(&mut self, key: &str, value: &Value) {
        self.remove(key);
        let Some(json) = as_json(value) else { return };
        let mut entries = Vec::new();
        if self.fields.is_empty() {
            entries.extend(Scalar::all_of(&json).into_iter().map(|s| (None, s)));
        } else {
            for field in &self.fields {
                if let Some(node) = at_path(&json, field) {
                    entries.extend(
                        Scalar::all_of(node)
                            .into_iter()
                            .map(|s| (Some(field.clone()), s)),
                    );
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        for entry in &entries {
            self.postings
                .entry(entry.clone())
                .or_default()
                .insert(key.to_owned());
        }
        self.filed.insert(key.to_owned(), entries);
    }

    pub(crate) fn remove(&mut self, key: &str) {
        let Some(entries) = self.filed.remove(key) else {
            return;
        };
        for entry in entries {
            if let Some(keys) = self.postings.get_mut(&entry) {
                keys.remove(key);
                if keys.is_empty() {
                    self.postings.remove(&entry);
                }
            }
        }
    }

    /// Keys filed under `field` (or the whole value) with this scalar, in key order.
    pub(crate) fn lookup(
        &self,
        field: Option<&str>,
        scalar: Scalar,
    ) -> impl Iterator<Item = &str> + '_ {
        self.postings
            .get(&(field.map(str::to_owned), scalar))
            .into_iter()
            .flat_map(|keys| keys.iter().map(String::as_str))
    }

    /// Whether `field` is one this index files values under.
    pub(crate) fn has_field(&self, field: Option<&str>) -> bool {
        match field {
            None => self.fields.is_empty(),
            Some(f) => self.fields.iter().any(|x| x == f),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.filed.len()
    }
}

/// One key's entries in an image: what it is filed under.
type FiledImage = Vec<(String, Vec<(FieldKey, Scalar)>)>;

impl ValueIndex {
    /// The index as an image body: every key with what it is filed under, in key order.
    pub(crate) fn image(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut filed: Vec<(&String, &Vec<(FieldKey, Scalar)>)> = self.filed.iter().collect();
        filed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        postcard::to_allocvec(&filed)
    }

    /// Loads an image body into this freshly declared (empty) index.
    pub(crate) fn load_image(&mut self, body: &[u8]) -> Result<(), ImageError> {
        let (filed, rest) = postcard::take_from_bytes::<FiledImage>(body).map_err(decode)?;
        if !rest.is_empty() {
            return Err(ImageError::Decode("trailing bytes".into()));
        }
        for (key, entries) in filed {
            if entries.is_empty() || entries.iter().any(|(f, _)| !self.has_field(f.as_deref())) {
                return Err(ImageError::Decode(format!(
                    "key {key} is filed under an undeclared field"
                )));
            }
            for entry in &entries {
                self.postings
                    .entry(entry.clone())
                    .or_default()
                    .insert(key.clone());
            }
            if self.filed.insert(key.clone(), entries).is_some() {
                return Err(ImageError::Decode(format!("key {key} appears twice")));
            }
        }
        Ok(())
    }
}
