//! RPM version order: `rpmvercmp` over `[epoch:]version[-release]` (rpm 4.18).

use std::cmp::Ordering;

/// An EVR split the way rpm's `rpmverParse` splits it.
#[derive(Clone, Debug)]
pub(crate) struct Rpm {
    /// Digits only; a missing or empty epoch is `0`, as in rpm.
    epoch: Box<str>,
    version: Box<str>,
    /// `None` when there is no `-`; rpm then sorts it before any release,
    /// even an empty one (`1.0 < 1.0-`), which keeps the order total.
    release: Option<Box<str>>,
}

pub(crate) fn parse(s: &str) -> Result<Rpm, &'static str> {
    if s.is_empty() {
        return Err("it is empty");
    }
    // rpm takes an epoch only when the leading digits end in ':'
    // ("a:1" is a version with a colon in it), then the release after the
    // last '-' of the remainder.
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = match s.as_bytes().get(digits) {
        Some(b':') => (&s[..digits], &s[digits + 1..]),
        _ => ("0", s),
    };
    let epoch = if epoch.is_empty() { "0" } else { epoch };
    let (version, release) = match rest.rsplit_once('-') {
        Some((v, r)) => (v, Some(r.into())),
        None => (rest, None),
    };
    Ok(Rpm {
        epoch: epoch.into(),
        version: version.into(),
        release,
    })
}

impl Rpm {
    pub(crate) fn cmp(&self, other: &Rpm) -> Ordering {
        rpmvercmp(self.epoch.as_bytes(), other.epoch.as_bytes())
            .then_with(|| rpmvercmp(self.version.as_bytes(), other.version.as_bytes()))
            .then_with(|| match (&self.release, &other.release) {
                (Some(a), Some(b)) => rpmvercmp(a.as_bytes(), b.as_bytes()),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}

fn is_sep(c: u8) -> bool {
    !c.is_ascii_alphanumeric() && c != b'~' && c != b'^'
}

/// rpm's `rpmvercmp`: segments of digits or of letters, anything else a
/// separator; `~` sorts before everything (even the end), `^` after the
/// end but before anything else; numbers beat letters; leading zeros are
/// ignored.
pub(crate) fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (a, b);
    while !one.is_empty() || !two.is_empty() {
        one = &one[one.iter().take_while(|&&c| is_sep(c)).count()..];
        two = &two[two.iter().take_while(|&&c| is_sep(c)).count()..];
        let (c1, c2) = (one.first().copied(), two.first().copied());
        if c1 == Some(b'~') || c2 == Some(b'~') {
            if c1 != Some(b'~') {
                return Ordering::Greater;
            }
            if c2 != Some(b'~') {
                return Ordering::Less;
            }
            one = &one[1..];
            two = &two[1..];
            continue;
        }
        if c1 == Some(b'^') || c2 == Some(b'^') {
            if c1.is_none() {
                return Ordering::Less;
            }
            if c2.is_none() {
                return Ordering::Greater;
            }
            if c1 != Some(b'^') {
                return Ordering::Greater;
            }
            if c2 != Some(b'^') {
                return Ordering::Less;
            }
            one = &one[1..];
            two = &two[1..];
            continue;
        }
        let (Some(c1), Some(_)) = (c1, c2) else { break };
        let isnum = c1.is_ascii_digit();
        let class = |c: &u8| {
            if isnum {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let l1 = one.iter().take_while(|c| class(c)).count();
        let l2 = two.iter().take_while(|c| class(c)).count();
        if l2 == 0 {
            // Different kinds of segment: a number is newer than letters.
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut s1, mut s2) = (&one[..l1], &two[..l2]);
        if isnum {
            s1 = &s1[s1.iter().take_while(|&&c| c == b'0').count()..];
            s2 = &s2[s2.iter().take_while(|&&c| c == b'0').count()..];
            let ord = s1.len().cmp(&s2.len());
            if ord != Ordering::Equal {
                return ord;
            }
        }
        let ord = s1.cmp(s2);
        if ord != Ordering::Equal {
            return ord;
        }
        one = &one[l1..];
        two = &two[l2..];
    }
    // Equal segments; whoever has something left (a separator) wins.
    one.is_empty().cmp(&two.is_empty()).reverse()
}
