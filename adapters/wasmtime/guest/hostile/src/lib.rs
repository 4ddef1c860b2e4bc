//! A misbehaving codec plugin (`hostile`), for sandbox tests. `encode` misbehaves according to
//! its input; everything else behaves:
//!
//! * `loop`: never returns (ends in the host's fuel or time limit);
//! * `grow`: allocates 1 MiB blocks forever (ends in the host's memory cap);
//! * `panic`: panics (a trap: wasm32-unknown-unknown aborts with `unreachable`);
//! * `recurse`: unbounded recursion (a stack-overflow trap);
//! * `huge:N`: returns N bytes (for the output cap);
//! * `reject`: returns an error message;
//! * anything else: returns the input.
//!
//! `validate` refuses the bytes `bad`.

use statemesh_plugin_sdk::{Codec, export_codec};

/// The `hostile` codec.
pub struct Hostile;

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 64]);
    if std::hint::black_box(true) {
        recurse(n + 1) + buf[0]
    } else {
        n
    }
}

impl Codec for Hostile {
    const NAME: &'static str = "hostile";

    fn validate(data: &[u8]) -> Result<(), String> {
        if data == b"bad" {
            return Err("bad bytes".into());
        }
        Ok(())
    }

    fn encode(input: &[u8]) -> Result<Vec<u8>, String> {
        match input {
            b"loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"grow" => {
                let mut blocks = Vec::new();
                loop {
                    blocks.push(std::hint::black_box(Vec::<u8>::with_capacity(1 << 20)));
                }
            }
            b"panic" => panic!("hostile plugin panics"),
            b"recurse" => Ok(recurse(0).to_le_bytes().to_vec()),
            b"reject" => Err("rejected on purpose".into()),
            other => match other.strip_prefix(b"huge:") {
                Some(n) => {
                    let n: usize = std::str::from_utf8(n)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("huge:N needs a number")?;
                    Ok(vec![b'x'; n])
                }
                None => Ok(other.to_vec()),
            },
        }
    }

    fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
        Ok(data.to_vec())
    }
}

export_codec!(Hostile);
