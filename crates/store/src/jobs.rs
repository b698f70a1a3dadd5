//! `async_jobs`: asynchronous signature requests (CSC API 2.2.0.0 `operationMode: "A"`,
//! `signatures/signPolling`).
//!
//! * Accept ([`Store::accept_job`]) is one transaction: the SAD's consumption (its count, its
//!   bound digests, the audit record) and the job's insert commit together or not at all, so a
//!   crash in between can neither spend a SAD with no job to show for it nor store a job nobody
//!   paid for.
//! * Any node claims waiting jobs, several at once ([`Store::claim_jobs`]; a lease, so that a job
//!   whose node died is run again), or the accepting node claims the job with its insert and runs
//!   it at once. Each claim's end is recorded only while that claim holds the job (`attempts` is
//!   its fencing token).
//! * The result is handed out once: the statement that reads it deletes it, in the transaction
//!   that writes the delivery's audit record.
//!
//! Lock order (PostgreSQL, see `audit.rs`): a transaction that takes a SAD's row and appends an
//! audit record (accept, a failed job's give-back) takes the chain head first, as a consumption
//! batch does; a delivery, which locks only its own job row, appends last.

use crate::audit::{NewAudit, insert_audit};
use crate::db::{Conn, P, is_retryable};
use crate::{ConsumeOutcome, ConsumeSad, Outcome, Result, Store, group, sad};

/// Times an accept is run again after a transaction conflict (PostgreSQL deadlock or
/// serialization failure: nothing of it was kept).
const ACCEPT_RETRIES: usize = 3;

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
    /// node may run the job), and only until the job ends. It alone fetches nothing:
    /// signPolling also needs the owner's token.
    pub response_id: Option<&'a str>,
    /// Claimed by the accepting node with its insert, under a lease until then (its first
    /// claim, `attempts` 1), to be run there at once; `None`: waiting for any node's worker.
    pub claimed_until: Option<i64>,
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
    /// The end of its validity period: a result made after it could never be fetched.
    pub expires_at: i64,
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

/// The columns of a claimed job.
const JOB_COLUMNS: &str = "id, user_id, actor, credential_id, method, request, attempts, response_uri, response_id, expires_at";

impl Store {
    /// Accept a job: consume `consume` (its SAD's count, each bound digest once, and its audit
    /// record) and store `job`, in one transaction: both or neither. `Consumed` means the job is
    /// stored; any other outcome, or an error, means nothing was spent and nothing stored.
    pub async fn accept_job(&self, consume: ConsumeSad<'_>, job: &NewJob<'_>) -> Result<ConsumeOutcome> {
        let ConsumeSad { hash, user_id, credential_id, now, .. } = consume;
        let n = consume.digests_hex.len() as i64;
        let taking = group::ConsumeJob::from(consume);
        let mut conflicts = 0;
        let decided = loop {
            let attempt: Result<_> = async {
                transaction!(chained self.db, |c| {
                    let (outcome, keep) = sad::decide_in(&mut c, &taking).await?;
                    if keep {
                        insert_job(&mut c, job).await?;
                        // Last, after the job: a failed insert leaves no record of a consumption
                        // that did not happen.
                        taking.audit.insert(&mut c).await?;
                    }
                    Ok((outcome, keep))
                })
            }
            .await;
            match attempt {
                Err(e) if is_retryable(&e) && conflicts < ACCEPT_RETRIES => conflicts += 1,
                other => break other?,
            }
        };
        match decided {
            Some(outcome) => Ok(outcome),
            None => self.explain_refusal(hash, user_id, credential_id, n, now).await,
        }
    }

    /// Claim up to `limit` of the oldest jobs that are waiting, or running under a lease that has
    /// run out (their node died), for `lease` seconds, in one statement. PostgreSQL: `FOR UPDATE
    /// SKIP LOCKED`, so that nodes claiming at once take different jobs; SQLite: the one writer
    /// serializes the claims.
    pub async fn claim_jobs(&self, now: i64, lease: i64, limit: usize) -> Result<Vec<JobRow>> {
        let limit = limit.max(1) as i64;
        let rows = if self.db.is_postgres() {
            // The rows picked (and locked) in a CTE of their own: under `id IN (SELECT ... LIMIT
            // n FOR UPDATE SKIP LOCKED)` the planner may run the subquery more than once and
            // lock more than `n` rows.
            let sql = format!(
                "WITH picked AS (SELECT id FROM async_jobs WHERE state = 'pending' OR (state = 'running' AND lease_until < $1) \
                 ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE async_jobs j SET state = 'running', lease_until = $2, attempts = j.attempts + 1 FROM picked WHERE j.id = picked.id \
                 RETURNING {}",
                JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", ")
            );
            self.db.write().await?.all(&sql, &[P::I(now), P::I(now + lease), P::I(limit)]).await?
        } else {
            let sql = format!(
                "UPDATE async_jobs SET state = 'running', lease_until = $2, attempts = attempts + 1 WHERE id IN (SELECT id FROM async_jobs \
                 WHERE state = 'pending' OR (state = 'running' AND lease_until < $1) ORDER BY created_at LIMIT $3) RETURNING {JOB_COLUMNS}"
            );
            self.db.write().await?.all(&sql, &[P::I(now), P::I(now + lease), P::I(limit)]).await?
        };
        rows.iter()
            .map(|r| {
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
                    expires_at: r.i64("expires_at")?,
                })
            })
            .collect()
    }

    /// Record how a claimed job ended, if this claim (`attempts`) still holds it: a node whose
    /// lease ran out while it worked does not overwrite the claim that took over. The kept
    /// `responseID` is dropped (the caller holds it for the notification). A failure gives the
    /// SAD back — its count, and its bound digests — with the audit record, in one transaction.
    /// Returns whether this claim's end was recorded.
    pub async fn finish_job(&self, id: &str, attempts: i64, end: JobEnd<'_>) -> Result<bool> {
        const FINISH: &str = "UPDATE async_jobs SET state = $3, result = $4, lease_until = 0, response_id = NULL \
                              WHERE id = $1 AND attempts = $2 AND state = 'running' RETURNING sad_hash, digests";
        let (error, audit) = match &end {
            // One statement, nothing else to keep consistent with it.
            JobEnd::Done(result) => {
                let row = self.db.write().await?.opt(FINISH, &[P::S(id), P::I(attempts), P::S("done"), P::S(result)]).await?;
                return Ok(row.is_some());
            }
            JobEnd::Failed { error, audit } => (*error, audit),
        };
        transaction!(chained self.db, |c| {
            let Some(row) = c.opt(FINISH, &[P::S(id), P::I(attempts), P::S("failed"), P::S(error)]).await? else {
                return Ok((false, false));
            };
            let sad = row.str("sad_hash")?;
            let digests = row.str("digests")?;
            let digests: Vec<String> = digests.split(',').filter(|d| !d.is_empty()).map(String::from).collect();
            give_back(&mut c, &sad, &digests, audit).await?;
            Ok((true, true))
        })
    }

    /// signPolling: the result of `id` for `user_id`, exactly once — the finished job is deleted
    /// by the statement that returns it, so two polls (on two nodes) cannot both get it — with
    /// `audit`, the delivery's record (its outcome set from how the job ended), in the same
    /// transaction: a result is never handed out unaudited, nor lost to a failed audit write. A
    /// poll of a job still running only reads (polls must not queue behind the writer).
    pub async fn take_job_result(&self, id: &str, user_id: &str, now: i64, audit: &NewAudit<'_>) -> Result<TakenJob> {
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
        transaction!(self.db, |c| {
            let row = c
                .opt(
                    "DELETE FROM async_jobs WHERE id = $1 AND user_id = $2 AND state IN ('done', 'failed') AND expires_at > $3 \
                     RETURNING state, result",
                    &[P::S(id), P::S(user_id), P::I(now)],
                )
                .await?;
            // None: another poll took it between the two statements.
            let Some(row) = row else { return Ok((TakenJob::Unknown, false)) };
            let ok = row.str("state")? == "done";
            let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
            insert_audit(&mut c, &NewAudit { outcome, ..*audit }).await?;
            Ok((TakenJob::Done(ok, row.opt_str("result")?.unwrap_or_default()), true))
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

/// The job's INSERT, in the accepting transaction.
async fn insert_job(c: &mut Conn<'_>, j: &NewJob<'_>) -> Result<()> {
    let digests = j.digests_hex.join(",");
    let (state, attempts) = if j.claimed_until.is_some() { ("running", 1) } else { ("pending", 0) };
    c.exec(
        "INSERT INTO async_jobs (id, user_id, actor, credential_id, method, request, sad_hash, digests, state, result, attempts, \
         lease_until, response_uri, response_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14, $15)",
        &[
            P::S(j.id),
            P::S(j.user_id),
            P::S(j.actor),
            P::S(j.credential_id),
            P::S(j.method),
            P::S(j.request),
            P::S(j.sad_hash),
            P::S(&digests),
            P::S(state),
            P::I(attempts),
            P::I(j.claimed_until.unwrap_or(0)),
            P::OS(j.response_uri),
            P::OS(j.response_id),
            P::I(j.now),
            P::I(j.expires_at),
        ],
    )
    .await?;
    Ok(())
}

/// Give a SAD back what one consumption took (`digests.len()` signatures, and each bound digest
/// once), with the audit record, in the caller's transaction (also a device request's that
/// ended unsigned, `devices.rs`).
pub(crate) async fn give_back(c: &mut Conn<'_>, sad: &str, digests: &[String], audit: &NewAudit<'_>) -> Result<()> {
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
    use crate::tests::put_sad;
    use crate::{ConsumeSad, Outcome};

    const SHA256: &str = "2.16.840.1.101.3.4.2.1";

    fn audit<'a>(detail: &'a str) -> NewAudit<'a> {
        NewAudit { at: 1, actor: "alice", event: "signatures.signHash", outcome: Outcome::Failed, credential_id: Some("c"), detail }
    }

    fn job<'a>(id: &'a str, sad_hash: &'a str, digests: &'a [String]) -> NewJob<'a> {
        NewJob {
            id,
            user_id: "u",
            actor: "alice",
            credential_id: "c",
            method: "signatures/signHash",
            request: "{}",
            sad_hash,
            digests_hex: digests,
            response_uri: None,
            response_id: None,
            claimed_until: None,
            now: 10,
            expires_at: 1000,
        }
    }

    fn consumption<'a>(sad: &'a str, digests: &[String]) -> ConsumeSad<'a> {
        ConsumeSad {
            hash: sad,
            user_id: "u",
            credential_id: "c",
            hash_algo: SHA256,
            digests_hex: digests.to_vec(),
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
        }
    }

    /// A synchronous consumption of one digest of `sad`.
    async fn consume(store: &Store, sad: &str, digest: &str) -> ConsumeOutcome {
        store.consume_sad(consumption(sad, &[digest.to_string()])).await.unwrap()
    }

    /// Accept `j` paid by its own SAD and digests.
    async fn accept(store: &Store, j: &NewJob<'_>) -> Result<ConsumeOutcome> {
        store.accept_job(consumption(j.sad_hash, j.digests_hex), j).await
    }

    async fn audited(store: &Store) -> usize {
        store.audit_events(10_000).await.unwrap().len()
    }

    async fn take(store: &Store, id: &str, user: &str, now: i64) -> TakenJob {
        let delivery = NewAudit { outcome: Outcome::Ok, event: "signatures.signPolling", ..audit("{}") };
        store.take_job_result(id, user, now, &delivery).await.unwrap()
    }

    /// The life of jobs on one store: accepted with their SAD's consumption or not at all,
    /// claimed once while leased, claimed again when the lease has run out (its node died), the
    /// late claim's end ignored, the result handed out once and audited; a failure gives the
    /// SAD's count and bound digest back; claims several at a time.
    async fn lifecycle(store: &Store) {
        let d = "ab".repeat(32);
        let digests = vec![d.clone()];
        put_sad(store, "S", 1, Some(&digests)).await;
        put_sad(store, "T", 1, Some(&digests)).await;
        put_sad(store, "U", 100, None).await;

        let before = audited(store).await;
        assert_eq!(accept(store, &job("J1", "S", &digests)).await.unwrap(), ConsumeOutcome::Consumed);
        assert_eq!(audited(store).await, before + 1, "the consumption is audited with the accept");
        assert_eq!(store.sad("S").await.unwrap().unwrap().remaining, 0);
        // Refused: nothing is stored.
        assert_eq!(accept(store, &job("J0", "S", &digests)).await.unwrap(), ConsumeOutcome::Exhausted { remaining: 0 });
        assert_eq!(take(store, "J0", "u", 20).await, TakenJob::Unknown, "a refused accept stores no job");

        // The job's insert fails (its id is taken): the consumption is undone with it.
        let before = audited(store).await;
        assert!(accept(store, &job("J1", "T", &digests)).await.is_err(), "a second job J1");
        assert_eq!(store.sad("T").await.unwrap().unwrap().remaining, 1, "the SAD's count is untouched");
        assert_eq!(audited(store).await, before, "no record of a consumption that did not happen");
        let used = store.db.read().await.unwrap().opt("SELECT used FROM sad_hashes WHERE sad = 'T'", &[]).await.unwrap();
        assert_eq!(used.unwrap().i64("used").unwrap(), 0, "the bound digest is still unused");

        assert_eq!(take(store, "J1", "u", 20).await, TakenJob::Pending);
        assert_eq!(take(store, "J1", "other", 20).await, TakenJob::Unknown, "another user's job is unknown");
        let first = store.claim_jobs(20, 60, 10).await.unwrap();
        assert_eq!(first.iter().map(|j| (j.id.as_str(), j.attempts)).collect::<Vec<_>>(), [("J1", 1)]);
        assert!(store.claim_jobs(30, 60, 10).await.unwrap().is_empty(), "leased: nobody else claims it");
        // The lease has run out: another node claims it.
        let second = store.claim_jobs(81, 60, 10).await.unwrap().pop().expect("claimed again");
        assert_eq!((second.attempts, second.expires_at), (2, 1000));
        assert!(!store.finish_job("J1", first[0].attempts, JobEnd::Done("late")).await.unwrap(), "the stale claim is fenced off");
        assert_eq!(take(store, "J1", "u", 90).await, TakenJob::Pending);
        assert!(store.finish_job("J1", second.attempts, JobEnd::Done("result")).await.unwrap());
        let before = audited(store).await;
        assert_eq!(take(store, "J1", "u", 90).await, TakenJob::Done(true, "result".into()));
        assert_eq!(take(store, "J1", "u", 90).await, TakenJob::Unknown, "once only");
        let events = store.audit_events(1).await.unwrap();
        assert_eq!(
            (audited(store).await, events[0].event.as_str()),
            (before + 1, "signatures.signPolling"),
            "the delivery is audited once"
        );

        // A failure: the SAD's count and its bound digest come back, audited.
        assert_eq!(accept(store, &job("J2", "T", &digests)).await.unwrap(), ConsumeOutcome::Consumed);
        assert_eq!(store.sad("T").await.unwrap().unwrap().remaining, 0);
        let j = store.claim_jobs(100, 60, 10).await.unwrap().pop().unwrap();
        let before = audited(store).await;
        assert!(store.finish_job("J2", j.attempts, JobEnd::Failed { error: "e", audit: audit("{\"returned\":1}") }).await.unwrap());
        assert_eq!(audited(store).await, before + 1, "the give-back is audited");
        assert_eq!(store.sad("T").await.unwrap().unwrap().remaining, 1);
        assert_eq!(take(store, "J2", "u", 100).await, TakenJob::Done(false, "e".into()));
        assert_eq!(consume(store, "T", &d).await, ConsumeOutcome::Consumed, "the bound digest signs again");

        // A result not fetched within its validity period is gone.
        let none: Vec<String> = vec!["01".into()];
        accept(store, &job("J3", "U", &none)).await.unwrap();
        let j = store.claim_jobs(100, 60, 10).await.unwrap().pop().unwrap();
        store.finish_job("J3", j.attempts, JobEnd::Done("r")).await.unwrap();
        assert_eq!(take(store, "J3", "u", 1000).await, TakenJob::Unknown);
        assert_eq!(store.purge_jobs(1001).await.unwrap(), 1);

        // Claimed by its accept: no worker takes it while the lease holds, its end is recorded
        // under claim 1, and the kept responseID is dropped then.
        let claimed =
            NewJob { claimed_until: Some(160), response_uri: Some("https://rp.example/"), response_id: Some("R"), ..job("J4", "U", &none) };
        accept(store, &claimed).await.unwrap();
        assert!(store.claim_jobs(100, 60, 10).await.unwrap().is_empty(), "the accepting node holds it");
        assert!(store.finish_job("J4", 1, JobEnd::Done("inline")).await.unwrap());
        let kept = store.db.read().await.unwrap().opt("SELECT response_id FROM async_jobs WHERE id = 'J4'", &[]).await.unwrap();
        assert_eq!(kept.unwrap().opt_str("response_id").unwrap(), None, "no clear handle left once the job has ended");
        assert_eq!(take(store, "J4", "u", 100).await, TakenJob::Done(true, "inline".into()));

        // Several claimed at once, oldest first.
        for i in 5..10 {
            accept(store, &NewJob { now: 10 + i, ..job(&format!("J{i}"), "U", &none) }).await.unwrap();
        }
        let batch = store.claim_jobs(200, 60, 3).await.unwrap();
        let mut ids: Vec<&str> = batch.iter().map(|j| j.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["J5", "J6", "J7"]);
        assert_eq!(store.claim_jobs(200, 60, 3).await.unwrap().len(), 2);
        assert!(store.claim_jobs(200, 60, 3).await.unwrap().is_empty());
        assert_eq!(store.open_jobs().await.unwrap(), 5);
        for i in 5..10 {
            store.finish_job(&format!("J{i}"), 1, JobEnd::Done("r")).await.unwrap();
        }
        assert_eq!(store.open_jobs().await.unwrap(), 0);
    }

    /// 20 polls at once (on `stores`, in turn) for one finished job: exactly one gets it, and
    /// exactly one delivery is audited.
    async fn one_of_twenty(stores: &[Store]) {
        let store = &stores[0];
        accept(store, &job("ONCE", "U", &["02".to_string()])).await.unwrap();
        let j = store.claim_jobs(300, 60, 1).await.unwrap().pop().unwrap();
        store.finish_job("ONCE", j.attempts, JobEnd::Done("the result")).await.unwrap();
        let before = audited(store).await;
        let polls: Vec<_> = (0..20)
            .map(|i| {
                let s = stores[i % stores.len()].clone();
                tokio::spawn(async move { take(&s, "ONCE", "u", 300).await })
            })
            .collect();
        let mut got = Vec::new();
        for p in polls {
            got.push(p.await.unwrap());
        }
        assert_eq!(got.iter().filter(|t| **t == TakenJob::Done(true, "the result".into())).count(), 1, "{got:?}");
        assert_eq!(got.iter().filter(|t| **t == TakenJob::Unknown).count(), 19, "{got:?}");
        assert_eq!(audited(store).await, before + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_on_sqlite() {
        let (dir, store) = crate::tests::store().await;
        lifecycle(&store).await;
        one_of_twenty(std::slice::from_ref(&store)).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The same on PostgreSQL, and there across two connection pools (two nodes): claimers at
    /// once take different jobs (`FOR UPDATE SKIP LOCKED`), each exactly once, and of 20 polls
    /// one gets the result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
        let other = Store::connect(&url(&name)).await.unwrap();
        one_of_twenty(&[store.clone(), other.clone()]).await;
        put_sad(&store, "P", 20, None).await;
        let mut ids: Vec<String> = Vec::new();
        for i in 0..20 {
            let id = format!("P{i:02}");
            let digests = [format!("{i:02x}")];
            accept(&store, &job(&id, "P", &digests)).await.unwrap();
            ids.push(id);
        }
        let mut tasks = Vec::new();
        for s in [store.clone(), other.clone(), store.clone(), other.clone()] {
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = s.claim_jobs(400, 60, 3).await.unwrap();
                    if claimed.is_empty() {
                        break mine;
                    }
                    mine.extend(claimed.into_iter().map(|j| j.id));
                }
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
