//! apk-tools' installed database, `lib/apk/db/installed`: one-letter
//! fields (`P:` name, `V:` version, `A:` arch, `o:` origin), packages
//! separated by blank lines.

use super::package;
use crate::model::{Ecosystem, Package};

/// Parses `lib/apk/db/installed`.
pub(crate) fn parse(data: &[u8], location: &str, warnings: &mut Vec<String>) -> Vec<Package> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut cur: Vec<(char, &str)> = Vec::new();
    let mut start = 1;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().chain(std::iter::once(&"")).enumerate() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                finish(&cur, location, start, &mut out, warnings);
                cur.clear();
            }
            start = i + 2;
            continue;
        }
        let mut chars = line.chars();
        match (chars.next(), chars.next()) {
            (Some(k), Some(':')) => cur.push((k, &line[k.len_utf8() + 1..])),
            _ => warnings.push(format!("{location}: line {}: not a field, ignored", i + 1)),
        }
    }
    out
}

fn finish(
    fields: &[(char, &str)],
    location: &str,
    line: usize,
    out: &mut Vec<Package>,
    warnings: &mut Vec<String>,
) {
    let get = |k: char| {
        fields
            .iter()
            .find(|(f, v)| *f == k && !v.is_empty())
            .map(|(_, v)| *v)
    };
    let (Some(name), Some(version)) = (get('P'), get('V')) else {
        warnings.push(format!(
            "{location}: line {line}: package without P: or V: skipped"
        ));
        return;
    };
    let mut p = package(Ecosystem::Apk, name, version, location);
    p.arch = get('A').map(str::to_string);
    p.source_name = Some(get('o').unwrap_or(name).to_string());
    p.source_version = Some(version.to_string());
    out.push(p);
}
