//! `audit`: the append-only event log.

use crate::db::{Conn, P};
use crate::{Result, Store};

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused: bad input, a wrong factor, a policy that says no.
    Refused,
    /// Accepted, then failed inside the service (a signing or renewal error).
    Failed,
    /// The signer said no on the consent page.
    Denied,
}

impl Outcome {
    /// The stored name (`ok`, `refused`, `failed`, `denied`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Denied => "denied",
        }
    }
}

/// An audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Sequence number (store order).
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: a user name, `admin`, or `-`.
    pub actor: String,
    /// What: `auth.login`, `credentials.authorize`, `signatures.signHash`, `admin.user.add`, ...
    pub event: String,
    /// `ok`, `refused`, `failed` or `denied` ([`Outcome::as_str`]); read as text, so that
    /// records of any version can be listed.
    pub outcome: String,
    /// The credential concerned, if any.
    pub credential_id: Option<String>,
    /// JSON detail (never secrets).
    pub detail: String,
}

/// An audit event to write.
#[derive(Debug, Clone, Copy)]
pub struct NewAudit<'a> {
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub event: &'a str,
    /// Outcome.
    pub outcome: Outcome,
    /// Credential.
    pub credential_id: Option<&'a str>,
    /// JSON detail.
    pub detail: &'a str,
}

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit (at, actor, event, outcome, credential_id, detail) VALUES ($1, $2, $3, $4, $5, $6)";

async fn insert_audit(c: &mut Conn<'_>, e: &NewAudit<'_>) -> Result<()> {
    c.exec(INSERT_AUDIT, &[P::I(e.at), P::S(e.actor), P::S(e.event), P::S(e.outcome.as_str()), P::OS(e.credential_id), P::S(e.detail)])
        .await?;
    Ok(())
}

impl Store {
    /// Append an audit event.
    pub async fn audit(&self, e: &NewAudit<'_>) -> Result<()> {
        insert_audit(&mut self.db.write().await?, e).await
    }

    /// The latest `limit` events, oldest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = self
            .db
            .read()
            .await?
            .all("SELECT seq, at, actor, event, outcome, credential_id, detail FROM audit ORDER BY seq DESC LIMIT $1", &[P::I(limit)])
            .await?;
        let mut events = rows
            .iter()
            .map(|r| {
                Ok(AuditEvent {
                    seq: r.i64("seq")?,
                    at: r.i64("at")?,
                    actor: r.str("actor")?,
                    event: r.str("event")?,
                    outcome: r.str("outcome")?,
                    credential_id: r.opt_str("credential_id")?,
                    detail: r.str("detail")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}
