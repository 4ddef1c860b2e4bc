//! The stored bytes of an index image set are pinned: encoding the fixture's images gives
//! exactly `tests/fixtures/index-image-set-v1.hex`, and those bytes decode back. The file and
//! IndexedDB adapters check the same fixture against what they store, so stores written by
//! earlier releases keep loading.
#![allow(clippy::unwrap_used)]

use statemesh_core::search::{
    IMAGE_SET_FORMAT_V1, IMAGE_SET_MAGIC, ImageSetError, decode_image_set, encode_image_set,
};

#[path = "fixtures/image_set_fixture.rs"]
mod fixture;

#[test]
fn encoding_gives_the_pinned_bytes() {
    let bytes = fixture::bytes();
    assert_eq!(bytes.len(), 80);
    assert_eq!(bytes[..8], IMAGE_SET_MAGIC);
    assert_eq!(bytes[8], IMAGE_SET_FORMAT_V1);
    assert_eq!(encode_image_set(5, &fixture::images()), bytes);
}

#[test]
fn the_pinned_bytes_decode() {
    assert_eq!(
        decode_image_set(&fixture::bytes(), 5).unwrap(),
        fixture::images()
    );
    assert_eq!(
        decode_image_set(&fixture::bytes(), 6),
        Err(ImageSetError::Revision {
            expected: 6,
            found: 5
        })
    );
}
