//! Validation policies (ETSI EN 319 102-1 §5.1.4, "validation constraints") as named TOML files:
//! which trust anchors, which algorithms and key sizes are acceptable, whether revocation data
//! may be fetched online, how old it may be, and the AdES level a signature must reach. A strict
//! policy ships built in:
//!
//! ```toml
//! description = "What this policy is for"
//! trust = ["/etc/cloudsign/anchors/eu-qtsp.pem"]   # PEM files of trust anchors
//! online_revocation = true                          # fetch OCSP/CRLs from the certificates' URLs
//! max_revocation_age_days = 30                      # revocation data older than this is ignored
//! required_level = "B-T"                            # B-B, B-T, B-LT or B-LTA
//! min_rsa_bits = 2048
//! min_ec_bits = 256
//! digest_algorithms = ["SHA-256", "SHA-384", "SHA-512"]
//! # Stricter minimums for signatures made (proven, or now) from a date on:
//! key_sizes_from = [{ from = "2030-01-01", min_rsa_bits = 3072, min_ec_bits = 256 }]
//! ```

use serde::Deserialize;

use crate::engine::{Indication, Outcome, SignatureReport, SubIndication};

/// A validation policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Its name (the file name without `.toml`, or `strict`).
    #[serde(skip)]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// PEM files of trust anchors (added to those given on the command line or by the service).
    #[serde(default)]
    pub trust: Vec<std::path::PathBuf>,
    /// Fetch revocation data from the URLs in the certificates.
    #[serde(default = "yes")]
    pub online_revocation: bool,
    /// Revocation data older than this many days (its thisUpdate) is not used.
    #[serde(default)]
    pub max_revocation_age_days: Option<u32>,
    /// The lowest acceptable AdES level.
    #[serde(default = "level_b")]
    pub required_level: String,
    /// The smallest acceptable RSA modulus.
    #[serde(default = "rsa_2048")]
    pub min_rsa_bits: u32,
    /// The smallest acceptable elliptic-curve key.
    #[serde(default = "ec_256")]
    pub min_ec_bits: u32,
    /// Acceptable digest algorithms.
    #[serde(default = "sha2")]
    pub digest_algorithms: Vec<String>,
    /// Key size minimums that apply from a date on (at the signature's proven time, or now).
    #[serde(default)]
    pub key_sizes_from: Vec<KeySizes>,
}

/// Key size minimums from a date (`YYYY-MM-DD`, UTC) on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySizes {
    /// The first day they apply.
    pub from: String,
    /// RSA minimum.
    pub min_rsa_bits: u32,
    /// Elliptic-curve minimum.
    pub min_ec_bits: u32,
}

fn day(text: &str) -> Option<i64> {
    crate::cms::parse_time(0x18, format!("{}000000Z", text.replace('-', "")).as_bytes())
}

fn yes() -> bool {
    true
}
fn level_b() -> String {
    "B-B".into()
}
fn rsa_2048() -> u32 {
    2048
}
fn ec_256() -> u32 {
    256
}
fn sha2() -> Vec<String> {
    vec!["SHA-256".into(), "SHA-384".into(), "SHA-512".into()]
}

const LEVELS: [&str; 4] = ["B-B", "B-T", "B-LT", "B-LTA"];

impl Policy {
    /// The built-in policy: online revocation checks, RSA ≥ 2048 and EC ≥ 256 bits, SHA-2 only,
    /// any level from B-B.
    pub fn strict() -> Policy {
        Policy {
            name: "strict".into(),
            description: "Built in: online revocation checks, RSA >= 2048 and EC >= 256 bits, SHA-2 digests, B-B or above".into(),
            trust: Vec::new(),
            online_revocation: true,
            max_revocation_age_days: None,
            required_level: level_b(),
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            digest_algorithms: sha2(),
            key_sizes_from: Vec::new(),
        }
    }

    /// Parse a policy file's text.
    pub fn from_toml(name: &str, text: &str) -> Result<Policy, String> {
        let mut p: Policy = toml::from_str(text).map_err(|e| format!("policy {name}: {e}"))?;
        if !LEVELS.contains(&p.required_level.as_str()) {
            return Err(format!("policy {name}: required_level is one of B-B, B-T, B-LT, B-LTA"));
        }
        if let Some(bad) = p.key_sizes_from.iter().find(|k| day(&k.from).is_none()) {
            return Err(format!("policy {name}: key_sizes_from date {:?} is not YYYY-MM-DD", bad.from));
        }
        p.name = name.to_string();
        Ok(p)
    }

    /// `strict`, a path to a `.toml` file, or a name looked up as `<dir>/<name>.toml`.
    pub fn load(name: &str, dir: Option<&std::path::Path>) -> Result<Policy, String> {
        if name == "strict" {
            return Ok(Policy::strict());
        }
        let path = if name.ends_with(".toml") {
            std::path::PathBuf::from(name)
        } else {
            // Names only: a request must not walk the file system.
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("unknown policy {name:?}"));
            }
            dir.ok_or_else(|| format!("unknown policy {name:?} (no policy directory is configured)"))?.join(format!("{name}.toml"))
        };
        let text = std::fs::read_to_string(&path).map_err(|_| format!("unknown policy {name:?}"))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Policy::from_toml(&stem, &text)
    }

    /// Maximum revocation data age in seconds.
    pub fn max_revocation_age(&self) -> Option<i64> {
        self.max_revocation_age_days.map(|d| i64::from(d) * 86_400)
    }

    /// The (RSA, EC) key size minimums at `at`.
    fn key_minimums(&self, at: i64) -> (u32, u32) {
        let mut rules: Vec<(i64, &KeySizes)> = self.key_sizes_from.iter().filter_map(|k| Some((day(&k.from)?, k))).collect();
        rules.sort_by_key(|(t, _)| *t);
        rules.iter().rev().find(|(t, _)| *t <= at).map_or((self.min_rsa_bits, self.min_ec_bits), |(_, k)| (k.min_rsa_bits, k.min_ec_bits))
    }

    /// Apply the constraints the engine does not: algorithms and key sizes (as they stood at
    /// the signature's proven time, or `now`), and the level. The algorithms and key sizes are
    /// checked (and recorded as the `constraints` check) whatever the indication, so that a
    /// signature with no trusted chain still shows them; they change only a TOTAL-PASSED one.
    pub fn apply(&self, report: &mut SignatureReport, now: i64) {
        // A document time-stamp is evidence for the signatures before it, not a signature.
        if report.format.ends_with("time-stamp") {
            return;
        }
        let passed = report.indication == Indication::TotalPassed;
        match self.algorithm_problem(report, now) {
            Some(why) => {
                report.set_check("constraints", Outcome::Failed, why.clone());
                if passed {
                    fail(report, SubIndication::CryptoConstraintsFailure, why);
                }
                return;
            }
            None if report.digest_algorithm.is_some() || report.key.is_some() => {
                let what = [report.digest_algorithm.clone(), report.key.clone()].into_iter().flatten().collect::<Vec<_>>().join(", ");
                report.set_check("constraints", Outcome::Passed, format!("{what} allowed by policy {}", self.name));
            }
            None => {}
        }
        if !passed {
            return;
        }
        let reached = report.level.and_then(|l| LEVELS.iter().position(|x| *x == l));
        let required = LEVELS.iter().position(|x| *x == self.required_level).unwrap_or(0);
        if reached.is_none_or(|r| r < required) {
            let level = report.level.unwrap_or("none");
            let why = format!("the signature reaches {level}; policy {} requires {}", self.name, self.required_level);
            report.set_check("constraints", Outcome::Failed, why.clone());
            fail(report, SubIndication::FormatFailure, why);
        }
    }

    /// Why the signature's digest algorithm or key is not acceptable, if it is not.
    fn algorithm_problem(&self, report: &SignatureReport, now: i64) -> Option<String> {
        if let Some(digest) = &report.digest_algorithm
            && !self.digest_algorithms.iter().any(|d| d.eq_ignore_ascii_case(digest))
        {
            return Some(format!("the digest algorithm {digest} is not allowed by policy {}", self.name));
        }
        let key = report.key.as_ref()?;
        let at = report
            .proven_signing_time
            .as_deref()
            // RFC 3339 as the report writes it (`YYYY-MM-DDTHH:MM:SSZ`).
            .and_then(|t| crate::cms::parse_time(0x18, t.replace(['-', ':', 'T'], "").as_bytes()))
            .unwrap_or(now);
        let (rsa, ec) = self.key_minimums(at);
        let min = if key.starts_with("RSA") { rsa } else { ec };
        report.key_bits.is_some_and(|b| b < min).then(|| format!("the {key} key is smaller than policy {} allows ({min} bits)", self.name))
    }
}

fn fail(report: &mut SignatureReport, sub: SubIndication, why: String) {
    report.indication = Indication::Indeterminate;
    report.sub_indication = Some(sub);
    report.errors.push(why);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_and_refuse_mistakes() {
        let p = Policy::from_toml("lt", "required_level = \"B-LT\"\nonline_revocation = false\nmax_revocation_age_days = 7").unwrap();
        assert_eq!((p.required_level.as_str(), p.online_revocation, p.max_revocation_age()), ("B-LT", false, Some(7 * 86_400)));
        assert!(Policy::from_toml("x", "required_level = \"B-Q\"").is_err());
        assert!(Policy::from_toml("x", "unknown_key = 1").is_err());
        assert!(Policy::load("../etc/passwd", Some(std::path::Path::new("/tmp"))).is_err());
        assert_eq!(Policy::load("strict", None).unwrap().name, "strict");
    }

    #[test]
    fn key_sizes_by_date() {
        let p = Policy::from_toml("d", "key_sizes_from = [{ from = \"2030-01-01\", min_rsa_bits = 3072, min_ec_bits = 384 }]").unwrap();
        let before = day("2029-12-31").unwrap();
        let after = day("2030-01-01").unwrap();
        assert_eq!(p.key_minimums(before), (2048, 256));
        assert_eq!(p.key_minimums(after), (3072, 384));
        let mut r = SignatureReport::new("s".into(), "CAdES");
        (r.key, r.key_bits, r.level) = (Some("RSA 2048".into()), Some(2048), Some("B-B"));
        let mut later = r.clone();
        p.apply(&mut r, before);
        assert_eq!(r.indication, Indication::TotalPassed);
        p.apply(&mut later, after);
        assert_eq!(later.sub_indication, Some(SubIndication::CryptoConstraintsFailure));
        assert!(Policy::from_toml("d", "key_sizes_from = [{ from = \"soon\", min_rsa_bits = 1, min_ec_bits = 1 }]").is_err());
    }
}
