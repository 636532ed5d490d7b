//! Severity levels, from CVSS scores or a database's own words.

use serde::{Deserialize, Serialize};

use crate::osv::{Affected, Record};

/// How serious a finding is. Ordered: `Unknown < Negligible < Low < … < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// No rating known.
    Unknown,
    /// Rated, but of no practical concern (Debian's "unimportant").
    Negligible,
    /// CVSS 0.1–3.9.
    Low,
    /// CVSS 4.0–6.9.
    Medium,
    /// CVSS 7.0–8.9.
    High,
    /// CVSS 9.0–10.0.
    Critical,
}

impl Severity {
    /// Every level, lowest first.
    pub const ALL: [Severity; 6] = [
        Severity::Unknown,
        Severity::Negligible,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name, as in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Negligible => "negligible",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The CVSS qualitative rating of a base score.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Negligible,
        }
    }

    /// A database's or scanner's word: `HIGH`, `Moderate`, `important`,
    /// `unimportant`, … (Harbor, Trivy, Grype, GHSA, Ubuntu, Red Hat).
    pub fn from_word(word: &str) -> Option<Severity> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            "negligible" | "unimportant" | "none" | "info" | "informational" => {
                Severity::Negligible
            }
            "unknown" | "" => Severity::Unknown,
            _ => return None,
        })
    }

    /// The severity of a record for one of its `affected` entries: the
    /// highest CVSS score given (v4, v3, v2), else a severity word from
    /// `database_specific` / `ecosystem_specific` or an ecosystem rating,
    /// else unknown.
    pub fn of(record: &Record, affected: Option<&Affected>) -> (Severity, Option<f64>) {
        let entries = record
            .severity
            .iter()
            .chain(affected.into_iter().flat_map(|a| a.severity.iter()));
        let mut best: Option<f64> = None;
        let mut word: Option<Severity> = None;
        for e in entries {
            if e.kind.starts_with("CVSS_") {
                if let Ok(v) = e.score.parse::<cvss::Cvss>() {
                    let s = v.score();
                    best = Some(best.map_or(s, |b| b.max(s)));
                } else if let Ok(s) = e.score.parse::<f64>() {
                    best = Some(best.map_or(s, |b| b.max(s)));
                }
            } else if let Some(w) = Severity::from_word(&e.score) {
                word = word.max(Some(w));
            }
        }
        if let Some(s) = best {
            return (Severity::from_score(s), Some(s));
        }
        let specific = [
            record.database_specific.as_ref(),
            affected.and_then(|a| a.database_specific.as_ref()),
            affected.and_then(|a| a.ecosystem_specific.as_ref()),
        ];
        for v in specific.into_iter().flatten() {
            if let Some(w) = v
                .get("severity")
                .and_then(|s| s.as_str())
                .and_then(Severity::from_word)
            {
                word = word.max(Some(w));
            }
        }
        (word.unwrap_or(Severity::Unknown), None)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
