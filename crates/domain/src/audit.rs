//! The audit log's integrity: checkpoints of the hash chain signed by the issuing CA, and the
//! verification behind `cloudsign admin audit verify` (the chain itself is appended by the
//! store, `store/src/audit.rs`).
//!
//! What verification can tell, and from what:
//! * a record whose content no longer gives its hash: **changed**; one whose hash it gives
//!   only at another seq: **reordered** (it was written as that seq);
//! * a record that does not link to the one before (its `prev_hash` is not that record's
//!   hash) while both are intact: **deleted** records between them (named by the seq gap), or,
//!   without a gap, an **inserted** record; a row without a hash was never written by the
//!   service: **inserted**;
//! * the chain head (updated in every appending transaction) beyond the last record:
//!   **truncated** tail; a signed checkpoint beyond the last record: **truncated** records it
//!   covered; a checkpoint that does not match its record: records up to it **changed** (the
//!   chain was recomputed); a checkpoint whose signature fails: **checkpoint**.
//!
//! The hash is not keyed, so someone who edits the database and recomputes every later hash and
//! the chain head goes unnoticed back to the last signed checkpoint, and no further: the
//! checkpoints are what an edit cannot forge without the CA key.

use std::collections::HashMap;
use std::fmt;

use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
use cloudsign_pki::{CA_KEY, ca_key_binding};
use cloudsign_store::{AuditCheckpoint, AuditEvent, GENESIS, checkpoint_message};

use crate::service::blocking_if;
use crate::{Error, Result, Service, now};

/// `credentials/create` (CSC 2.2 §11.4): written for every call that authenticated, made or
/// refused, with `grant` in the detail: `service` (a service-scope session) or
/// `credential-creation` (a one-shot OAuth token, `rar` telling whether it carried the
/// signer-approved creation request). The OAuth grant itself is audited by `oauth2.consent`
/// and `oauth2.token`, whose detail names the same `grant`.
pub const EVENT_CREDENTIAL_CREATE: &str = "credential.create";
/// `credentials/delete` (CSC 2.2 §11.5), as [`EVENT_CREDENTIAL_CREATE`], with `grant`
/// `service` or `credential-deletion`.
pub const EVENT_CREDENTIAL_DELETE: &str = "credential.delete";

/// Records read per query while verifying or exporting.
const PAGE: i64 = 5000;
/// Records that fail their own hash kept for the reorder check (beyond that: "changed").
const MAX_SUSPECTS: usize = 10_000;

/// What kind of tampering a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// The record's content does not give its hash.
    Changed,
    /// Records are missing between two that remain.
    Deleted,
    /// A record the service did not write.
    Inserted,
    /// The record gives its hash at another seq: records were renumbered.
    Reordered,
    /// Records are missing at the end.
    Truncated,
    /// A checkpoint's signature does not verify.
    Checkpoint,
}

impl FindingKind {
    /// The word `admin audit verify` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::Truncated => "truncated",
            Self::Checkpoint => "checkpoint",
        }
    }
}

/// One finding of [`Service::verify_audit`]: records `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What happened.
    pub kind: FindingKind,
    /// First seq concerned.
    pub first: i64,
    /// Last seq concerned.
    pub last: i64,
    /// Why it is said.
    pub reason: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}: record {}: {}", self.kind.as_str(), self.first, self.reason)
        } else {
            write!(f, "{}: records {}..{}: {}", self.kind.as_str(), self.first, self.last, self.reason)
        }
    }
}

/// The result of [`Service::verify_audit`].
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// The seq of the last checkpoint whose signature verified.
    pub last_checkpoint: Option<i64>,
    /// Empty when the log is intact.
    pub findings: Vec<Finding>,
}

fn finding(kind: FindingKind, first: i64, last: i64, reason: impl Into<String>) -> Finding {
    Finding { kind, first, last, reason: reason.into() }
}

impl Service {
    /// Sign a checkpoint of the audit chain with the issuing CA's key, unless the last one
    /// already covers the chain head. The server makes one every `audit_checkpoint_seconds`
    /// and at shutdown.
    pub async fn audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>> {
        let (seq, hash) = self.store.audit_head().await?;
        let covered = self.store.audit_checkpoints().await?.iter().map(|c| c.seq).max().unwrap_or(0);
        if seq == 0 || covered >= seq {
            return Ok(None);
        }
        let at = now();
        let message = checkpoint_message(seq, &hash, at);
        let row = self.store.ca("issuing").await?.ok_or_else(|| Error::Internal("CA hierarchy missing".into()))?;
        let backend = self.backend_of(row.key_backend)?;
        let blocks = backend.blocks();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &message);
        // An HSM-held CA key blocks: off the async workers, as for CRLs (`blocking_if`).
        let signature = blocking_if(blocks, || {
            let key = backend.load(CA_KEY, &row.key_handle, &ca_key_binding("issuing"))?;
            key.sign_digest(SignAlgorithm::Ecdsa(HashAlgorithm::Sha384), digest.as_ref())
        })?;
        let checkpoint = AuditCheckpoint { seq, hash, at, signature };
        self.store.insert_audit_checkpoint(&checkpoint).await?;
        Ok(Some(checkpoint))
    }

    /// Whether a checkpoint's signature verifies against the issuing CA certificate.
    fn checkpoint_signed(&self, c: &AuditCheckpoint) -> bool {
        let Some(key) = cloudsign_pki::subject_public_key(&self.ca.issuing_der) else { return false };
        let message = checkpoint_message(c.seq, &c.hash, c.at);
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1, key)
            .verify(&message, &c.signature)
            .is_ok()
    }

    /// Up to `limit` audit records after `after`, in order, with their hashes (export).
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(self.store.audit_page(after, limit).await?)
    }

    /// Walk the whole audit chain, its head and its checkpoints (see the module comment).
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        let mut findings = Vec::new();
        let checkpoints = self.store.audit_checkpoints().await?;
        let mut last_checkpoint = None;
        // seq -> hashes the valid checkpoints vouch for.
        let mut vouched: HashMap<i64, Vec<String>> = HashMap::new();
        for c in &checkpoints {
            if self.checkpoint_signed(c) {
                vouched.entry(c.seq).or_default().push(c.hash.clone());
                last_checkpoint = last_checkpoint.max(Some(c.seq));
            } else {
                findings.push(finding(
                    FindingKind::Checkpoint,
                    c.seq,
                    c.seq,
                    "the checkpoint's signature does not verify against the CA certificate",
                ));
            }
        }
        let mut records = 0u64;
        // The record before, as stored (seq, hash), and whether it was intact.
        let mut prev: Option<(i64, Option<String>, bool)> = None;
        let mut suspects: Vec<AuditEvent> = Vec::new();
        let mut flagged: Vec<i64> = Vec::new();
        let mut after = i64::MIN;
        loop {
            let page = self.store.audit_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in page {
                records += 1;
                let intact = match &r.hash {
                    None => {
                        findings.push(finding(FindingKind::Inserted, r.seq, r.seq, "it has no chain hash: the service did not write it"));
                        flagged.push(r.seq);
                        false
                    }
                    Some(h) if r.computed_hash(r.seq).as_ref() == Some(h) => true,
                    Some(_) => {
                        if suspects.len() < MAX_SUSPECTS {
                            suspects.push(r.clone());
                        } else {
                            findings.push(finding(FindingKind::Changed, r.seq, r.seq, "its content does not match its hash"));
                        }
                        flagged.push(r.seq);
                        false
                    }
                };
                if intact {
                    let expected = match &prev {
                        None => Some(GENESIS.to_string()),
                        Some((_, h, true)) => h.clone(),
                        // The break is explained by the finding on the record before.
                        Some((_, _, false)) => r.prev_hash.clone(),
                    };
                    if r.prev_hash != expected {
                        let before = prev.as_ref().map_or(0, |p| p.0);
                        if r.seq > before + 1 {
                            let why = if prev.is_none() {
                                format!("record {} is not the first of the chain", r.seq)
                            } else {
                                format!("record {} does not follow record {before}", r.seq)
                            };
                            findings.push(finding(FindingKind::Deleted, before + 1, r.seq - 1, why));
                        } else {
                            findings.push(finding(FindingKind::Inserted, r.seq, r.seq, format!("it does not follow record {before}")));
                            flagged.push(r.seq);
                        }
                    }
                    if let Some(hashes) = vouched.get(&r.seq)
                        && hashes.iter().any(|h| Some(h) != r.hash.as_ref())
                    {
                        findings.push(finding(
                            FindingKind::Changed,
                            1,
                            r.seq,
                            format!("the signed checkpoint at seq {} does not match: the chain up to it was rewritten", r.seq),
                        ));
                    }
                }
                prev = Some((r.seq, r.hash.clone(), intact));
            }
        }
        // Records that give their hash at another seq were moved there from it.
        let seqs: Vec<i64> = suspects.iter().map(|s| s.seq).collect();
        for s in &suspects {
            let moved_from = seqs.iter().copied().find(|&t| t != s.seq && s.computed_hash(t) == s.hash);
            findings.push(match moved_from {
                Some(t) => finding(FindingKind::Reordered, s.seq, s.seq, format!("it was written as record {t}")),
                None => finding(FindingKind::Changed, s.seq, s.seq, "its content does not match its hash"),
            });
        }
        let last_seq = prev.as_ref().map_or(0, |p| p.0);
        let (head_seq, head_hash) = self.store.audit_head().await?;
        if head_seq > last_seq {
            let why = format!("the chain head says the log ends at record {head_seq}");
            findings.push(finding(FindingKind::Truncated, last_seq + 1, head_seq, why));
        } else if head_seq < last_seq && !flagged.iter().any(|&s| s > head_seq) {
            findings.push(finding(FindingKind::Inserted, head_seq + 1, last_seq, format!("the chain head ends at record {head_seq}")));
        } else if head_seq == last_seq
            && head_seq > 0
            && prev.as_ref().and_then(|p| p.1.as_ref()) != Some(&head_hash)
            && !flagged.contains(&last_seq)
        {
            findings.push(finding(FindingKind::Changed, last_seq, last_seq, "it is not the record the chain head names"));
        }
        if let Some(s) = last_checkpoint.filter(|&s| s > last_seq.max(head_seq)) {
            let why = format!("the signed checkpoint at seq {s} covers them");
            findings.push(finding(FindingKind::Truncated, last_seq.max(head_seq) + 1, s, why));
        }
        findings.sort_by_key(|f| (f.first, f.last));
        Ok(AuditReport { records, last_checkpoint, findings })
    }
}
