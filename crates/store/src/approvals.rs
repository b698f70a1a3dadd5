//! Pending out-of-band authorizations (`credentials/authorize` answered 202, CSC v2 §11.6;
//! polled with `credentials/authorizeCheck`, §11.7), by the hash of their handle.
//!
//! Two secrets name an approval, and only their SHA-256 is stored: the `handle` the client
//! polls with, and the one-time `token` the signer decides with (the link the approver
//! delivered). An approval goes `pending` → `approved` or `denied` (by the token, once), then
//! `approved` → `issued` (by the handle, once: the SAD is handed out by the statement that
//! marks it issued); a `pending` or `approved` one whose time is up becomes `expired`. Every
//! change is one conditional UPDATE, so two requests (threads or nodes on one PostgreSQL) that
//! race for it see one winner, and each change that is an event writes its audit record in the
//! same transaction.

use crate::audit::{NewAudit, Outcome, insert_audit};
use crate::codec::{StoredName, encode};
use crate::db::{Conn, P, Row};
use crate::sad::{NewSad, insert_sad};
use crate::{Result, Store};

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for the signer.
    Pending,
    /// The signer approved; the SAD is waiting for `authorizeCheck`.
    Approved,
    /// The signer said no.
    Denied,
    /// Nobody decided (or collected the SAD) in time.
    Expired,
    /// The SAD was handed out (once).
    Issued,
}

impl ApprovalState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Issued => "issued",
        }
    }
}

impl StoredName for ApprovalState {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Expired, Self::Issued].into_iter().find(|s| s.as_str() == name)
    }
}

/// A new pending approval.
#[derive(Clone, Copy)]
pub struct NewApproval<'a> {
    /// SHA-256 (hex) of the handle the client polls with.
    pub handle_hash: &'a str,
    /// SHA-256 (hex) of the one-time token the signer decides with.
    pub token_hash: &'a str,
    /// The approver that delivered the request (`link`, ...).
    pub approver: &'a str,
    /// Owner: only they may collect the SAD.
    pub user_id: &'a str,
    /// Who to name in the audit trail (the owner's name).
    pub actor: &'a str,
    /// The credential.
    pub credential_id: &'a str,
    /// `numSignatures` of the SAD to issue.
    pub num_signatures: i64,
    /// OID of `digests`, when bound (SCAL 2).
    pub hash_algo: Option<&'a str>,
    /// The digests (hex) the SAD will be bound to, or `None` for an unbound SAD.
    pub digests: Option<&'a [String]>,
    /// The application's transaction description (`description`), shown to the signer.
    pub description: Option<&'a str>,
    /// Sole control: the credential's PIN-derived key, sealed under a key derived from the
    /// handle, until the SAD takes it over.
    pub sole_key: Option<&'a [u8]>,
    /// Now (Unix seconds).
    pub now: i64,
    /// The signer must decide before then.
    pub expires_at: i64,
}

/// A stored approval.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    /// SHA-256 (hex) of the handle.
    pub handle_hash: String,
    /// SHA-256 (hex) of the signer's token.
    pub token_hash: String,
    /// The approver.
    pub approver: String,
    /// Owner.
    pub user_id: String,
    /// The owner's name.
    pub actor: String,
    /// The credential.
    pub credential_id: String,
    /// `numSignatures`.
    pub num_signatures: i64,
    /// OID of `digests`.
    pub hash_algo: Option<String>,
    /// Bound digests (hex), in order.
    pub digests: Option<Vec<String>>,
    /// Transaction description.
    pub description: Option<String>,
    /// Sole control: the PIN key sealed under the handle.
    pub sole_key: Option<Vec<u8>>,
    /// Where it stands (as stored: a `pending` row past `expires_at` is not yet marked).
    pub state: ApprovalState,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Pending: the signer's deadline; approved: the client's deadline to collect the SAD.
    pub expires_at: i64,
}

impl ApprovalRow {
    /// Whether its time is up at `now` (for the states that have a deadline).
    pub fn lapsed(&self, now: i64) -> bool {
        matches!(self.state, ApprovalState::Pending | ApprovalState::Approved) && self.expires_at <= now
    }
}

/// What [`Store::claim_approval`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The approval was marked issued and the SAD stored, with the audit record.
    Issued,
    /// Not (or no longer) an approved, unexpired approval of this user: nothing changed.
    NotApproved,
    /// The access token the SAD was to hang from is no longer live: nothing changed.
    TokenGone,
}

const COLS: &str = "handle_hash, token_hash, approver, user_id, actor, credential_id, num_signatures, hash_algo, digests, description, \
                    sole_key, state, created_at, expires_at";

fn approval_row(r: &Row) -> Result<ApprovalRow> {
    Ok(ApprovalRow {
        handle_hash: r.str("handle_hash")?,
        token_hash: r.str("token_hash")?,
        approver: r.str("approver")?,
        user_id: r.str("user_id")?,
        actor: r.str("actor")?,
        credential_id: r.str("credential_id")?,
        num_signatures: r.i64("num_signatures")?,
        hash_algo: r.opt_str("hash_algo")?,
        digests: r.opt_str("digests")?.map(|d| d.split(' ').filter(|s| !s.is_empty()).map(String::from).collect()),
        description: r.opt_str("description")?,
        sole_key: r.opt_bytes("sole_key")?,
        state: r.name("state")?,
        created_at: r.i64("created_at")?,
        expires_at: r.i64("expires_at")?,
    })
}

impl Store {
    /// Store a pending approval with the audit record of the request, in one transaction.
    pub async fn insert_approval(&self, a: &NewApproval<'_>, audit: &NewAudit<'_>) -> Result<()> {
        let digests = a.digests.map(|d| d.join(" "));
        let sole_key = a.sole_key.map(encode);
        transaction!(self.db, |c| {
            c.exec(
                &format!("INSERT INTO approvals ({COLS}, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, NULL)"),
                &[
                    P::S(a.handle_hash),
                    P::S(a.token_hash),
                    P::S(a.approver),
                    P::S(a.user_id),
                    P::S(a.actor),
                    P::S(a.credential_id),
                    P::I(a.num_signatures),
                    P::OS(a.hash_algo),
                    P::OS(digests.as_deref()),
                    P::OS(a.description),
                    P::OS(sole_key.as_deref()),
                    P::I(a.now),
                    P::I(a.expires_at),
                ],
            )
            .await?;
            // Last: the audit chain head is taken last (`audit.rs`, "Lock order").
            insert_audit(&mut c, audit).await?;
            Ok(((), true))
        })
    }

    /// The approval a client's handle names.
    pub async fn approval_by_handle(&self, handle_hash: &str) -> Result<Option<ApprovalRow>> {
        let sql = format!("SELECT {COLS} FROM approvals WHERE handle_hash = $1");
        self.db.read().await?.opt(&sql, &[P::S(handle_hash)]).await?.as_ref().map(approval_row).transpose()
    }

    /// The approval a signer's token names.
    pub async fn approval_by_token(&self, token_hash: &str) -> Result<Option<ApprovalRow>> {
        let sql = format!("SELECT {COLS} FROM approvals WHERE token_hash = $1");
        self.db.read().await?.opt(&sql, &[P::S(token_hash)]).await?.as_ref().map(approval_row).transpose()
    }

    /// The signer's decision: a pending, unexpired approval becomes `approved` (the client may
    /// then collect the SAD until `collect_until`) or `denied`, with the audit record, in one
    /// transaction. Returns whether it was still pending (a token decides once).
    pub async fn decide_approval(
        &self,
        token_hash: &str,
        approve: bool,
        now: i64,
        collect_until: i64,
        audit: &NewAudit<'_>,
    ) -> Result<bool> {
        let to = if approve { ApprovalState::Approved } else { ApprovalState::Denied };
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE approvals SET state = $2, decided_at = $3, expires_at = CASE WHEN $2 = 'approved' THEN $4 ELSE expires_at END \
                     WHERE token_hash = $1 AND state = 'pending' AND expires_at > $3",
                    &[P::S(token_hash), P::S(to.stored()), P::I(now), P::I(collect_until)],
                )
                .await?;
            if n != 1 {
                return Ok((false, false));
            }
            insert_audit(&mut c, audit).await?;
            Ok((true, true))
        })
    }

    /// Mark one approval expired (pending or approved, past its deadline), with the audit record
    /// `audit`: only the first request that notices writes it. Returns whether this one did.
    pub async fn expire_approval(&self, handle_hash: &str, now: i64, audit: &NewAudit<'_>) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE approvals SET state = 'expired' WHERE handle_hash = $1 AND state IN ('pending', 'approved') AND expires_at <= $2",
                    &[P::S(handle_hash), P::I(now)],
                )
                .await?;
            if n != 1 {
                return Ok((false, false));
            }
            insert_audit(&mut c, audit).await?;
            Ok((true, true))
        })
    }

    /// Mark every approval past its deadline expired (the periodic purge), each with its audit
    /// record (`event`, `outcome`, and the detail `detail` gives for the row, in the row's
    /// owner's name), as [`Store::expire_approval`] does. Returns those this call expired, as
    /// they were (their state before).
    pub async fn expire_approvals(
        &self,
        now: i64,
        event: &str,
        outcome: Outcome,
        detail: impl Fn(&ApprovalRow) -> String,
    ) -> Result<Vec<ApprovalRow>> {
        let lapsed = self
            .db
            .read()
            .await?
            .all(&format!("SELECT {COLS} FROM approvals WHERE state IN ('pending', 'approved') AND expires_at <= $1"), &[P::I(now)])
            .await?;
        let mut out = Vec::new();
        for r in &lapsed {
            let row = approval_row(r)?;
            let detail = detail(&row);
            let audit = NewAudit { at: now, actor: &row.actor, event, outcome, credential_id: Some(&row.credential_id), detail: &detail };
            // Conditional: a request (or node) that noticed first has written it already.
            if self.expire_approval(&row.handle_hash, now, &audit).await? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Hand the SAD of an approved approval out, once: in one transaction, mark the approval
    /// `issued` if it is approved, the caller's and unexpired (the one conditional UPDATE that
    /// any number of concurrent `authorizeCheck` calls, on any node, race for), store `sad`,
    /// link it to the access token `token` (so that revoking the token revokes it), and write
    /// `audit`. The token's row is locked first, as `insert_sad_for_token` does.
    pub async fn claim_approval(
        &self,
        handle_hash: &str,
        user_id: &str,
        sad: &NewSad<'_>,
        token: Option<&str>,
        audit: &NewAudit<'_>,
    ) -> Result<Claim> {
        transaction!(self.db, |c| {
            if let Some(t) = token
                && !lock_live_token(&mut c, t, sad.now).await?
            {
                return Ok((Claim::TokenGone, false));
            }
            let n = c
                .exec(
                    "UPDATE approvals SET state = 'issued', decided_at = COALESCE(decided_at, $3) \
                     WHERE handle_hash = $1 AND user_id = $2 AND state = 'approved' AND expires_at > $3",
                    &[P::S(handle_hash), P::S(user_id), P::I(sad.now)],
                )
                .await?;
            if n != 1 {
                return Ok((Claim::NotApproved, false));
            }
            insert_sad(&mut c, sad).await?;
            if let Some(t) = token {
                c.exec("UPDATE sads SET token = $2 WHERE hash = $1", &[P::S(sad.hash), P::S(t)]).await?;
            }
            insert_audit(&mut c, audit).await?;
            Ok((Claim::Issued, true))
        })
    }

    /// Delete approvals that ended (or lapsed) before `before`. They are kept a while after
    /// their deadline so that a late `authorizeCheck` still learns "expired" or "denied"
    /// rather than "unknown".
    pub async fn purge_approvals(&self, before: i64) -> Result<u64> {
        self.db
            .write()
            .await?
            .exec("DELETE FROM approvals WHERE state IN ('denied', 'expired', 'issued') AND expires_at < $1", &[P::I(before)])
            .await
    }
}

/// Lock a live access token's row (PostgreSQL; SQLite has one writer): a revocation either
/// ran before (and the token is found revoked) or waits for this commit (and then sees the SAD).
async fn lock_live_token(c: &mut Conn<'_>, token: &str, now: i64) -> Result<bool> {
    let n = c
        .exec("UPDATE tokens SET revoked = revoked WHERE hash = $1 AND revoked = 0 AND expires_at > $2", &[P::S(token), P::I(now)])
        .await?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewToken, TokenKind};

    fn audit<'a>(event: &'a str) -> NewAudit<'a> {
        NewAudit { at: 10, actor: "alice", event, outcome: Outcome::Ok, credential_id: Some("c"), detail: "{}" }
    }

    fn approval<'a>(handle: &'a str, token: &'a str, digests: &'a [String]) -> NewApproval<'a> {
        NewApproval {
            handle_hash: handle,
            token_hash: token,
            approver: "link",
            user_id: "u",
            actor: "alice",
            credential_id: "c",
            num_signatures: 2,
            hash_algo: Some("2.16.840.1.101.3.4.2.1"),
            digests: Some(digests),
            description: Some("Contract"),
            sole_key: Some(b"sealed"),
            now: 10,
            expires_at: 100,
        }
    }

    fn sad<'a>(hash: &'a str, digests: &'a [String]) -> NewSad<'a> {
        NewSad {
            hash,
            user_id: "u",
            credential_id: "c",
            remaining: 2,
            hash_algo: Some("2.16.840.1.101.3.4.2.1"),
            digests: Some(digests),
            expires_at: 1000,
            now: 20,
            sole_key: None,
        }
    }

    async fn token(store: &Store, hash: &str) {
        let t = NewToken {
            hash,
            kind: TokenKind::Access,
            user_id: "u",
            parent: None,
            client_id: None,
            credential_id: None,
            expires_at: 10_000,
            now: 1,
        };
        store.insert_token(&t).await.unwrap();
    }

    /// The life of approvals: decided once by the token, the SAD claimed once by the owner's
    /// handle (not another user's), denied ones never claimable, lapsed ones expired once, and
    /// each event audited with its change.
    async fn lifecycle(store: &Store) {
        let digests = vec!["ab".repeat(32), "cd".repeat(32)];
        let audits = || async { store.audit_events(1000).await.unwrap().len() };
        store.insert_approval(&approval("H1", "K1", &digests), &audit("approval.request")).await.unwrap();
        let row = store.approval_by_handle("H1").await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.digests.as_deref(), row.sole_key.as_deref()),
            (ApprovalState::Pending, Some(&digests[..]), Some(&b"sealed"[..]))
        );
        assert_eq!(store.approval_by_token("K1").await.unwrap().unwrap().handle_hash, "H1");
        assert!(store.approval_by_token("H1").await.unwrap().is_none(), "the handle does not decide");
        // Not approved yet: nothing to claim.
        token(store, "T").await;
        assert_eq!(store.claim_approval("H1", "u", &sad("S0", &digests), Some("T"), &audit("x")).await.unwrap(), Claim::NotApproved);
        let before = audits().await;
        assert!(store.decide_approval("K1", true, 20, 200, &audit("approval.approve")).await.unwrap());
        assert!(!store.decide_approval("K1", false, 21, 200, &audit("approval.deny")).await.unwrap(), "decided once");
        assert_eq!(audits().await, before + 1);
        let row = store.approval_by_handle("H1").await.unwrap().unwrap();
        assert_eq!((row.state, row.expires_at), (ApprovalState::Approved, 200), "the client has its own time to collect");
        assert_eq!(store.claim_approval("H1", "other", &sad("S1", &digests), None, &audit("x")).await.unwrap(), Claim::NotApproved);
        assert_eq!(store.claim_approval("H1", "u", &sad("S2", &digests), Some("gone"), &audit("x")).await.unwrap(), Claim::TokenGone);
        assert_eq!(
            store.claim_approval("H1", "u", &sad("S3", &digests), Some("T"), &audit("credentials.authorizeCheck")).await.unwrap(),
            Claim::Issued
        );
        assert_eq!(
            store.claim_approval("H1", "u", &sad("S4", &digests), Some("T"), &audit("x")).await.unwrap(),
            Claim::NotApproved,
            "once"
        );
        assert_eq!(audits().await, before + 2);
        assert!(store.sad("S3").await.unwrap().is_some());
        for refused in ["S0", "S1", "S2", "S4"] {
            assert!(store.sad(refused).await.unwrap().is_none(), "{refused}: no SAD without the claim");
        }
        assert!(store.revoke_token("T", "u").await.unwrap());
        assert!(store.sad("S3").await.unwrap().unwrap().revoked, "the SAD hangs from the token that collected it");

        // Denied: never claimable.
        store.insert_approval(&approval("H2", "K2", &digests), &audit("approval.request")).await.unwrap();
        assert!(store.decide_approval("K2", false, 20, 200, &audit("approval.deny")).await.unwrap());
        assert_eq!(store.approval_by_handle("H2").await.unwrap().unwrap().state, ApprovalState::Denied);
        assert_eq!(store.claim_approval("H2", "u", &sad("S5", &digests), None, &audit("x")).await.unwrap(), Claim::NotApproved);

        // Lapsed: too late to decide, expired once (by a poll, or by the purge).
        store.insert_approval(&approval("H3", "K3", &digests), &audit("approval.request")).await.unwrap();
        assert!(!store.decide_approval("K3", true, 100, 200, &audit("approval.approve")).await.unwrap(), "too late");
        assert!(store.approval_by_handle("H3").await.unwrap().unwrap().lapsed(100));
        assert!(store.expire_approval("H3", 100, &audit("approval.expire")).await.unwrap());
        assert!(!store.expire_approval("H3", 100, &audit("approval.expire")).await.unwrap(), "expired once");
        store.insert_approval(&approval("H4", "K4", &digests), &audit("approval.request")).await.unwrap();
        let expired = store
            .expire_approvals(150, "approval.expire", Outcome::Refused, |r| format!("{{\"was\":\"{}\"}}", r.state.as_str()))
            .await
            .unwrap();
        assert_eq!(expired.iter().map(|r| r.handle_hash.as_str()).collect::<Vec<_>>(), ["H4"], "H1 issued, H2 denied, H3 expired already");
        let before = audits().await;
        assert!(store.expire_approvals(150, "approval.expire", Outcome::Refused, |_| "{}".into()).await.unwrap().is_empty());
        assert_eq!(audits().await, before, "nothing expired twice, nothing audited twice");
        assert_eq!(
            store.purge_approvals(150).await.unwrap(),
            3,
            "denied and expired ones past their deadline (not H1, collectable until 200)"
        );
        assert_eq!(store.purge_approvals(201).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn approvals_on_sqlite() {
        let (dir, store) = crate::tests::store().await;
        lifecycle(&store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Two nodes on one PostgreSQL, twenty claims at once of one approved approval: one SAD.
    #[tokio::test]
    async fn approvals_on_postgres_are_claimed_once() {
        let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
        let url = |db: &str| format!("postgres://{role}@127.0.0.1:5432/{db}");
        let name = format!("cs_approvals_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url("test")).await.expect("PostgreSQL on 127.0.0.1:5432");
        let drop_db = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop_db.clone())).execute(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let store = Store::connect(&url(&name)).await.unwrap();
        lifecycle(&store).await;
        let other = Store::connect(&url(&name)).await.unwrap();
        let digests = vec!["ef".repeat(32)];
        store.insert_approval(&approval("P", "PK", &digests), &audit("approval.request")).await.unwrap();
        assert!(other.decide_approval("PK", true, 20, 200, &audit("approval.approve")).await.unwrap());
        token(&store, "PT").await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = if i % 2 == 0 { store.clone() } else { other.clone() };
            let digests = digests.clone();
            tasks.push(tokio::spawn(async move {
                let hash = format!("PS{i}");
                s.claim_approval("P", "u", &sad(&hash, &digests), Some("PT"), &audit("credentials.authorizeCheck")).await.unwrap()
            }));
        }
        let mut issued = 0;
        for t in tasks {
            if t.await.unwrap() == Claim::Issued {
                issued += 1;
            }
        }
        assert_eq!(issued, 1, "exactly one SAD");
        let mut sads = 0;
        for i in 0..20 {
            sads += usize::from(store.sad(&format!("PS{i}")).await.unwrap().is_some());
        }
        assert_eq!(sads, 1);
        store.close().await;
        other.close().await;
        sqlx::query(sqlx::AssertSqlSafe(drop_db)).execute(&admin).await.unwrap();
    }
}
