//! The stored bytes of an index image set are pinned: encoding the fixture's images gives
//! exactly `tests/fixtures/index-image-set-v1.hex`, and those bytes decode back. The file and
//! IndexedDB adapters check the same fixture against what they store, so stores written by
//! earlier releases keep loading.
#![allow(clippy::unwrap_used)]

use statemesh_core::IndexImage;
use statemesh_core::search::{
    IMAGE_SET_FORMAT_V1, IMAGE_SET_MAGIC, ImageSetError, decode_image_set, encode_image_set,
};

const FIXTURE: &str = include_str!("fixtures/index-image-set-v1.hex");

/// The fixture's bytes: hex digits, with whitespace and `#` comments ignored.
fn fixture_bytes() -> Vec<u8> {
    let hex: String = FIXTURE
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn fixture_images() -> Vec<IndexImage> {
    vec![
        IndexImage {
            name: "text".into(),
            bytes: b"abc".to_vec(),
        },
        IndexImage {
            name: "vec".into(),
            bytes: vec![0x00, 0xff],
        },
    ]
}

#[test]
fn encoding_gives_the_pinned_bytes() {
    let bytes = fixture_bytes();
    assert_eq!(bytes.len(), 80);
    assert_eq!(bytes[..8], IMAGE_SET_MAGIC);
    assert_eq!(bytes[8], IMAGE_SET_FORMAT_V1);
    assert_eq!(encode_image_set(5, &fixture_images()), bytes);
}

#[test]
fn the_pinned_bytes_decode() {
    assert_eq!(
        decode_image_set(&fixture_bytes(), 5).unwrap(),
        fixture_images()
    );
    assert_eq!(
        decode_image_set(&fixture_bytes(), 6),
        Err(ImageSetError::Revision {
            expected: 6,
            found: 5
        })
    );
}
