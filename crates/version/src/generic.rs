//! A fallback order for ecosystems freshen has no rules for.

use std::cmp::Ordering;

/// Alternating runs of digits and non-digits: digit runs compare as
/// numbers (any length, leading zeros ignored), others byte-wise; at a
/// position where one side has a number and the other text, the number is
/// newer; when one runs out, the longer is newer. Never fails.
pub(crate) fn cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let (dx, dy) = (x.is_ascii_digit(), y.is_ascii_digit());
                if dx != dy {
                    return dx.cmp(&dy);
                }
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit() == dx).count();
                let (lx, ly) = (run(a), run(b));
                let ord = if dx {
                    let zx = a[..lx].iter().take_while(|&&c| c == b'0').count();
                    let zy = b[..ly].iter().take_while(|&&c| c == b'0').count();
                    let (nx, ny) = (&a[zx..lx], &b[zy..ly]);
                    nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny))
                } else {
                    a[..lx].cmp(&b[..ly])
                };
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[lx..];
                b = &b[ly..];
            }
        }
    }
}
