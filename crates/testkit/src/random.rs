//! Random secrets and names for the parts (passwords, tokens, ids).

/// Random lowercase hex string of `bytes` random bytes.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}
