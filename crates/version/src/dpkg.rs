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
fn order(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
        Some(b'~') => -1,
        Some(c) => i32::from(*c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (by [`order`]) and digit
/// runs (numerically, of any length, leading zeros ignored).
pub(crate) fn verrevcmp(mut a: &[u8], mut b: &[u8]) -> Ordering {
    let nondigit = |s: &[u8]| s.first().is_some_and(|c| !c.is_ascii_digit());
    while !a.is_empty() || !b.is_empty() {
        while nondigit(a) || nondigit(b) {
            let (ac, bc) = (order(a.first()), order(b.first()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
        a = &a[strip(a)..];
        b = &b[strip(b)..];
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        // Without leading zeros the longer digit run is the larger number;
        // equal lengths compare digit by digit.
        let ord = da.cmp(&db).then_with(|| a[..da].cmp(&b[..db]));
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}
