//! Alpine (apk-tools) version order:
//! `N(.N)*[a-z]?(_suffix[N])*(-rN)?`.
//!
//! There is no maintained crate for this, so it is written from apk-tools'
//! rules (which follow Gentoo's): numeric components, then one optional
//! letter, then suffixes (`_alpha`, `_beta`, `_pre`, `_rc` sort before the
//! plain release; `_cvs`, `_svn`, `_git`, `_hg`, `_p` after it), then the
//! package revision `-rN` (absent is `-r0`).

use std::cmp::Ordering;

/// Pre-release suffixes in order, then post-release ones. A missing suffix
/// sits between the two groups (see [`Suffix::rank`]).
const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// A numeric component after the first: apk (like Gentoo) compares one
/// with a leading zero as a decimal fraction (`1.01 < 1.1`, `1.010 ==
/// 1.01`), any other numerically.
#[derive(Clone, Debug)]
enum Component {
    Number(Digits),
    Fraction(Box<str>),
}

/// A digit string without leading zeros, so that length then bytes gives
/// numeric order without overflow.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Digits(Box<str>);

impl Digits {
    fn new(s: &str) -> Digits {
        Digits(s.trim_start_matches('0').into())
    }
}

impl Ord for Digits {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Digits {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Debug)]
struct Suffix {
    /// Negative for pre-release suffixes, positive for post-release ones,
    /// so that "no suffix" (0) lies between.
    rank: i8,
    number: Digits,
}

impl Suffix {
    fn cmp(&self, other: &Suffix) -> Ordering {
        self.rank
            .cmp(&other.rank)
            .then_with(|| self.number.cmp(&other.number))
    }
}

/// A parsed apk version.
#[derive(Clone, Debug)]
pub(crate) struct Apk {
    first: Digits,
    rest: Vec<Component>,
    letter: Option<u8>,
    suffixes: Vec<Suffix>,
    revision: Digits,
}

fn digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

pub(crate) fn parse(s: &str) -> Result<Apk, &'static str> {
    let (first, mut rest) = digits(s);
    if first.is_empty() {
        return Err("it does not start with a digit");
    }
    let mut components = Vec::new();
    while let Some(r) = rest.strip_prefix('.') {
        let (d, r) = digits(r);
        if d.is_empty() {
            return Err("a '.' is not followed by a digit");
        }
        components.push(if d.starts_with('0') {
            Component::Fraction(d.trim_end_matches('0').into())
        } else {
            Component::Number(Digits::new(d))
        });
        rest = r;
    }
    let mut letter = None;
    if let Some(&c) = rest.as_bytes().first().filter(|c| c.is_ascii_lowercase()) {
        letter = Some(c);
        rest = &rest[1..];
    }
    let mut suffixes = Vec::new();
    while let Some(r) = rest.strip_prefix('_') {
        // "pre" before "p": the longer name wins, as in apk-tools.
        let (rank, name) = PRE
            .iter()
            .enumerate()
            .find(|(_, p)| r.starts_with(*p))
            .map(|(i, p)| (i as i8 - PRE.len() as i8, *p))
            .or_else(|| {
                POST.iter()
                    .enumerate()
                    .find(|(_, p)| r.starts_with(*p))
                    .map(|(i, p)| (i as i8 + 1, *p))
            })
            .ok_or("it has an unknown '_' suffix")?;
        let (d, r) = digits(&r[name.len()..]);
        suffixes.push(Suffix {
            rank,
            number: Digits::new(d),
        });
        rest = r;
    }
    let mut revision = Digits::new("");
    if let Some(r) = rest.strip_prefix("-r") {
        let (d, r) = digits(r);
        if d.is_empty() {
            return Err("'-r' is not followed by a number");
        }
        revision = Digits::new(d);
        rest = r;
    }
    if !rest.is_empty() {
        return Err("it has trailing characters");
    }
    Ok(Apk {
        first: Digits::new(first),
        rest: components,
        letter,
        suffixes,
        revision,
    })
}

fn cmp_component(a: &Component, b: &Component) -> Ordering {
    match (a, b) {
        (Component::Number(a), Component::Number(b)) => a.cmp(b),
        // A fraction ("0…") is below any number that has no leading zero.
        (Component::Fraction(a), Component::Fraction(b)) => a.cmp(b),
        (Component::Fraction(_), Component::Number(_)) => Ordering::Less,
        (Component::Number(_), Component::Fraction(_)) => Ordering::Greater,
    }
}

impl Apk {
    pub(crate) fn cmp(&self, other: &Apk) -> Ordering {
        self.first
            .cmp(&other.first)
            .then_with(|| {
                for (a, b) in self.rest.iter().zip(&other.rest) {
                    let o = cmp_component(a, b);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                // More components is newer: 1.0 < 1.0.1, and 1.0.1 > 1.0a.
                self.rest.len().cmp(&other.rest.len())
            })
            .then_with(|| self.letter.cmp(&other.letter))
            .then_with(|| {
                for (a, b) in self.suffixes.iter().zip(&other.suffixes) {
                    let o = a.cmp(b);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                // An extra suffix decides by its kind: 1.0_rc1 < 1.0 < 1.0_p1.
                let extra = |s: &[Suffix], n: usize| s.get(n).map_or(0, |s| s.rank.signum());
                let n = self.suffixes.len().min(other.suffixes.len());
                extra(&self.suffixes, n).cmp(&extra(&other.suffixes, n))
            })
            .then_with(|| self.revision.cmp(&other.revision))
    }
}
