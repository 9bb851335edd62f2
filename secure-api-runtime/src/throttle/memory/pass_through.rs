//! The hasher of the app's limiter map. Internal: the default hasher parameter of
//! [`MemoryStore`](super::MemoryStore), reached by benchmarks through `__private`.

use std::hash::{BuildHasher, Hasher};

/// Hashes a [`LimitKey`](crate::throttle::LimitKey) by taking its first word through a cheap mixer: the key already
/// is a keyed hash, so hashing it again with SipHash would only cost time. For other key
/// types (benchmarks) the mixer spreads sequential integers; it is not collision-resistant,
/// so keys chosen by clients must be `LimitKey`s.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys that are not `LimitKey`s; fold the bytes in.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        if self.0 == 0 {
            self.0 = n;
        }
    }
}

/// Builds `PassThroughHasher`s.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}
