//! Group commit for SAD consumption on SQLite.
//!
//! SQLite has one writer. Every signHash is one write transaction (consume the SAD, write the
//! audit record), and at one hash per request the transaction's fixed cost — the WAL write
//! lock, the WAL frames for the SAD's page and the audit page, the commit — is most of the
//! database's share of the request. Requests that reach the writer while another holds it
//! queue here; whoever obtains the writer next runs everything queued in one transaction, each
//! request's statements inside its own savepoint (so one refusal never undoes another's
//! consumption), and tells each waiting request its own outcome after the commit. Nothing is
//! answered before the commit that makes it durable, so the audit record still precedes every
//! signature (ARCHITECTURE.md, "audit before the response"); a request alone in the queue runs
//! exactly as without grouping.
//!
//! PostgreSQL has no single writer, but the same cost: each signHash was a transaction of
//! several round trips (BEGIN, the SAD's UPDATE, the audit chain's head and record, COMMIT), and
//! the SAD's row and the chain head stay locked to the COMMIT, so requests ran one commit at a
//! time (1.4k/s against SQLite's 26k/s, issue 15). Consumptions queue here as well; a request
//! that finds no batch running ([`PG_LEADERS`] at most per process) starts one that runs
//! everything queued in one transaction, answering each after the commit. The batch first takes
//! the audit chain head (so batches on every node run one at a time and never wait for each
//! other's SAD rows), then takes the counts of all jobs on unbound SADs in one UPDATE and
//! appends all audit records in one statement: four round trips however large the batch. The
//! batch commits asynchronously and waits for its WAL flush after the commit, outside the head's
//! lock (`audit::BEGIN_LOCKING_CHAIN`), so that the next batch holds the head while this one's
//! flush runs, and concurrent flushes share one fsync; no request is answered before its
//! batch is durable. Bound
//! SADs and refusals run one by one in savepoints as on SQLite. Exactly-once across nodes still
//! rests on the row locks the UPDATEs take: a batch is one transaction like any other; a
//! deadlock or serialization failure with another kind of transaction (a revocation) rolls the
//! whole batch back, which is then run again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::db::{Conn, Db, is_retryable};
use crate::{ConsumeOutcome, Result};

/// PostgreSQL: batches running at once in one process. One holds the audit chain head while
/// the others wait for their WAL flush (the head is released at the asynchronous commit, before
/// the flush, `audit::BEGIN_LOCKING_CHAIN`) or for the head.
const PG_LEADERS: usize = 4;

/// PostgreSQL: jobs per batch at most (one batch holds its SADs' rows until it commits).
const PG_MAX_BATCH: usize = 256;

/// PostgreSQL: times a batch is run again after a transaction conflict.
const PG_RETRIES: usize = 3;

/// One signHash's consumption, owned so that another request's task can run it.
pub(crate) struct ConsumeJob {
    pub(crate) hash: String,
    pub(crate) user_id: String,
    pub(crate) credential_id: String,
    pub(crate) hash_algo: String,
    pub(crate) digests_hex: Vec<String>,
    pub(crate) now: i64,
    pub(crate) audit: OwnedAudit,
    /// `SadGuard`: token hash and key handle.
    pub(crate) guard: Option<(String, String)>,
}

/// [`crate::NewAudit`], owned.
pub(crate) struct OwnedAudit {
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) event: String,
    pub(crate) outcome: crate::Outcome,
    pub(crate) credential_id: Option<String>,
    pub(crate) detail: String,
}

/// What a consumption decided: `None` when the SAD's conditions did not hold (nothing
/// changed), and whether the caller's statements are to be kept.
pub(crate) type Decided = (Option<ConsumeOutcome>, bool);

type Reply = oneshot::Sender<Result<Option<ConsumeOutcome>>>;

struct Waiting {
    id: u64,
    job: ConsumeJob,
    reply: Reply,
}

/// The queue of consumptions waiting for the writer.
pub(crate) struct GroupCommit {
    queue: Mutex<(u64, Vec<Waiting>)>,
    /// PostgreSQL: the right to run a batch.
    leaders: std::sync::Arc<Semaphore>,
    /// Jobs run and transactions used, for the tests (and a debugger).
    jobs: AtomicU64,
    batches: AtomicU64,
    /// PostgreSQL: jobs whose count the batch's one UPDATE took.
    taken_together: AtomicU64,
    /// PostgreSQL: batches whose records that same statement appended.
    appended_together: AtomicU64,
    /// PostgreSQL: the audit chain head as this process's last batch left it (a guess: other
    /// writers move it too).
    head: Mutex<Option<(i64, String)>>,
}

/// Takes a request's job back out of the queue if the request goes away before a leader
/// picked it up (a client that disconnects while waiting consumes nothing).
pub(crate) struct Queued<'a> {
    group: &'a GroupCommit,
    id: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let mut q = self.group.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.1.retain(|w| w.id != self.id);
    }
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            leaders: std::sync::Arc::new(Semaphore::new(PG_LEADERS)),
            jobs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            taken_together: AtomicU64::new(0),
            appended_together: AtomicU64::new(0),
            head: Mutex::new(None),
        }
    }
}

impl GroupCommit {
    /// PostgreSQL: wait for the right to run a batch.
    pub(crate) async fn leader(&self) -> Option<OwnedSemaphorePermit> {
        self.leaders.clone().acquire_owned().await.ok()
    }

    /// PostgreSQL: run what is queued (up to [`PG_MAX_BATCH`] jobs) in one transaction on a
    /// connection of its own, and answer each job after the commit. The jobs are taken from
    /// the queue only once the transaction holds the audit chain head, so that a leader waiting
    /// for another's commit (the head serializes batches) takes everything that arrived in the
    /// meantime, and its BEGIN and lock request overlap the other batch's work.
    pub(crate) async fn lead_pg(&self, db: &Db) {
        let mut batch = Vec::new();
        let mut results = self.run_pg(db, &mut batch).await;
        for _ in 0..PG_RETRIES {
            if batch.is_empty() || !results.iter().all(|r| matches!(r, Err(e) if is_retryable(e))) {
                break;
            }
            results = self.run_pg(db, &mut batch).await;
        }
        for (w, r) in batch.into_iter().zip(results) {
            let _ = w.reply.send(r);
        }
    }

    /// Take up to [`PG_MAX_BATCH`] queued jobs into an empty `batch` (a batch run again after a
    /// conflict keeps its jobs).
    fn take_pg(&self, batch: &mut Vec<Waiting>) {
        if !batch.is_empty() {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.1.len().min(PG_MAX_BATCH);
        batch.extend(q.1.drain(..n));
        drop(q);
        if !batch.is_empty() {
            self.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A PostgreSQL batch: one transaction; a failure of the transaction itself (connection,
    /// commit, a statement outside a savepoint) fails every job of it, and nothing of it is
    /// kept. A failure before the jobs are taken fails the queued jobs, so that a database that
    /// is down answers every waiting request (503) instead of leaving it to the next leader.
    /// Its round trips do not grow with the batch when its SADs bind no digests: BEGIN with the
    /// chain head's lock, one UPDATE taking every job's count that also reads the head
    /// (`sad::take_unbound_counts`), one statement appending every audit record
    /// (`audit::append_locked`), COMMIT.
    async fn run_pg(&self, db: &Db, batch: &mut Vec<Waiting>) -> Vec<Result<Option<ConsumeOutcome>>> {
        let fail = |batch: &mut Vec<Waiting>, e: crate::StoreError| {
            self.take_pg(batch);
            batch.iter().map(|_| Err(e.clone())).collect()
        };
        // The audit chain head before any SAD row: the batch appends its records among its row
        // locks (lock order, `audit.rs`). Held to the commit, it also makes batches on every
        // node run one at a time, so two batches never wait for each other's SAD rows.
        let mut c = match db.transaction_with(crate::audit::BEGIN_LOCKING_CHAIN).await {
            Ok(c) => c,
            Err(e) => return fail(batch, e),
        };
        self.take_pg(batch);
        if batch.is_empty() {
            // Another leader took them while this one waited for the head.
            c.rollback().await;
            return Vec::new();
        }
        let all = |e: crate::StoreError| batch.iter().map(|_| Err(e.clone())).collect();
        let jobs: Vec<&ConsumeJob> = batch.iter().map(|w| &w.job).collect();
        // The records the batch appends when every job is taken, chained from the head this
        // process last left: one statement then takes the counts and appends the records.
        let guess = self.head.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let chained = guess.map(|head| {
            let audits: Vec<crate::NewAudit<'_>> = jobs.iter().map(|job| job.audit.as_new()).collect();
            crate::audit::Chained::new(head, &audits.iter().collect::<Vec<_>>())
        });
        let (taken, head, appended) = match crate::sad::take_unbound_counts(&mut c, &jobs, chained.as_ref()).await {
            Ok(t) => t,
            Err(e) => {
                c.rollback().await;
                return all(e);
            }
        };
        if appended {
            self.appended_together.fetch_add(1, Ordering::Relaxed);
        }
        self.taken_together.fetch_add(taken.iter().filter(|t| **t).count() as u64, Ordering::Relaxed);
        let mut results = Vec::with_capacity(batch.len());
        for (job, taken) in jobs.iter().zip(taken) {
            let r = if taken {
                Ok(Ok(Some(ConsumeOutcome::Consumed)))
            } else {
                // Bound, refused or not in a group: the full statements, inside a savepoint.
                in_savepoint(&mut c, job, false).await
            };
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    c.rollback().await;
                    return all(e);
                }
            }
        }
        // The audit records of what was consumed, in the batch's order, each before its
        // signature is made (nothing is answered before the commit).
        let new_head = match chained.filter(|_| appended) {
            Some(chained) => chained.head,
            None => {
                let audits: Vec<crate::NewAudit<'_>> = jobs
                    .iter()
                    .zip(&results)
                    .filter(|(_, r)| matches!(r, Ok(Some(ConsumeOutcome::Consumed))))
                    .map(|(job, _)| job.audit.as_new())
                    .collect();
                let refs: Vec<&crate::NewAudit<'_>> = audits.iter().collect();
                match crate::audit::append_locked(&mut c, head, &refs).await {
                    Ok(h) => h,
                    Err(e) => {
                        c.rollback().await;
                        return all(e);
                    }
                }
            }
        };
        // Before the commit, so that the next leader, whose BEGIN the commit releases, finds it.
        // A guess only: the statement that uses it checks it against the locked head.
        *self.head.lock().unwrap_or_else(|p| p.into_inner()) = Some(new_head);
        if let Err(e) = c.commit().await {
            return all(e);
        }
        // Committed, asynchronously: nothing is answered before it is durable. A failure here
        // leaves the batch's outcome unknown (committed, perhaps not yet on disk), so it is
        // never run again (not a retryable conflict): its requests are answered 503, their
        // counts spent, as after a crash between the commit and the answers.
        match flush_wal(db).await {
            Ok(()) => results,
            Err(e) => all(crate::StoreError::Unavailable(format!("the batch's commit could not be confirmed durable: {e}"))),
        }
    }

    /// Queue a job; the receiver gets its outcome once a leader has committed it.
    pub(crate) fn push(&self, job: ConsumeJob) -> (Queued<'_>, oneshot::Receiver<Result<Option<ConsumeOutcome>>>) {
        let (reply, rx) = oneshot::channel();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0 += 1;
        let id = q.0;
        q.1.push(Waiting { id, job, reply });
        (Queued { group: self, id }, rx)
    }

    /// Jobs run and transactions committed so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.jobs.load(Ordering::Relaxed), self.batches.load(Ordering::Relaxed))
    }

    fn take(&self) -> Vec<Waiting> {
        std::mem::take(&mut self.queue.lock().unwrap_or_else(|p| p.into_inner()).1)
    }

    /// Run everything queued in one transaction on the writer `c` (held, no transaction open)
    /// and answer each job after the commit.
    pub(crate) async fn lead(&self, c: &mut Conn<'_>) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        self.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let results = run(c, &batch).await;
        for (w, r) in batch.into_iter().zip(results) {
            // A requester that has gone away no longer needs its answer.
            let _ = w.reply.send(r);
        }
    }
}

/// PostgreSQL: wait until the WAL is on disk up to now (`audit::FLUSH_WAL`).
async fn flush_wal(db: &Db) -> Result<()> {
    db.write().await?.opt(crate::audit::FLUSH_WAL, &[]).await.map(|_| ())
}

async fn run(c: &mut Conn<'_>, batch: &[Waiting]) -> Vec<Result<Option<ConsumeOutcome>>> {
    if let Err(e) = c.begin().await {
        return batch.iter().map(|_| Err(e.clone())).collect();
    }
    if let [one] = batch {
        // Alone: the transaction is the job's, as without grouping.
        return vec![match crate::sad::consume_in(c, &one.job).await {
            Ok((v, true)) => c.commit_open().await.map(|()| v),
            Ok((v, false)) => {
                c.rollback_open().await;
                Ok(v)
            }
            Err(e) => {
                c.rollback_open().await;
                Err(e)
            }
        }];
    }
    let mut results = Vec::with_capacity(batch.len());
    for w in batch {
        match in_savepoint(c, &w.job, true).await {
            Ok(r) => results.push(r),
            Err(e) => {
                // The savepoint machinery itself failed: nothing of the batch is kept.
                c.rollback_open().await;
                return batch.iter().map(|_| Err(e.clone())).collect();
            }
        }
    }
    match c.commit_open().await {
        Ok(()) => results,
        Err(e) => {
            c.rollback_open().await;
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

/// One job inside its savepoint: kept when it consumed, undone otherwise; with its audit
/// record when `audit` (else the caller appends it). The outer `Result` is a failure of the
/// savepoint statements themselves.
async fn in_savepoint(c: &mut Conn<'_>, job: &ConsumeJob, audit: bool) -> Result<Result<Option<ConsumeOutcome>>> {
    c.exec("SAVEPOINT consume", &[]).await?;
    let decided: Result<Decided> = if audit { crate::sad::consume_in(c, job).await } else { crate::sad::decide_in(c, job).await };
    let keep = matches!(decided, Ok((_, true)));
    if !keep {
        c.exec("ROLLBACK TO consume", &[]).await?;
    }
    c.exec("RELEASE consume", &[]).await?;
    Ok(decided.map(|(v, _)| v))
}

impl From<&crate::NewAudit<'_>> for OwnedAudit {
    fn from(a: &crate::NewAudit<'_>) -> Self {
        OwnedAudit {
            at: a.at,
            actor: a.actor.to_string(),
            event: a.event.to_string(),
            outcome: a.outcome,
            credential_id: a.credential_id.map(str::to_string),
            detail: a.detail.to_string(),
        }
    }
}

impl OwnedAudit {
    /// Borrowed, as the audit functions take it.
    pub(crate) fn as_new(&self) -> crate::NewAudit<'_> {
        crate::NewAudit {
            at: self.at,
            actor: &self.actor,
            event: &self.event,
            outcome: self.outcome,
            credential_id: self.credential_id.as_deref(),
            detail: &self.detail,
        }
    }

    /// Append the record to the audit chain in the caller's transaction (`audit::insert_audit`).
    pub(crate) async fn insert(&self, c: &mut Conn<'_>) -> Result<()> {
        crate::audit::insert_audit(c, &self.as_new()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::tests::{put_sad, store};
    use crate::{ConsumeOutcome, ConsumeSad, NewAudit, Store};

    async fn consume(store: Store, hash: &'static str, digest: &'static str) -> ConsumeOutcome {
        let audit = NewAudit { at: 2, actor: "u", event: "signHash", outcome: crate::Outcome::Ok, credential_id: Some("c"), detail: "{}" };
        let consume = ConsumeSad {
            hash,
            user_id: "u",
            credential_id: "c",
            hash_algo: "2.16.840.1.101.3.4.2.1",
            digests_hex: vec![digest.to_string()],
            now: 2,
            audit,
            guard: None,
        };
        store.consume_sad(consume).await.unwrap()
    }

    /// What both batch tests assert: five requests in one transaction; of three on SAD A (count
    /// 2) two consumed and one exhausted; B's unbound digest refused (its decrement rolled back)
    /// at `refused`, C's bound digest consumed at `consumed`; one audit record per consumption.
    async fn assert_batch(store: &Store, outcomes: &[(&str, ConsumeOutcome)], refused: usize, consumed: usize) {
        assert_eq!(store.consumers.stats(), (5, 1), "five requests, one transaction");
        let a: Vec<_> = outcomes.iter().filter(|(h, _)| *h == "A").map(|(_, o)| o.clone()).collect();
        assert_eq!(a.iter().filter(|o| **o == ConsumeOutcome::Consumed).count(), 2, "{a:?}");
        assert!(a.contains(&ConsumeOutcome::Exhausted { remaining: 0 }), "{a:?}");
        assert_eq!(outcomes[refused].1, ConsumeOutcome::HashNotAuthorized);
        assert_eq!(outcomes[consumed].1, ConsumeOutcome::Consumed);
        assert_eq!(store.sad("A").await.unwrap().unwrap().remaining, 0);
        assert_eq!(store.sad("B").await.unwrap().unwrap().remaining, 1, "the refused request's decrement is rolled back");
        assert_eq!(store.sad("C").await.unwrap().unwrap().remaining, 0);
        let signed = store.audit_events(100).await.unwrap().iter().filter(|e| e.event == "signHash").count();
        assert_eq!(signed, 3, "one audit record per consumption, none for refusals");
        assert_chained(store).await;
    }

    /// Every record links to the one before, its hash is its content's, and the head is the
    /// last record's: the batch's appends are a chain `admin audit verify` accepts.
    async fn assert_chained(store: &Store) {
        let events = store.audit_events(1000).await.unwrap();
        let mut prev = crate::audit::GENESIS.to_string();
        for e in &events {
            assert_eq!(e.prev_hash.as_deref(), Some(prev.as_str()), "record {} links to its predecessor", e.seq);
            assert_eq!(e.computed_hash(e.seq), e.hash, "record {}", e.seq);
            prev = e.hash.clone().unwrap();
        }
        assert_eq!(store.audit_head().await.unwrap(), (events.last().map_or(0, |e| e.seq), prev));
    }

    /// Requests queued behind the writer share one transaction, and each gets its own outcome:
    /// a refusal (savepoint rolled back) never undoes another request's consumption, and a
    /// refused request's partial changes (the SAD count it decremented before its digest was
    /// found unbound) are undone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_transaction_keeps_each_requests_own_outcome() {
        let (dir, store) = store().await;
        let x = "aa".repeat(32);
        put_sad(&store, "A", 2, None).await;
        put_sad(&store, "B", 1, Some(&[x.clone()])).await;
        put_sad(&store, "C", 1, Some(&[x.clone()])).await;
        let held = store.db.write().await.unwrap();
        let mut tasks = Vec::new();
        for (hash, digest) in [("A", "01"), ("A", "02"), ("A", "03"), ("B", "bb"), ("C", "aa")] {
            let digest: &'static str = if digest == "aa" { Box::leak(x.clone().into_boxed_str()) } else { digest };
            tasks.push((hash, tokio::spawn(consume(store.clone(), hash, digest))));
        }
        // Every request queues while the writer is held, then one transaction runs them all.
        while store.consumers.queue.lock().unwrap().1.len() < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(held);
        let mut outcomes = Vec::new();
        for (hash, t) in tasks {
            outcomes.push((hash, t.await.unwrap()));
        }
        assert_batch(&store, &outcomes, 3, 4).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The same on PostgreSQL: requests queued while every batch slot is taken run as one
    /// transaction, unbound consumptions without savepoints, bound ones within theirs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_batches_keep_each_requests_own_outcome() {
        let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
        let url = |db: &str| format!("postgres://{role}@127.0.0.1:5432/{db}");
        let name = format!("cs_group_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url("test")).await.expect("PostgreSQL on 127.0.0.1:5432");
        let drop_db = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop_db.clone())).execute(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let store = Store::connect(&url(&name)).await.unwrap();
        let x = "aa".repeat(32);
        put_sad(&store, "A", 2, None).await;
        put_sad(&store, "B", 1, Some(&[x.clone()])).await;
        put_sad(&store, "C", 1, Some(&[x.clone()])).await;
        let slots = all_slots(&store).await;
        let mut tasks = Vec::new();
        for (hash, digest) in [("C", "aa"), ("A", "01"), ("B", "bb"), ("A", "02"), ("A", "03")] {
            let digest: &'static str = if digest == "aa" { Box::leak(x.clone().into_boxed_str()) } else { digest };
            tasks.push((hash, tokio::spawn(consume(store.clone(), hash, digest))));
        }
        while store.consumers.queue.lock().unwrap().1.len() < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(slots);
        let mut outcomes = Vec::new();
        for (hash, t) in tasks {
            outcomes.push((hash, t.await.unwrap()));
        }
        assert_batch(&store, &outcomes, 2, 0).await;
        assert_eq!(store.consumers.taken_together.load(Ordering::Relaxed), 0, "A's three requests exceed its count: one by one");

        // A SAD that holds every queued request's count: all of them taken by the one UPDATE,
        // and a second caller on that SAD (another user) refused on its own.
        put_sad(&store, "D", 3, None).await;
        let slots = all_slots(&store).await;
        let mut tasks = Vec::new();
        for digest in ["01", "02", "03"] {
            tasks.push(tokio::spawn(consume(store.clone(), "D", digest)));
        }
        // Queued after them, so that the group is the owner's.
        while store.consumers.queue.lock().unwrap().1.len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let intruder = {
            let store = store.clone();
            tokio::spawn(async move {
                let audit =
                    NewAudit { at: 2, actor: "v", event: "signHash", outcome: crate::Outcome::Ok, credential_id: Some("c"), detail: "{}" };
                let c = ConsumeSad {
                    hash: "D",
                    user_id: "v",
                    credential_id: "c",
                    hash_algo: "2.16.840.1.101.3.4.2.1",
                    digests_hex: vec!["04".into()],
                    now: 2,
                    audit,
                    guard: None,
                };
                store.consume_sad(c).await.unwrap()
            })
        };
        while store.consumers.queue.lock().unwrap().1.len() < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(slots);
        for t in tasks {
            assert_eq!(t.await.unwrap(), ConsumeOutcome::Consumed);
        }
        assert_eq!(intruder.await.unwrap(), ConsumeOutcome::Unknown, "another user's request on the SAD");
        assert_eq!(store.consumers.stats(), (9, 2), "the four requests in one more transaction");
        assert_eq!(store.consumers.taken_together.load(Ordering::Relaxed), 3, "the owner's three counts by the one UPDATE");
        assert_eq!(store.sad("D").await.unwrap().unwrap().remaining, 0);
        assert_eq!(store.audit_events(100).await.unwrap().iter().filter(|e| e.event == "signHash").count(), 6);
        assert_chained(&store).await;
        assert_eq!(store.consumers.appended_together.load(Ordering::Relaxed), 0, "every batch so far had a job outside the one UPDATE");

        // Every job taken by the one UPDATE, from the head this process left: the same
        // statement appends the records. Then a record written by another path moves the head,
        // and the next batch, whose guess is stale, appends on its own, still in the chain.
        put_sad(&store, "E", 6, None).await;
        for (round, appended) in [(0, 1), (1, 1)] {
            if round == 1 {
                let other = NewAudit { at: 3, actor: "u", event: "login", outcome: crate::Outcome::Ok, credential_id: None, detail: "{}" };
                store.audit(&other).await.unwrap();
            }
            let slots = all_slots(&store).await;
            let tasks: Vec<_> = ["01", "02", "03"].into_iter().map(|d| tokio::spawn(consume(store.clone(), "E", d))).collect();
            while store.consumers.queue.lock().unwrap().1.len() < 3 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            drop(slots);
            for t in tasks {
                assert_eq!(t.await.unwrap(), ConsumeOutcome::Consumed);
            }
            assert_eq!(store.consumers.appended_together.load(Ordering::Relaxed), appended, "round {round}");
            assert_chained(&store).await;
        }
        assert_eq!(store.sad("E").await.unwrap().unwrap().remaining, 0);
        assert_eq!(store.audit_events(100).await.unwrap().iter().filter(|e| e.event == "signHash").count(), 12);
        store.close().await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop_db)).execute(&admin).await;
        admin.close().await;
    }

    /// Every PostgreSQL batch slot, so that requests queue until they are dropped.
    async fn all_slots(store: &Store) -> Vec<tokio::sync::OwnedSemaphorePermit> {
        let mut slots = Vec::new();
        for _ in 0..super::PG_LEADERS {
            slots.push(store.consumers.leader().await.unwrap());
        }
        slots
    }

    /// A request that goes away while queued consumes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_request_is_taken_out_of_the_queue() {
        let (dir, store) = store().await;
        put_sad(&store, "A", 5, None).await;
        let held = store.db.write().await.unwrap();
        let t = tokio::spawn(consume(store.clone(), "A", "01"));
        while store.consumers.queue.lock().unwrap().1.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        t.abort();
        let _ = t.await;
        assert!(store.consumers.queue.lock().unwrap().1.is_empty());
        drop(held);
        assert_eq!(consume(store.clone(), "A", "02").await, ConsumeOutcome::Consumed);
        assert_eq!(store.sad("A").await.unwrap().unwrap().remaining, 4);
        let _ = std::fs::remove_dir_all(dir);
    }
}
