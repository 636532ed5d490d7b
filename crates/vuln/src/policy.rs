//! Policies: when do an image's vulnerabilities call for a rebuild?
//!
//! - `always`: every base change rebuilds;
//! - `security-only`: a base change rebuilds only when it fixes a
//!   vulnerability present in the image;
//! - `thresholds`: rebuild when the counts per severity satisfy an
//!   expression such as `medium >= 3 || high > 0` (the Harbor recipe). A
//!   severity counts its findings and the more severe ones (`high` counts
//!   high and critical, as Harbor's and Grype's "and above"), unless the
//!   expression says `high_only` or the policy says `counting: exact`.
//!
//! Findings on the ignore list (until their expiry) don't count, and with
//! `fixable_only` neither do findings no fixed version is known for.

use std::collections::BTreeMap;

use freshen_reference::glob;
use serde::{Deserialize, Serialize};

use crate::index::Finding;
use crate::severity::Severity;

/// What a policy acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every change acts.
    #[default]
    Always,
    /// A base change acts only when it fixes something present.
    SecurityOnly,
    /// Counts per severity decide, by the threshold expression.
    Thresholds,
}

/// How a severity named in a threshold expression counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Counting {
    /// `high` counts high and critical findings; `medium` counts medium,
    /// high and critical; `unknown` counts only unrated findings.
    #[default]
    AtOrAbove,
    /// `high` counts high findings only. How freshen counted before
    /// at-or-above was the default: a decision stored then, whose rules
    /// name no counting, replays this way.
    Exact,
}

/// One ignore entry: a vulnerability id (or an alias of it) not to count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    /// `CVE-…`, `GHSA-…`, `DSA-…`: matches the finding's id or any alias.
    pub id: String,
    /// Why: shown with every decision it changes.
    pub reason: String,
    /// The last day (UTC, `YYYY-MM-DD`) the entry holds; none: for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// A policy as written in the config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `always`, `security-only` or `thresholds`.
    #[serde(default)]
    pub mode: Mode,
    /// With `thresholds`: e.g. `critical > 0 || high >= 2 || medium >= 5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<String>,
    /// How severities in `thresholds` count: `at-or-above` (the default)
    /// or `exact`. Set in every stored thresholds policy, so a decision
    /// names how it counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting: Option<Counting>,
    /// Count only findings a fixed version is known for.
    #[serde(default)]
    pub fixable_only: bool,
    /// Findings not to count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<Ignore>,
    /// What an image governed by this policy sets off when new
    /// vulnerability data (a feed sync, an import) makes the policy act on
    /// it: a `vulnerability` change event, and these triggers. Unset: new
    /// data makes no events. Not a rule: it is no part of the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_vulnerable: Option<Vec<String>>,
    /// What waits for a person's approval for images this policy governs:
    /// `cascade`, `rollout`. Not a rule: no part of the version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approve: Vec<String>,
}

/// A policy checked and ready to evaluate.
#[derive(Clone, Debug)]
pub struct Policy {
    spec: PolicySpec,
    expr: Option<Expr>,
    version: String,
}

/// Counts of findings per severity, as thresholds see them.
pub type Counts = BTreeMap<Severity, usize>;

/// The outcome of evaluating a policy on an image's findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when the policy says act (rebuild, trigger).
    pub act: bool,
    /// One line a user can read: which rule decided and on what.
    pub reason: String,
    /// Counted findings per severity (after ignores and `fixable_only`).
    pub counts: BTreeMap<String, usize>,
    /// Ids that were not counted because of an ignore entry, with its reason.
    pub ignored: Vec<(String, String)>,
    /// The policy's version: a digest of its normalised form, so a stored
    /// decision names exactly the rules that made it.
    pub policy_version: String,
}

impl Policy {
    /// Checks a spec as written in the config: the expression must parse,
    /// `thresholds` needs one, and expiry dates must be dates. Errors say
    /// which part is wrong. An expression with no `counting` counts at or
    /// above (and the spec says so, in its version too).
    pub fn new(mut spec: PolicySpec) -> Result<Policy, String> {
        if let Some(bad) = spec
            .approve
            .iter()
            .find(|s| !matches!(s.as_str(), "cascade" | "rollout"))
        {
            return Err(format!(
                "approve: {bad:?} is not a stage: write cascade or rollout"
            ));
        }
        if spec.thresholds.is_some() && spec.counting.is_none() {
            spec.counting = Some(Counting::AtOrAbove);
        }
        Policy::checked(spec)
    }

    /// A policy as a stored decision kept it, to replay it as made: rules
    /// stored before `counting` existed counted exactly.
    pub fn from_stored(mut spec: PolicySpec) -> Result<Policy, String> {
        if spec.thresholds.is_some() && spec.counting.is_none() {
            spec.counting = Some(Counting::Exact);
        }
        Policy::checked(spec)
    }

    fn checked(spec: PolicySpec) -> Result<Policy, String> {
        let counting = spec.counting.unwrap_or_default();
        let expr = match (&spec.mode, &spec.thresholds) {
            (Mode::Thresholds, None) => {
                return Err("mode thresholds needs a `thresholds` expression, e.g. \"medium >= 3 || high > 0\"".into());
            }
            (_, Some(t)) => Some(
                Expr::parse_counting(t, counting).map_err(|e| format!("thresholds {t:?}: {e}"))?,
            ),
            (_, None) => None,
        };
        for (i, ig) in spec.ignore.iter().enumerate() {
            if ig.id.trim().is_empty() {
                return Err(format!("ignore[{i}].id: empty"));
            }
            if ig.reason.trim().is_empty() {
                return Err(format!("ignore[{i}] ({}): give a reason", ig.id));
            }
            if let Some(d) = &ig.expires
                && !is_date(d)
            {
                return Err(format!(
                    "ignore[{i}].expires: {d:?} is not a date (YYYY-MM-DD)"
                ));
            }
        }
        let canonical = serde_json::to_vec(&rules_of(&spec)).expect("a policy serialises");
        let version = format!("{:016x}", fnv1a(&canonical));
        Ok(Policy {
            spec,
            expr,
            version,
        })
    }

    /// The spec it was made from.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// The spec as JSON: what a stored decision keeps, to replay it.
    pub fn spec_json(&self) -> serde_json::Value {
        serde_json::to_value(rules_of(&self.spec)).expect("a policy serialises")
    }

    /// The triggers a `vulnerability` event of an image it governs fires;
    /// `None` when new data makes no events for them.
    pub fn on_vulnerable(&self) -> Option<&[String]> {
        self.spec.on_vulnerable.as_deref()
    }

    /// The stages (`cascade`, `rollout`) that wait for approval for the
    /// images it governs.
    pub fn approve(&self) -> &[String] {
        &self.spec.approve
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.spec.mode
    }

    /// A digest of the normalised spec (changes whenever a rule does).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Which findings count, on `today` (`YYYY-MM-DD`, for expiries), and
    /// the ignored ones with their reasons.
    pub fn counted<'f>(
        &self,
        findings: &'f [Finding],
        today: &str,
    ) -> (Vec<&'f Finding>, Vec<(String, String)>) {
        let mut counted = Vec::new();
        let mut ignored = Vec::new();
        for f in findings {
            let hit = self.spec.ignore.iter().find(|ig| {
                ig.expires.as_deref().is_none_or(|e| e >= today)
                    && (f.id == ig.id || f.aliases.contains(&ig.id))
            });
            if let Some(ig) = hit {
                ignored.push((f.id.clone(), ig.reason.clone()));
            } else if !self.spec.fixable_only || f.fixed.is_some() {
                counted.push(f);
            }
        }
        (counted, ignored)
    }

    /// Evaluates the thresholds (or `always`) on an image's findings.
    /// `security-only` needs to know what a base change fixes, so here it
    /// acts when any counted finding would be fixed by an upgrade; callers
    /// that diff a base pass only the findings the new base fixes.
    pub fn evaluate(&self, findings: &[Finding], today: &str) -> Verdict {
        let (counted, ignored) = self.counted(findings, today);
        let mut counts: Counts = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for f in &counted {
            *counts.entry(f.severity).or_default() += 1;
        }
        let shown: BTreeMap<String, usize> = counts
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), *n))
            .collect();
        let summary = summary(&counts);
        let (act, reason) = match self.spec.mode {
            Mode::Always => (true, "policy always: every change acts".to_string()),
            Mode::SecurityOnly => {
                let fixable = counted.iter().filter(|f| f.fixed.is_some()).count();
                if fixable > 0 {
                    (
                        true,
                        format!("security-only: {fixable} fixable finding(s) present ({summary})"),
                    )
                } else {
                    (
                        false,
                        format!("security-only: nothing fixable present ({summary})"),
                    )
                }
            }
            Mode::Thresholds => {
                let expr = self.expr.as_ref().expect("checked in new");
                let text = self.spec.thresholds.as_deref().unwrap_or_default();
                if expr.eval(&counts) {
                    (true, format!("thresholds `{text}` met ({summary})"))
                } else {
                    (false, format!("thresholds `{text}` not met ({summary})"))
                }
            }
        };
        Verdict {
            act,
            reason,
            counts: shown,
            ignored,
            policy_version: self.version.clone(),
        }
    }
}

impl Policy {
    /// Evaluates a *change* (a base image moved under a tag) for one image
    /// built on it. `fixed` are the image's findings that the new base
    /// fixes. `always` acts; `security-only` acts when any counted finding
    /// is fixed; `thresholds` applies the expression to the counts of the
    /// fixed findings, so an update acts only when it fixes enough.
    pub fn evaluate_change(&self, fixed: &[Finding], today: &str) -> Verdict {
        let mut v = self.evaluate(fixed, today);
        let (counted, _) = self.counted(fixed, today);
        let ids = id_list(&counted);
        match self.spec.mode {
            Mode::Always => {}
            Mode::SecurityOnly if counted.is_empty() => {
                v.act = false;
                v.reason = "security-only: the update fixes nothing present".into();
            }
            Mode::SecurityOnly => {
                v.act = true;
                v.reason = format!("security-only: the update fixes {ids}");
            }
            Mode::Thresholds => {
                let text = self.spec.thresholds.as_deref().unwrap_or_default();
                let met = if v.act { "met" } else { "not met" };
                let what = if counted.is_empty() {
                    "it fixes nothing present".to_string()
                } else {
                    format!("it fixes {ids}")
                };
                v.reason = format!("thresholds `{text}` {met} by the update: {what}");
            }
        }
        v
    }
}

/// The spec without what is not a rule (`on_vulnerable`): what versions
/// a policy and what a decision keeps.
fn rules_of(spec: &PolicySpec) -> PolicySpec {
    PolicySpec {
        on_vulnerable: None,
        approve: Vec::new(),
        ..spec.clone()
    }
}

/// `CVE-1 (high), CVE-2 (medium)`, each id once, at most 5 then `…`.
fn id_list(findings: &[&Finding]) -> String {
    let mut seen = std::collections::BTreeMap::new();
    for f in findings {
        let s = seen.entry(f.id.as_str()).or_insert(f.severity);
        *s = (*s).max(f.severity);
    }
    let mut parts: Vec<String> = seen
        .iter()
        .take(5)
        .map(|(id, s)| format!("{id} ({s})"))
        .collect();
    if seen.len() > 5 {
        parts.push(format!("and {} more", seen.len() - 5));
    }
    parts.join(", ")
}

/// A policy with a name, and the images it governs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Image references this policy governs, as patterns over the
    /// normalised reference (`registry/repository:tag`): `*` matches any
    /// run of characters, `/` included. `localhost:5000/team-a/*`.
    #[serde(default)]
    pub images: Vec<String>,
    /// The policy.
    #[serde(flatten)]
    pub policy: PolicySpec,
}

/// The config's policies: named groups, each governing the images its
/// patterns match (first match wins, in name order), and a default policy
/// for the rest.
#[derive(Clone, Debug)]
pub struct PolicySet {
    default: Policy,
    groups: Vec<(String, Vec<String>, Policy)>,
}

/// The name under which the default policy (`policy:`) is stored.
pub const DEFAULT_POLICY: &str = "default";

impl PolicySet {
    /// Checks every policy; errors name the group.
    pub fn new(
        default: PolicySpec,
        groups: &std::collections::BTreeMap<String, GroupSpec>,
    ) -> Result<PolicySet, (String, String)> {
        let default = Policy::new(default).map_err(|e| ("policy".to_string(), e))?;
        let mut out = Vec::new();
        for (name, g) in groups {
            if name == DEFAULT_POLICY {
                return Err((
                    format!("policies.{name}"),
                    "the name `default` is the top-level `policy`: choose another".into(),
                ));
            }
            for (i, p) in g.images.iter().enumerate() {
                if p.trim().is_empty() {
                    return Err((
                        format!("policies.{name}.images[{i}]"),
                        "empty pattern".into(),
                    ));
                }
            }
            let p = Policy::new(g.policy.clone()).map_err(|e| (format!("policies.{name}"), e))?;
            out.push((name.clone(), g.images.clone(), p));
        }
        Ok(PolicySet {
            default,
            groups: out,
        })
    }

    /// Only the default policy.
    pub fn single(default: Policy) -> PolicySet {
        PolicySet {
            default,
            groups: Vec::new(),
        }
    }

    /// A policy by name (`default` is the top-level one).
    pub fn get(&self, name: &str) -> Option<&Policy> {
        if name == DEFAULT_POLICY {
            return Some(&self.default);
        }
        self.groups
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, p)| p)
    }

    /// The names of the policies, `default` first.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(DEFAULT_POLICY)
            .chain(self.groups.iter().map(|(n, _, _)| n.as_str()))
            .collect()
    }

    /// The policy governing an image, known by any of its references: the
    /// first group with a pattern matching one of them, else the default.
    pub fn for_image<'a>(&'a self, references: &[&str]) -> (&'a str, &'a Policy) {
        for (name, patterns, p) in &self.groups {
            if patterns
                .iter()
                .any(|pat| references.iter().any(|r| glob(pat, r)))
            {
                return (name, p);
            }
        }
        (DEFAULT_POLICY, &self.default)
    }

    /// True when every policy acts on every change (`always`): a change
    /// then needs no judgement at all.
    pub fn all_always(&self) -> bool {
        self.default.mode() == Mode::Always
            && self.groups.iter().all(|(_, _, p)| p.mode() == Mode::Always)
    }
}

fn summary(counts: &Counts) -> String {
    let parts: Vec<String> = counts
        .iter()
        .rev()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    if parts.is_empty() {
        "no findings".into()
    } else {
        parts.join(", ")
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0))
}

/// FNV-1a, 64 bit: a stable digest of the policy text (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A threshold expression: comparisons of severity counts joined by
/// `&&`, `||`, `!` and parentheses. `total` counts every severity;
/// `high+` counts high and above, `high_only` high alone, and `high` either,
/// as the policy's [`Counting`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Not.
    Not(Box<Expr>),
    /// `count(levels) op n`.
    Cmp(Vec<Severity>, Op, usize),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Expr {
    /// Parses `medium >= 3 || high > 0`, a severity counting at or above.
    /// Errors name the position and what was expected.
    pub fn parse(s: &str) -> Result<Expr, String> {
        Expr::parse_counting(s, Counting::AtOrAbove)
    }

    /// Parses an expression whose bare severities count as `counting` says.
    pub fn parse_counting(s: &str, counting: Counting) -> Result<Expr, String> {
        let tokens = tokenize(s)?;
        let mut p = Parser {
            t: &tokens,
            i: 0,
            counting,
        };
        let e = p.or()?;
        match p.t.get(p.i) {
            None => Ok(e),
            Some((pos, t)) => Err(format!("unexpected {t:?} at column {}", pos + 1)),
        }
    }

    /// Evaluates against counts per severity.
    pub fn eval(&self, counts: &Counts) -> bool {
        match self {
            Expr::And(a, b) => a.eval(counts) && b.eval(counts),
            Expr::Or(a, b) => a.eval(counts) || b.eval(counts),
            Expr::Not(a) => !a.eval(counts),
            Expr::Cmp(levels, op, n) => {
                let c: usize = levels
                    .iter()
                    .map(|l| counts.get(l).copied().unwrap_or(0))
                    .sum();
                match op {
                    Op::Gt => c > *n,
                    Op::Ge => c >= *n,
                    Op::Lt => c < *n,
                    Op::Le => c <= *n,
                    Op::Eq => c == *n,
                    Op::Ne => c != *n,
                }
            }
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_alphanumeric() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if i < b.len() && b[i] == b'+' {
                i += 1;
            }
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            if ["&&", "||", ">=", "<=", "==", "!="].contains(&two) {
                i += 2;
            } else if b"()<>!".contains(&c) {
                i += 1;
            } else {
                return Err(format!("unexpected {:?} at column {}", c as char, i + 1));
            }
        }
        out.push((start, s[start..i].to_string()));
    }
    Ok(out)
}

struct Parser<'a> {
    t: &'a [(usize, String)],
    i: usize,
    counting: Counting,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(|(_, s)| s.as_str())
    }
    fn next(&mut self, what: &str) -> Result<(usize, String), String> {
        let t = self
            .t
            .get(self.i)
            .cloned()
            .ok_or_else(|| format!("expected {what} at the end"))?;
        self.i += 1;
        Ok(t)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek() == Some("||") {
            self.i += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.peek() == Some("&&") {
            self.i += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some("!") => {
                self.i += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.i += 1;
                let e = self.or()?;
                let (pos, t) = self.next("`)`")?;
                if t != ")" {
                    return Err(format!("expected `)` at column {}, found {t:?}", pos + 1));
                }
                Ok(e)
            }
            _ => self.cmp(),
        }
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let (pos, name) = self.next("a severity")?;
        let levels = levels(&name, self.counting).ok_or_else(|| {
            format!(
                "unknown severity {name:?} at column {} (use critical, high, medium, low, negligible, unknown or total; `high` counts high and above, `high_only` high alone)",
                pos + 1
            )
        })?;
        let (pos, op) = self.next("a comparison")?;
        let op = match op.as_str() {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            _ => {
                return Err(format!(
                    "expected a comparison (>, >=, <, <=, ==, !=) at column {}, found {op:?}",
                    pos + 1
                ));
            }
        };
        let (pos, n) = self.next("a number")?;
        let n = n
            .parse()
            .map_err(|_| format!("expected a number at column {}, found {n:?}", pos + 1))?;
        Ok(Expr::Cmp(levels, op, n))
    }
}

fn levels(name: &str, counting: Counting) -> Option<Vec<Severity>> {
    let lower = name.to_ascii_lowercase();
    if lower == "total" || lower == "all" {
        return Some(Severity::ALL.to_vec());
    }
    let at_or_above = |s: Severity| match s {
        // Not a rank: an unrated finding is not "above" anything.
        Severity::Unknown => vec![s],
        _ => Severity::ALL.iter().copied().filter(|x| *x >= s).collect(),
    };
    if let Some(base) = lower.strip_suffix('+') {
        return Some(at_or_above(Severity::from_word(base)?));
    }
    let (base, exact) = match lower.strip_suffix("_only") {
        Some(base) => (base, true),
        None => (lower.as_str(), counting == Counting::Exact),
    };
    // Only the canonical names here: "moderate" in an expression is a typo
    // more often than a choice.
    let s = Severity::ALL.iter().copied().find(|s| s.as_str() == base)?;
    Some(if exact { vec![s] } else { at_or_above(s) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(Severity, usize)]) -> Counts {
        pairs.iter().copied().collect()
    }

    #[test]
    fn harbor_recipe() {
        let e = Expr::parse("medium >= 3 || high > 0").unwrap();
        assert!(!e.eval(&counts(&[(Severity::Medium, 2)])));
        assert!(e.eval(&counts(&[(Severity::Medium, 3)])));
        assert!(e.eval(&counts(&[(Severity::High, 1)])));
        assert!(!e.eval(&counts(&[(Severity::Low, 40)])));
    }

    #[test]
    fn precedence_parentheses_not_and_plus() {
        let e = Expr::parse_counting(
            "critical > 0 || high >= 2 && !(medium < 5)",
            Counting::Exact,
        )
        .unwrap();
        assert!(!e.eval(&counts(&[(Severity::High, 2), (Severity::Medium, 4)])));
        assert!(e.eval(&counts(&[(Severity::High, 2), (Severity::Medium, 5)])));
        assert!(e.eval(&counts(&[(Severity::Critical, 1)])));
        let plus = Expr::parse("high+ >= 2").unwrap();
        assert!(plus.eval(&counts(&[(Severity::High, 1), (Severity::Critical, 1)])));
        assert!(Expr::parse("total == 0").unwrap().eval(&counts(&[])));
    }

    #[test]
    fn a_severity_counts_the_more_severe_too_unless_only() {
        let crit = counts(&[(Severity::Critical, 1)]);
        // The 001 recipe acts on a critical finding.
        assert!(Expr::parse("medium >= 3 || high > 0").unwrap().eval(&crit));
        assert!(!Expr::parse("high_only > 0").unwrap().eval(&crit));
        assert!(
            !Expr::parse_counting("high > 0", Counting::Exact)
                .unwrap()
                .eval(&crit)
        );
        assert!(
            Expr::parse_counting("high+ > 0", Counting::Exact)
                .unwrap()
                .eval(&crit)
        );
        let mixed = counts(&[
            (Severity::Medium, 1),
            (Severity::High, 1),
            (Severity::Critical, 1),
        ]);
        assert!(Expr::parse("medium >= 3").unwrap().eval(&mixed));
        assert!(!Expr::parse("medium_only >= 3").unwrap().eval(&mixed));
        // Unrated findings are not above anything, nor counted by `low`.
        let unrated = counts(&[(Severity::Unknown, 2)]);
        assert!(!Expr::parse("negligible > 0").unwrap().eval(&unrated));
        assert!(Expr::parse("unknown >= 2").unwrap().eval(&unrated));
    }

    #[test]
    fn on_vulnerable_is_not_a_rule() {
        let rules = PolicySpec {
            mode: Mode::Thresholds,
            thresholds: Some("high > 0".into()),
            ..PolicySpec::default()
        };
        let alerting = PolicySpec {
            on_vulnerable: Some(vec!["alert".into()]),
            ..rules.clone()
        };
        let (a, b) = (Policy::new(rules).unwrap(), Policy::new(alerting).unwrap());
        assert_eq!(a.version(), b.version());
        assert_eq!(a.spec_json(), b.spec_json());
        assert_eq!(b.on_vulnerable(), Some(&["alert".to_string()][..]));
        assert_eq!(a.on_vulnerable(), None);
    }

    #[test]
    fn stored_rules_without_counting_replay_exactly() {
        let spec = PolicySpec {
            mode: Mode::Thresholds,
            thresholds: Some("high > 0".into()),
            ..PolicySpec::default()
        };
        let crit = [finding("CVE-1", Severity::Critical, Some("2"))];
        let new = Policy::new(spec.clone()).unwrap();
        assert_eq!(new.spec().counting, Some(Counting::AtOrAbove));
        assert!(new.evaluate(&crit, "2026-12-05").act);
        let stored = Policy::from_stored(spec).unwrap();
        assert_eq!(stored.spec().counting, Some(Counting::Exact));
        assert!(!stored.evaluate(&crit, "2026-12-05").act);
        assert_ne!(new.version(), stored.version());
        // A config may ask for exact counting.
        let exact: PolicySpec = serde_json::from_value(serde_json::json!({
            "mode": "thresholds", "thresholds": "high > 0", "counting": "exact"
        }))
        .unwrap();
        assert!(
            !Policy::new(exact)
                .unwrap()
                .evaluate(&crit, "2026-12-05")
                .act
        );
    }

    #[test]
    fn errors_say_where() {
        for (s, want) in [
            ("medium >= ", "expected a number"),
            ("moderate > 1", "unknown severity \"moderate\" at column 1"),
            ("high >> 1", "expected a number at column 7"),
            ("(high > 1", "expected `)`"),
            ("high > 1 high", "unexpected \"high\" at column 10"),
            ("high = 1", "unexpected '='"),
        ] {
            let err = Expr::parse(s).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    fn finding(id: &str, sev: Severity, fixed: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            aliases: vec![format!("DSA-{id}")],
            matched: vec![id.into()],
            package: "p".into(),
            version: "1".into(),
            package_type: "deb".into(),
            fixed: fixed.map(str::to_string),
            severity: sev,
            score: None,
            summary: None,
            sources: vec!["osv".into()],
        }
    }

    #[test]
    fn ignores_expire_and_fixable_only() {
        let spec = PolicySpec {
            mode: Mode::Thresholds,
            thresholds: Some("high > 0".into()),
            fixable_only: true,
            ignore: vec![Ignore {
                id: "DSA-A".into(),
                reason: "not reachable".into(),
                expires: Some("2026-12-31".into()),
            }],
            ..PolicySpec::default()
        };
        let p = Policy::new(spec).unwrap();
        let f = [
            finding("A", Severity::High, Some("2")),
            finding("B", Severity::High, None),
        ];
        let v = p.evaluate(&f, "2026-12-02");
        assert!(!v.act, "{v:?}");
        assert_eq!(v.ignored, [("A".to_string(), "not reachable".to_string())]);
        let v = p.evaluate(&f, "2027-01-01");
        assert!(v.act, "the ignore expired: {v:?}");
        assert!(v.reason.contains("high 1"), "{}", v.reason);
    }

    #[test]
    fn specs_are_checked_and_versioned() {
        let bad = |spec: PolicySpec, want: &str| {
            let err = Policy::new(spec).unwrap_err();
            assert!(err.contains(want), "{err}");
        };
        bad(
            PolicySpec {
                mode: Mode::Thresholds,
                ..PolicySpec::default()
            },
            "needs a `thresholds`",
        );
        bad(
            PolicySpec {
                ignore: vec![Ignore {
                    id: "CVE-1".into(),
                    reason: "x".into(),
                    expires: Some("next week".into()),
                }],
                ..PolicySpec::default()
            },
            "ignore[0].expires",
        );
        let a = Policy::new(PolicySpec::default()).unwrap();
        let b = Policy::new(PolicySpec {
            fixable_only: true,
            ..PolicySpec::default()
        })
        .unwrap();
        assert_ne!(a.version(), b.version());
        assert_eq!(
            a.version(),
            Policy::new(PolicySpec::default()).unwrap().version()
        );
    }

    #[test]
    fn security_only_needs_something_fixable() {
        let p = Policy::new(PolicySpec {
            mode: Mode::SecurityOnly,
            ..PolicySpec::default()
        })
        .unwrap();
        assert!(
            !p.evaluate(&[finding("A", Severity::High, None)], "2026-01-01")
                .act
        );
        assert!(
            p.evaluate(&[finding("A", Severity::Low, Some("2"))], "2026-01-01")
                .act
        );
    }

    #[test]
    fn a_change_acts_on_what_it_fixes() {
        let today = "2026-01-01";
        let sec = Policy::new(PolicySpec {
            mode: Mode::SecurityOnly,
            ..PolicySpec::default()
        })
        .unwrap();
        let quiet = sec.evaluate_change(&[], today);
        assert!(!quiet.act);
        assert_eq!(
            quiet.reason,
            "security-only: the update fixes nothing present"
        );
        let fixed = [
            finding("CVE-1", Severity::High, Some("2")),
            finding("CVE-1", Severity::High, Some("2")),
            finding("CVE-2", Severity::Low, Some("2")),
        ];
        let v = sec.evaluate_change(&fixed, today);
        assert!(v.act);
        assert_eq!(
            v.reason,
            "security-only: the update fixes CVE-1 (high), CVE-2 (low)"
        );
        let th = Policy::new(PolicySpec {
            mode: Mode::Thresholds,
            thresholds: Some("high > 0".into()),
            ..PolicySpec::default()
        })
        .unwrap();
        assert!(th.evaluate_change(&fixed, today).act);
        let low = th.evaluate_change(&fixed[2..], today);
        assert!(!low.act);
        assert_eq!(
            low.reason,
            "thresholds `high > 0` not met by the update: it fixes CVE-2 (low)"
        );
        let always = Policy::new(PolicySpec::default()).unwrap();
        assert!(always.evaluate_change(&[], today).act);
    }

    #[test]
    fn groups_match_references_first_wins() {
        let mut groups = std::collections::BTreeMap::new();
        groups.insert(
            "a-team".to_string(),
            GroupSpec {
                images: vec!["localhost:5000/team-a/*".into()],
                policy: PolicySpec {
                    mode: Mode::SecurityOnly,
                    ..PolicySpec::default()
                },
            },
        );
        groups.insert(
            "b-all".to_string(),
            GroupSpec {
                images: vec!["*:latest".into(), "docker.io/*/node:*".into()],
                policy: PolicySpec::default(),
            },
        );
        let set = PolicySet::new(PolicySpec::default(), &groups).unwrap();
        assert!(!set.all_always());
        assert_eq!(
            set.for_image(&["localhost:5000/team-a/x/app:1"]).0,
            "a-team"
        );
        assert_eq!(
            set.for_image(&["localhost:5000/team-b/app:latest"]).0,
            "b-all"
        );
        assert_eq!(set.for_image(&["docker.io/library/node:20"]).0, "b-all");
        assert_eq!(set.for_image(&["localhost:5000/team-b/app:1"]).0, "default");
        assert_eq!(set.for_image(&[]).0, "default");
        assert_eq!(set.names(), ["default", "a-team", "b-all"]);
        assert!(set.get("a-team").is_some() && set.get("nope").is_none());
        assert!(glob("a*b*c", "aXXbYc") && !glob("a*b*c", "aXXbY") && glob("*", ""));

        groups.insert(
            "default".to_string(),
            GroupSpec {
                images: vec![],
                policy: PolicySpec::default(),
            },
        );
        assert_eq!(
            PolicySet::new(PolicySpec::default(), &groups)
                .unwrap_err()
                .0,
            "policies.default"
        );
    }
}
