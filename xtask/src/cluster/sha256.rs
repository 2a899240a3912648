//! SHA-256 as the cluster path writes it: lowercase hex. Checksums of downloads, the hash of an
//! Envoy configuration in a pod template, and image tags all come from here.

use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    finish_hex(Sha256::new_with_prefix(bytes))
}

/// The lowercase hex SHA-256 of everything `hash` was given.
pub fn finish_hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hex_is_the_lowercase_sha256_that_sha256sum_prints() {
        // `printf abc | sha256sum`
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex(b"abc"), abc);
        let mut hash = Sha256::new();
        hash.update(b"a");
        hash.update(b"bc");
        assert_eq!(finish_hex(hash), abc);
    }
}
