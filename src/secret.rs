//! Comparing secrets (the passphrase, the boss key, the metrics key) in time
//! that does not depend on where they differ, so an attacker cannot learn a
//! secret byte by byte from answer times. One helper for the server and the
//! stores.

/// Whether `a` and `b` are the same secret, without an early exit on the
/// first differing byte (only the length shows).
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(same_secret(b"", b""));
    }
}
