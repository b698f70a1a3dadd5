//! `async_jobs`: asynchronous signature requests (CSC API 2.2.0.0 `operationMode: "A"`,
//! `signatures/signPolling`). A job is stored when its SAD is spent; any node claims it (a
//! lease, so that a job whose node died is run again), stores its result, and the result is
//! handed out once (deleted by the statement that reads it).

use crate::audit::{NewAudit, insert_audit};
use crate::db::{Conn, P};
use crate::{Result, Store};

/// A job to store.
pub struct NewJob<'a> {
    /// SHA-256 (hex) of the `responseID`: a database copy reveals no usable handle.
    pub id: &'a str,
    /// Owner: only they may poll it.
    pub user_id: &'a str,
    /// Who to name in the audit trail.
    pub actor: &'a str,
    /// The credential.
    pub credential_id: &'a str,
    /// `signatures/signHash` or `signatures/signDoc`.
    pub method: &'a str,
    /// What to sign (the domain's own encoding).
    pub request: &'a str,
    /// The SAD (hash) that paid for it, and what it paid: given back if the job fails.
    pub sad_hash: &'a str,
    /// The digests (hex) consumed from the SAD, in order.
    pub digests_hex: &'a [String],
    /// Where to say the result is ready, if anywhere.
    pub response_uri: Option<&'a str>,
    /// The `responseID` itself, kept only when there is a `response_uri` to send it to (any
    /// node may run the job). It alone fetches nothing: signPolling also needs the owner's token.
    pub response_id: Option<&'a str>,
    /// Now (Unix seconds).
    pub now: i64,
    /// The result is kept until then (`validity_period`).
    pub expires_at: i64,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// SHA-256 (hex) of the `responseID`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Audit actor.
    pub actor: String,
    /// Credential.
    pub credential_id: String,
    /// The CSC method.
    pub method: String,
    /// What to sign.
    pub request: String,
    /// How many times it was claimed, this claim included: the fencing token of this claim.
    pub attempts: i64,
    /// Where to notify.
    pub response_uri: Option<String>,
    /// The `responseID` to notify with.
    pub response_id: Option<String>,
}

/// What [`Store::take_job_result`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenJob {
    /// Finished: `(ok, result)`, now deleted.
    Done(bool, String),
    /// Still waiting or running.
    Pending,
    /// No such job for this user (never, already taken, or expired).
    Unknown,
}

/// How a job ended, for [`Store::finish_job`].
pub enum JobEnd<'a> {
    /// Signed: the result to hand out.
    Done(&'a str),
    /// Failed: the error to hand out, the SAD given back, with this audit record.
    Failed {
        /// The error (the domain's own encoding).
        error: &'a str,
        /// Written in the same transaction as the give-back.
        audit: NewAudit<'a>,
    },
}

impl Store {
    /// Store a new job (pending).
    pub async fn insert_job(&self, j: &NewJob<'_>) -> Result<()> {
        let digests = j.digests_hex.join(",");
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO async_jobs (id, user_id, actor, credential_id, method, request, sad_hash, digests, state, result, attempts, \
                 lease_until, response_uri, response_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', NULL, 0, 0, $9, $10, $11, $12)",
                &[
                    P::S(j.id),
                    P::S(j.user_id),
                    P::S(j.actor),
                    P::S(j.credential_id),
                    P::S(j.method),
                    P::S(j.request),
                    P::S(j.sad_hash),
                    P::S(&digests),
                    P::OS(j.response_uri),
                    P::OS(j.response_id),
                    P::I(j.now),
                    P::I(j.expires_at),
                ],
            )
            .await?;
        Ok(())
    }

    /// Claim the oldest job that is waiting, or running under a lease that has run out (its
    /// node died), for `lease` seconds. PostgreSQL: `FOR UPDATE SKIP LOCKED`, so that nodes
    /// claiming at once take different jobs; SQLite: the one writer serializes the claims.
    pub async fn claim_job(&self, now: i64, lease: i64) -> Result<Option<JobRow>> {
        let lock = if self.db.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE async_jobs SET state = 'running', lease_until = $2, attempts = attempts + 1 WHERE id = (SELECT id FROM async_jobs \
             WHERE state = 'pending' OR (state = 'running' AND lease_until < $1) ORDER BY created_at LIMIT 1{lock}) \
             RETURNING id, user_id, actor, credential_id, method, request, attempts, response_uri, response_id"
        );
        let row = self.db.write().await?.opt(&sql, &[P::I(now), P::I(now + lease)]).await?;
        row.map(|r| {
            Ok(JobRow {
                id: r.str("id")?,
                user_id: r.str("user_id")?,
                actor: r.str("actor")?,
                credential_id: r.str("credential_id")?,
                method: r.str("method")?,
                request: r.str("request")?,
                attempts: r.i64("attempts")?,
                response_uri: r.opt_str("response_uri")?,
                response_id: r.opt_str("response_id")?,
            })
        })
        .transpose()
    }

    /// Record how a claimed job ended, if this claim (`attempts`) still holds it: a node whose
    /// lease ran out while it worked does not overwrite the claim that took over. A failure gives
    /// the SAD back — its count, and its bound digests — with the audit record, in one
    /// transaction. Returns whether this claim's end was recorded.
    pub async fn finish_job(&self, id: &str, attempts: i64, end: JobEnd<'_>) -> Result<bool> {
        transaction!(self.db, |c| {
            let (state, result) = match &end {
                JobEnd::Done(r) => ("done", *r),
                JobEnd::Failed { error, .. } => ("failed", *error),
            };
            let row = c
                .opt(
                    "UPDATE async_jobs SET state = $3, result = $4, lease_until = 0 WHERE id = $1 AND attempts = $2 AND state = 'running' \
                     RETURNING sad_hash, digests",
                    &[P::S(id), P::I(attempts), P::S(state), P::S(result)],
                )
                .await?;
            let Some(row) = row else { return Ok((false, false)) };
            if let JobEnd::Failed { audit, .. } = &end {
                let sad = row.str("sad_hash")?;
                let digests = row.str("digests")?;
                let digests: Vec<String> = digests.split(',').filter(|d| !d.is_empty()).map(String::from).collect();
                give_back(&mut c, &sad, &digests, audit).await?;
            }
            Ok((true, true))
        })
    }

    /// Give a SAD back what one consumption took (`digests_hex.len()` signatures, and each bound
    /// digest once), with the audit record, in one transaction.
    pub async fn give_back_sad(&self, sad_hash: &str, digests_hex: &[String], audit: &NewAudit<'_>) -> Result<()> {
        transaction!(self.db, |c| {
            give_back(&mut c, sad_hash, digests_hex, audit).await?;
            Ok(((), true))
        })
    }

    /// signPolling: the result of `id` for `user_id`, exactly once — the finished job is deleted
    /// by the statement that returns it, so two polls (on two nodes) cannot both get it. A poll
    /// of a job still running only reads (polls must not queue behind the writer).
    pub async fn take_job_result(&self, id: &str, user_id: &str, now: i64) -> Result<TakenJob> {
        let state = self
            .db
            .read()
            .await?
            .opt("SELECT state FROM async_jobs WHERE id = $1 AND user_id = $2 AND expires_at > $3", &[P::S(id), P::S(user_id), P::I(now)])
            .await?
            .map(|r| r.str("state"))
            .transpose()?;
        match state.as_deref() {
            None => return Ok(TakenJob::Unknown),
            Some("pending" | "running") => return Ok(TakenJob::Pending),
            Some(_) => {}
        }
        let row = self
            .db
            .write()
            .await?
            .opt(
                "DELETE FROM async_jobs WHERE id = $1 AND user_id = $2 AND state IN ('done', 'failed') AND expires_at > $3 RETURNING state, result",
                &[P::S(id), P::S(user_id), P::I(now)],
            )
            .await?;
        // None: another poll took it between the two statements.
        Ok(match row {
            Some(r) => TakenJob::Done(r.str("state")? == "done", r.opt_str("result")?.unwrap_or_default()),
            None => TakenJob::Unknown,
        })
    }

    /// Jobs waiting or running (the queue's length, for its bound).
    pub async fn open_jobs(&self) -> Result<i64> {
        let row = self.db.read().await?.opt("SELECT COUNT(*) AS n FROM async_jobs WHERE state IN ('pending', 'running')", &[]).await?;
        row.map(|r| r.i64("n")).transpose().map(|n| n.unwrap_or(0))
    }

    /// Delete finished jobs whose result was never fetched within their validity period.
    pub async fn purge_jobs(&self, now: i64) -> Result<u64> {
        self.db.write().await?.exec("DELETE FROM async_jobs WHERE state IN ('done', 'failed') AND expires_at < $1", &[P::I(now)]).await
    }
}

/// The statements of [`Store::give_back_sad`], in the caller's transaction.
async fn give_back(c: &mut Conn<'_>, sad: &str, digests: &[String], audit: &NewAudit<'_>) -> Result<()> {
    c.exec("UPDATE sads SET remaining = remaining + $2 WHERE hash = $1", &[P::S(sad), P::I(digests.len() as i64)]).await?;
    // A bound SAD: each digest usable again, one use each, as consumption took it.
    for d in digests {
        c.exec(
            "UPDATE sad_hashes SET used = 0 WHERE sad = $1 AND idx = (SELECT MAX(idx) FROM sad_hashes WHERE sad = $1 AND digest = $2 AND used = 1)",
            &[P::S(sad), P::S(d)],
        )
        .await?;
    }
    insert_audit(c, audit).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConsumeOutcome, ConsumeSad, NewSad, Outcome};

    fn audit<'a>(detail: &'a str) -> NewAudit<'a> {
        NewAudit { at: 1, actor: "alice", event: "signatures.signHash", outcome: Outcome::Failed, credential_id: Some("c"), detail }
    }

    fn job<'a>(id: &'a str, digests: &'a [String]) -> NewJob<'a> {
        NewJob {
            id,
            user_id: "u",
            actor: "alice",
            credential_id: "c",
            method: "signatures/signHash",
            request: "{}",
            sad_hash: "S",
            digests_hex: digests,
            response_uri: None,
            response_id: None,
            now: 10,
            expires_at: 1000,
        }
    }

    async fn consume(store: &Store, digest: &str) -> ConsumeOutcome {
        let consume = ConsumeSad {
            hash: "S",
            user_id: "u",
            credential_id: "c",
            hash_algo: "2.16.840.1.101.3.4.2.1",
            digests_hex: vec![digest.to_string()],
            now: 10,
            audit: NewAudit {
                at: 10,
                actor: "alice",
                event: "signatures.signHash",
                outcome: Outcome::Ok,
                credential_id: Some("c"),
                detail: "{}",
            },
            guard: None,
        };
        store.consume_sad(consume).await.unwrap()
    }

    /// The life of jobs on one store: claimed once while leased, claimed again when the lease
    /// has run out (its node died), the late claim's end ignored, the result handed out once;
    /// a failure gives the SAD's count and bound digest back.
    async fn lifecycle(store: &Store) {
        let d = "ab".repeat(32);
        let digests = vec![d.clone()];
        store
            .insert_sad(&NewSad {
                hash: "S",
                user_id: "u",
                credential_id: "c",
                remaining: 1,
                hash_algo: Some("2.16.840.1.101.3.4.2.1"),
                digests: Some(&digests),
                expires_at: i64::MAX,
                now: 1,
                sole_key: None,
            })
            .await
            .unwrap();
        assert_eq!(consume(store, &d).await, ConsumeOutcome::Consumed);
        store.insert_job(&job("J1", &digests)).await.unwrap();
        assert_eq!(store.take_job_result("J1", "u", 20).await.unwrap(), TakenJob::Pending);
        assert_eq!(store.take_job_result("J1", "other", 20).await.unwrap(), TakenJob::Unknown, "another user's job is unknown");
        let first = store.claim_job(20, 60).await.unwrap().expect("claimed");
        assert_eq!((first.id.as_str(), first.attempts), ("J1", 1));
        assert!(store.claim_job(30, 60).await.unwrap().is_none(), "leased: nobody else claims it");
        // The lease has run out: another node claims it.
        let second = store.claim_job(81, 60).await.unwrap().expect("claimed again");
        assert_eq!(second.attempts, 2);
        assert!(!store.finish_job("J1", first.attempts, JobEnd::Done("late")).await.unwrap(), "the stale claim is fenced off");
        assert_eq!(store.take_job_result("J1", "u", 90).await.unwrap(), TakenJob::Pending);
        assert!(store.finish_job("J1", second.attempts, JobEnd::Done("result")).await.unwrap());
        assert_eq!(store.take_job_result("J1", "u", 90).await.unwrap(), TakenJob::Done(true, "result".into()));
        assert_eq!(store.take_job_result("J1", "u", 90).await.unwrap(), TakenJob::Unknown, "once only");

        // A failure: the SAD's count and its bound digest come back, audited.
        assert_eq!(store.sad("S").await.unwrap().unwrap().remaining, 0);
        assert_eq!(consume(store, &d).await, ConsumeOutcome::Exhausted { remaining: 0 });
        store.insert_job(&job("J2", &digests)).await.unwrap();
        let j = store.claim_job(100, 60).await.unwrap().unwrap();
        let before = store.audit_events(1000).await.unwrap().len();
        assert!(store.finish_job("J2", j.attempts, JobEnd::Failed { error: "e", audit: audit("{\"returned\":1}") }).await.unwrap());
        assert_eq!(store.audit_events(1000).await.unwrap().len(), before + 1, "the give-back is audited");
        assert_eq!(store.sad("S").await.unwrap().unwrap().remaining, 1);
        assert_eq!(store.take_job_result("J2", "u", 100).await.unwrap(), TakenJob::Done(false, "e".into()));
        assert_eq!(consume(store, &d).await, ConsumeOutcome::Consumed, "the bound digest signs again");

        // A result not fetched within its validity period is gone.
        store.insert_job(&job("J3", &digests)).await.unwrap();
        let j = store.claim_job(100, 60).await.unwrap().unwrap();
        store.finish_job("J3", j.attempts, JobEnd::Done("r")).await.unwrap();
        assert_eq!(store.take_job_result("J3", "u", 1000).await.unwrap(), TakenJob::Unknown);
        assert_eq!(store.purge_jobs(1001).await.unwrap(), 1);
        assert_eq!(store.open_jobs().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn jobs_on_sqlite() {
        let (dir, store) = crate::tests::store().await;
        lifecycle(&store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Two claimers at once on PostgreSQL take different jobs (`FOR UPDATE SKIP LOCKED`).
    #[tokio::test]
    async fn jobs_on_postgres() {
        let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
        let url = |db: &str| format!("postgres://{role}@127.0.0.1:5432/{db}");
        let name = format!("cs_jobs_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url("test")).await.expect("PostgreSQL on 127.0.0.1:5432");
        let drop_db = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop_db.clone())).execute(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let store = Store::connect(&url(&name)).await.unwrap();
        lifecycle(&store).await;
        let none: Vec<String> = Vec::new();
        let ids: Vec<String> = (0..20).map(|i| format!("P{i:02}")).collect();
        for id in &ids {
            store.insert_job(&job(id, &none)).await.unwrap();
        }
        let other = Store::connect(&url(&name)).await.unwrap();
        let mut tasks = Vec::new();
        for s in [store.clone(), other.clone(), store.clone(), other.clone()] {
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(j) = s.claim_job(200, 60).await.unwrap() {
                    mine.push(j.id);
                }
                mine
            }));
        }
        let mut claimed = Vec::new();
        for t in tasks {
            claimed.extend(t.await.unwrap());
        }
        claimed.sort();
        assert_eq!(claimed, ids, "each job claimed exactly once");
        store.close().await;
        other.close().await;
        sqlx::query(sqlx::AssertSqlSafe(drop_db)).execute(&admin).await.unwrap();
    }
}
