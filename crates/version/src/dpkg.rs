//! Debian version order (Debian Policy 5.6.12, dpkg's `lib/dpkg/version.c`).

use std::cmp::Ordering;

/// `[epoch:]upstream[-revision]`, split once so comparison only walks bytes.
#[derive(Clone, Debug)]
pub(crate) struct Dpkg {
    epoch: u32,
    upstream: Box<str>,
    revision: Box<str>,
}

/// Splits like dpkg's `parseversion`, rejecting what dpkg rejects as an
/// error (not what it merely warns about, so odd but real versions still
/// compare the way dpkg compares them).
pub(crate) fn parse(s: &str) -> Result<Dpkg, &'static str> {
    // dpkg trims surrounding whitespace before parsing.
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() {
        return Err("it is empty");
    }
    if s.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err("it has embedded spaces");
    }
    let (epoch, rest) = match s.split_once(':') {
        Some((e, rest)) => {
            if e.is_empty() {
                return Err("the epoch is empty");
            }
            if !e.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the epoch is not a number");
            }
            // dpkg keeps the epoch in an int and refuses anything larger.
            let epoch: u32 = e.parse().map_err(|_| "the epoch is too big")?;
            if epoch > i32::MAX as u32 {
                return Err("the epoch is too big");
            }
            if rest.is_empty() {
                return Err("nothing follows the colon");
            }
            (epoch, rest)
        }
        None => (0, s),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((_, "")) => return Err("the revision is empty"),
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err("the upstream version is empty");
    }
    Ok(Dpkg {
        epoch,
        upstream: upstream.into(),
        revision: revision.into(),
    })
}

impl Dpkg {
    pub(crate) fn cmp(&self, other: &Dpkg) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

/// The weight of one byte in a non-digit run: `~` before the end of the
/// string, the end before letters, letters before everything else.
#[inline]
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (by [`order`]) and digit
/// runs (numerically, of any length, leading zeros ignored). Walks both
/// strings once, by index, as dpkg's C does.
pub(crate) fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let nondigit = |c: Option<&u8>| c.is_some_and(|c| !c.is_ascii_digit());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while nondigit(a.get(i)) || nondigit(b.get(j)) {
            // The same non-digit on both sides weighs the same.
            if let (Some(x), Some(y)) = (a.get(i), b.get(j))
                && x == y
            {
                i += 1;
                j += 1;
                continue;
            }
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            // Both are non-digits here (the end and a digit weigh the same,
            // a non-digit never weighs 0), so neither runs past its end.
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let (si, sj) = (i, j);
        while a.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        // Without leading zeros the longer digit run is the larger number;
        // equal lengths compare digit by digit (a loop: runs are short, and
        // a slice `cmp` calls `memcmp`).
        if i - si != j - sj {
            return (i - si).cmp(&(j - sj));
        }
        for (x, y) in a[si..i].iter().zip(&b[sj..j]) {
            if x != y {
                return x.cmp(y);
            }
        }
    }
    Ordering::Equal
}
