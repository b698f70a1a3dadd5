//! `audit`: the append-only event log, hash-chained, with signed checkpoints.
//!
//! Every record carries `hash = SHA-256(canonical(seq, at, actor, event, outcome,
//! credential_id, detail, prev_hash))` ([`record_hash`]) and the hash of the record before it
//! (`prev_hash`; the first record's is [`GENESIS`]). The chain is appended only by
//! [`insert_audit`], inside the transaction that inserts the record: it advances the one-row
//! chain head (`audit_head`) with `UPDATE ... RETURNING`, which gives the record its `seq`
//! (head + 1) and its `prev_hash` (the head's hash), and stores the new hash back into the head.
//!
//! Why this is exactly-once and gap-free, on either database:
//! * PostgreSQL: the UPDATE takes the head row's lock until commit, so appenders in several
//!   processes queue on it. Under READ COMMITTED a waiting UPDATE re-reads the row as its
//!   holder committed it (PostgreSQL manual, "13.2.1 Read Committed Isolation Level"), so it
//!   chains to the committed predecessor. A transaction that rolls back undoes its head update
//!   with its record (unlike a sequence, which would leave a gap); one that commits has both.
//! * SQLite: one writer, so appends are serialized by the write lock; in a group-commit batch
//!   each request's append is inside its savepoint, so a refused request's append is undone and
//!   the chain follows the order in which the batch kept the records.
//!
//! Lock order (PostgreSQL): a transaction that takes the head lock and then waits for another
//! row lock could deadlock with one that holds that row and waits for the head. So the head is
//! either taken last (a lone record: [`insert_audit`] is the transaction's last statement) or
//! first ([`BEGIN_LOCKING_CHAIN`], at the start of a batch that writes several records, which it then
//! appends in one statement with [`append_locked`]).
//!
//! The chain makes any edit that is not recomputed over every later record visible; signed
//! checkpoints (`audit_checkpoints`: seq, hash, time and the CA's signature over them, made by
//! the domain) make a recomputed chain visible too, up to the last checkpoint.

use aws_lc_rs::digest;

use crate::codec::{decode, encode};
use crate::db::{Conn, P};
use crate::{Result, Store, StoreError};

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
    /// The chain hash of the record before (hex); `None` only for a row not written by the
    /// service.
    pub prev_hash: Option<String>,
    /// This record's chain hash (hex, [`record_hash`]); `None` likewise.
    pub hash: Option<String>,
}

impl AuditEvent {
    /// The hash this record's content and `prev_hash` give when it sits at `seq`.
    pub fn computed_hash(&self, seq: i64) -> Option<String> {
        let prev = self.prev_hash.as_deref()?;
        Some(record_hash(seq, self.at, &self.actor, &self.event, &self.outcome, self.credential_id.as_deref(), &self.detail, prev))
    }
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

/// A signed checkpoint of the chain: the CA's signature over [`checkpoint_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The last record covered.
    pub seq: i64,
    /// Its chain hash (hex).
    pub hash: String,
    /// When the checkpoint was made (Unix seconds).
    pub at: i64,
    /// The signature (for the built-in CA: ECDSA P-384 with SHA-384, DER).
    pub signature: Vec<u8>,
}

/// The `prev_hash` of the first record: 32 zero bytes, hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain label of the record encoding (a new encoding gets a new label).
const RECORD_LABEL: &[u8] = b"cloudsign audit record v1\0";
/// Domain label of the checkpoint encoding.
const CHECKPOINT_LABEL: &[u8] = b"cloudsign audit checkpoint v1\0";

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain hash of a record (lowercase hex SHA-256). The canonical encoding, for anyone
/// re-checking an export: the label `cloudsign audit record v1` and a NUL byte; `seq` and `at`
/// as 8-byte big-endian two's complement; then `actor`, `event`, `outcome` as UTF-8, each
/// preceded by its length in bytes (8-byte big-endian); `credential_id` as one byte 0 (absent)
/// or 1 followed by the length-prefixed value; `detail` length-prefixed; `prev_hash` as its 64
/// hex characters, length-prefixed. Length prefixes make the encoding injective.
#[allow(clippy::too_many_arguments)]
pub fn record_hash(
    seq: i64,
    at: i64,
    actor: &str,
    event: &str,
    outcome: &str,
    credential_id: Option<&str>,
    detail: &str,
    prev_hash: &str,
) -> String {
    let mut m = Vec::with_capacity(RECORD_LABEL.len() + 128 + detail.len());
    m.extend_from_slice(RECORD_LABEL);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&at.to_be_bytes());
    field(&mut m, actor.as_bytes());
    field(&mut m, event.as_bytes());
    field(&mut m, outcome.as_bytes());
    match credential_id {
        None => m.push(0),
        Some(c) => {
            m.push(1);
            field(&mut m, c.as_bytes());
        }
    }
    field(&mut m, detail.as_bytes());
    field(&mut m, prev_hash.as_bytes());
    hex(digest::digest(&digest::SHA256, &m).as_ref())
}

/// The bytes a checkpoint signs: the label `cloudsign audit checkpoint v1` and a NUL byte,
/// `seq` and `at` (8-byte big-endian), the hash's 64 hex characters length-prefixed.
pub fn checkpoint_message(seq: i64, hash: &str, at: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_LABEL.len() + 88);
    m.extend_from_slice(CHECKPOINT_LABEL);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&at.to_be_bytes());
    field(&mut m, hash.as_bytes());
    m
}

/// Append one record to the chain, in the caller's transaction (see the module comment). Every
/// audit record is written through here: [`Store::audit`] and the consuming transaction of a
/// signature (`sad.rs`, `group.rs`). Returns the record's `seq`.
pub(crate) async fn insert_audit(c: &mut Conn<'_>, e: &NewAudit<'_>) -> Result<i64> {
    let head = c
        .opt("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash", &[])
        .await?
        .ok_or_else(|| StoreError::Db("the audit chain head is missing".into()))?;
    let (seq, prev) = (head.i64("seq")?, head.str("hash")?);
    let outcome = e.outcome.as_str();
    let hash = record_hash(seq, e.at, e.actor, e.event, outcome, e.credential_id, e.detail, &prev);
    c.exec(
        "INSERT INTO audit (seq, at, actor, event, outcome, credential_id, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[P::I(seq), P::I(e.at), P::S(e.actor), P::S(e.event), P::S(outcome), P::OS(e.credential_id), P::S(e.detail), P::S(&prev), P::S(&hash)],
    )
    .await?;
    c.exec("UPDATE audit_head SET hash = $1 WHERE id = 1", &[P::S(&hash)]).await?;
    Ok(seq)
}

/// PostgreSQL: the statements that open a transaction which will append several records
/// among other row locks (a group-commit batch, `Db::transaction_with`): BEGIN and the chain
/// head's row lock in one round trip, so that the head is never taken after another row lock
/// (see "Lock order" above). The head's value is read later in the transaction
/// ([`chain_head`], or with the batch's first statement), from which [`append_locked`] chains
/// the batch's records.
///
/// The transaction commits without waiting for its WAL to reach the disk (`SET LOCAL
/// synchronous_commit = off`, PostgreSQL manual 30.4 "Asynchronous Commit"), so that the head's
/// lock, which every batch of every node takes in turn, is released before the flush rather than
/// after it; the batch then waits for the flush outside the lock ([`FLUSH_WAL`]) and answers no
/// request before it has. Nothing of an unflushed batch can outlive it: any transaction that
/// saw its effects (a later batch chained to its records, a checkpoint of its head) commits
/// after it in the one WAL, so a crash that loses the batch loses those too.
///
/// Its statements run on generic plans (`SET LOCAL plan_cache_mode = force_generic_plan`,
/// manual 20.7.2): a prepared statement is otherwise planned afresh, with its parameters, on
/// each of its first five executions on a connection and whenever the custom plan looks
/// cheaper, and the batch statement (`sad::take_unbound_counts`, a CTE over `unnest` arrays
/// that only ever looks rows up by key) cost more to plan than to run. Measured on one
/// machine in one sitting: PostgreSQL/SQLite at 1 hash per request 50 % → 62 %
/// (docs/performance.md, "Fifth pass").
pub(crate) const BEGIN_LOCKING_CHAIN: &str = "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL plan_cache_mode = force_generic_plan; \
     SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE";

/// PostgreSQL: an autocommitted statement that returns once the WAL is on disk up to its own
/// commit record, and so up to every commit made before it (an asynchronously committed batch,
/// [`BEGIN_LOCKING_CHAIN`]). `pg_current_xact_id()` gives the statement a transaction id, and a
/// transaction with one writes a commit record and, with `synchronous_commit` on, flushes to it
/// (a read-only statement would write nothing and wait for nothing). Concurrent waits share one
/// flush.
pub(crate) const FLUSH_WAL: &str = "SELECT pg_current_xact_id()::text AS xid";

/// The chain head (its `seq` and hash), read in the caller's transaction.
pub(crate) async fn chain_head(c: &mut Conn<'_>) -> Result<(i64, String)> {
    let head = c
        .opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
        .await?
        .ok_or_else(|| StoreError::Db("the audit chain head is missing".into()))?;
    Ok((head.i64("seq")?, head.str("hash")?))
}

/// Records chained from a head, as the columns of one multi-row INSERT (PostgreSQL arrays).
pub(crate) struct Chained {
    seqs: Vec<i64>,
    ats: Vec<i64>,
    actors: Vec<String>,
    events: Vec<String>,
    outcomes: Vec<String>,
    creds: Vec<Option<String>>,
    details: Vec<String>,
    prevs: Vec<String>,
    hashes: Vec<String>,
    /// The head the records were chained from.
    pub(crate) from: (i64, String),
    /// The head once they are appended.
    pub(crate) head: (i64, String),
}

impl Chained {
    /// Chain `records`, in order, from `head`.
    pub(crate) fn new(head: (i64, String), records: &[&NewAudit<'_>]) -> Self {
        let n = records.len();
        let mut c = Chained {
            seqs: Vec::with_capacity(n),
            ats: Vec::with_capacity(n),
            actors: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
            creds: Vec::with_capacity(n),
            details: Vec::with_capacity(n),
            prevs: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            from: head.clone(),
            head,
        };
        let (seq, prev) = &mut c.head;
        for e in records {
            *seq += 1;
            let outcome = e.outcome.as_str();
            let hash = record_hash(*seq, e.at, e.actor, e.event, outcome, e.credential_id, e.detail, prev);
            c.seqs.push(*seq);
            c.ats.push(e.at);
            c.actors.push(e.actor.to_string());
            c.events.push(e.event.to_string());
            c.outcomes.push(outcome.to_string());
            c.creds.push(e.credential_id.map(str::to_string));
            c.details.push(e.detail.to_string());
            c.prevs.push(std::mem::replace(prev, hash.clone()));
            c.hashes.push(hash);
        }
        c
    }

    /// The nine record columns as parameters, in the order of [`INSERT_CHAINED`].
    pub(crate) fn params(&self) -> [P<'_>; 9] {
        [
            P::IA(&self.seqs),
            P::IA(&self.ats),
            P::SA(&self.actors),
            P::SA(&self.events),
            P::SA(&self.outcomes),
            P::OSA(&self.creds),
            P::SA(&self.details),
            P::SA(&self.prevs),
            P::SA(&self.hashes),
        ]
    }
}

/// The INSERT of [`Chained`] records, its parameters numbered from `$first`.
pub(crate) fn insert_chained(first: usize) -> String {
    let p: Vec<String> = ["int8", "int8", "text", "text", "text", "text", "text", "text", "text"]
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect();
    format!(
        "INSERT INTO audit (seq, at, actor, event, outcome, credential_id, detail, prev_hash, hash) SELECT * FROM unnest({})",
        p.join(", ")
    )
}

/// PostgreSQL: append `records`, in order, to the chain whose head `head` this transaction
/// holds locked ([`BEGIN_LOCKING_CHAIN`]): their hashes are computed here from the head, and the records
/// and the new head are written by one statement, so a batch pays one round trip for its audit
/// however many signatures it holds (issue 15). Nothing else may append in between: the head
/// lock is held until the transaction ends. Returns the new head.
pub(crate) async fn append_locked(c: &mut Conn<'_>, head: (i64, String), records: &[&NewAudit<'_>]) -> Result<(i64, String)> {
    if records.is_empty() {
        return Ok(head);
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("WITH appended AS ({}) UPDATE audit_head SET seq = $10, hash = $11 WHERE id = 1", insert_chained(1))
    });
    let chained = Chained::new(head, records);
    let mut params: Vec<P<'_>> = chained.params().into_iter().collect();
    params.extend([P::I(chained.head.0), P::S(&chained.head.1)]);
    c.exec(&SQL, &params).await?;
    Ok(chained.head)
}

/// Schema step: create the chain head and chain the records written before the chain existed
/// (in `seq` order, gaps included: the link, not seq arithmetic, is what the verifier follows).
/// Runs once, in the migration that adds the columns, so that a row inserted later by hand
/// without a hash is never adopted into the chain.
pub(crate) async fn chain_existing(c: &mut Conn<'_>) -> Result<u64> {
    let rows = c.all("SELECT seq, at, actor, event, outcome, credential_id, detail FROM audit ORDER BY seq", &[]).await?;
    let mut prev = GENESIS.to_string();
    let mut last = 0;
    for r in &rows {
        let seq = r.i64("seq")?;
        let cred = r.opt_str("credential_id")?;
        let hash = record_hash(
            seq,
            r.i64("at")?,
            &r.str("actor")?,
            &r.str("event")?,
            &r.str("outcome")?,
            cred.as_deref(),
            &r.str("detail")?,
            &prev,
        );
        c.exec("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3", &[P::S(&prev), P::S(&hash), P::I(seq)]).await?;
        prev = hash;
        last = seq;
    }
    c.exec("DELETE FROM audit_head", &[]).await?;
    c.exec("INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2)", &[P::I(last), P::S(&prev)]).await?;
    Ok(rows.len() as u64)
}

const SELECT_EVENT: &str = "SELECT seq, at, actor, event, outcome, credential_id, detail, prev_hash, hash FROM audit";

fn event_of(r: &crate::db::Row) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: r.i64("seq")?,
        at: r.i64("at")?,
        actor: r.str("actor")?,
        event: r.str("event")?,
        outcome: r.str("outcome")?,
        credential_id: r.opt_str("credential_id")?,
        detail: r.str("detail")?,
        prev_hash: r.opt_str("prev_hash")?,
        hash: r.opt_str("hash")?,
    })
}

impl Store {
    /// Append an audit event (its own transaction, so that the chain head and the record
    /// commit together).
    pub async fn audit(&self, e: &NewAudit<'_>) -> Result<()> {
        transaction!(self.db, |c| {
            insert_audit(&mut c, e).await?;
            Ok(((), true))
        })
    }

    /// The latest `limit` events, oldest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        let sql = format!("{SELECT_EVENT} ORDER BY seq DESC LIMIT $1");
        let rows = self.db.read().await?.all(&sql, &[P::I(limit)]).await?;
        let mut events = rows.iter().map(event_of).collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    /// Up to `limit` events with `seq > after`, in `seq` order (verification and export page
    /// through the log with this).
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        let sql = format!("{SELECT_EVENT} WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = self.db.read().await?.all(&sql, &[P::I(after), P::I(limit)]).await?;
        rows.iter().map(event_of).collect()
    }

    /// The chain head: the last appended record's seq and hash (`0` and [`GENESIS`] before the
    /// first).
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        let row = self.db.read().await?.opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[]).await?;
        match row {
            Some(r) => Ok((r.i64("seq")?, r.str("hash")?)),
            None => Err(StoreError::Db("the audit chain head is missing".into())),
        }
    }

    /// Store a signed checkpoint (a second one for the same seq and time is ignored).
    pub async fn insert_audit_checkpoint(&self, c: &AuditCheckpoint) -> Result<()> {
        let sig = encode(&c.signature);
        transaction!(self.db, |t| {
            t.exec(
                "INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[P::I(c.seq), P::S(&c.hash), P::I(c.at), P::S(&sig)],
            )
            .await?;
            Ok(((), true))
        })
    }

    /// Every checkpoint, by seq then time.
    pub async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>> {
        let rows = self.db.read().await?.all("SELECT seq, hash, at, signature FROM audit_checkpoints ORDER BY seq, at", &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditCheckpoint {
                    seq: r.i64("seq")?,
                    hash: r.str("hash")?,
                    at: r.i64("at")?,
                    signature: decode("signature", &r.str("signature")?)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_injective_in_its_fields() {
        let a = record_hash(1, 2, "ab", "c", "ok", None, "{}", GENESIS);
        assert_ne!(a, record_hash(1, 2, "a", "bc", "ok", None, "{}", GENESIS));
        assert_ne!(a, record_hash(1, 2, "ab", "c", "ok", Some(""), "{}", GENESIS));
        assert_ne!(a, record_hash(2, 2, "ab", "c", "ok", None, "{}", GENESIS));
        assert_eq!(a, record_hash(1, 2, "ab", "c", "ok", None, "{}", GENESIS));
        assert_eq!(a.len(), 64);
    }

    /// Records appended concurrently form one chain, seq 1..n without gaps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_form_one_chain() {
        let (dir, store) = crate::tests::store().await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let detail = format!("{{\"i\":{i}}}");
                let e = NewAudit { at: i, actor: "u", event: "e", outcome: Outcome::Ok, credential_id: None, detail: &detail };
                store.audit(&e).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = store.audit_page(0, 1000).await.unwrap();
        let mut prev = GENESIS.to_string();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq, i as i64 + 1);
            assert_eq!(e.prev_hash.as_deref(), Some(prev.as_str()));
            assert_eq!(e.computed_hash(e.seq), e.hash);
            prev = e.hash.clone().unwrap();
        }
        assert_eq!(store.audit_head().await.unwrap(), (events.len() as i64, prev));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A version-7 database (records without hashes) is chained when it is migrated, and new
    /// records continue that chain.
    #[tokio::test]
    async fn records_written_before_the_chain_are_chained_at_migration() {
        let (dir, store) = crate::tests::store().await;
        let e = NewAudit { at: 1, actor: "u", event: "e", outcome: Outcome::Ok, credential_id: Some("c"), detail: "{}" };
        for _ in 0..3 {
            store.audit(&e).await.unwrap();
        }
        store.close().await;
        drop(store);
        let path = dir.join("db.sqlite");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "ALTER TABLE audit DROP COLUMN hash; ALTER TABLE audit DROP COLUMN prev_hash; DROP TABLE audit_head; \
             DELETE FROM audit WHERE seq = 2; UPDATE meta SET v = '7' WHERE k = 'schema_version'",
        )
        .unwrap();
        drop(c);
        let store = Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        store.audit(&e).await.unwrap();
        let events = store.audit_page(0, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 4], "legacy seqs kept, gaps included");
        let mut prev = GENESIS.to_string();
        for e in &events {
            assert_eq!(e.prev_hash.as_deref(), Some(prev.as_str()));
            assert_eq!(e.computed_hash(e.seq), e.hash);
            prev = e.hash.clone().unwrap();
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
