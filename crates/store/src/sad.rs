//! `sads` and `sad_hashes`: signature activation data (by hash) with the digests bound to it;
//! issue, consumption (one transaction: count, digests, audit record) and extension.

use crate::audit::NewAudit;
use crate::codec::encode;
use crate::db::{Conn, P};
use crate::{Result, Store, StoreError, group};

/// A SAD as stored (looked up when consumption fails, to say why).
#[derive(Debug, Clone)]
pub struct SadRow {
    /// Owner.
    pub user_id: String,
    /// Credential.
    pub credential_id: String,
    /// Signatures left.
    pub remaining: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Superseded by extendTransaction or revoked.
    pub revoked: bool,
    /// Sole control: the credential's PIN-derived key, sealed under a key derived from the SAD.
    pub sole_key: Option<Vec<u8>>,
}

/// A new SAD to store.
#[derive(Clone, Copy)]
pub struct NewSad<'a> {
    /// SHA-256 of the SAD, hex.
    pub hash: &'a str,
    /// Owner.
    pub user_id: &'a str,
    /// Credential.
    pub credential_id: &'a str,
    /// Signatures authorized.
    pub remaining: i64,
    /// OID of `digests`, when bound.
    pub hash_algo: Option<&'a str>,
    /// Bound digests (hex), or `None` for an unbound SAD.
    pub digests: Option<&'a [String]>,
    /// Expiry.
    pub expires_at: i64,
    /// Now.
    pub now: i64,
    /// Sole control: the PIN-derived key sealed under the SAD.
    pub sole_key: Option<&'a [u8]>,
}

/// Conditions re-checked inside the consuming transaction when the caller's token and
/// credential rows came from a cache: the write, not the cache, decides.
#[derive(Clone, Copy)]
pub struct SadGuard<'a> {
    /// The bearer token (hash): live, not revoked, its user enabled.
    pub token_hash: &'a str,
    /// The credential's stored key handle: unchanged, and the credential enabled, unlocked,
    /// valid and within its certificate's validity.
    pub key_handle: &'a [u8],
}

/// One SAD consumption ([`Store::consume_sad`]): `digests_hex.len()` signatures of the SAD
/// `hash`, each digest once if the SAD is bound, with the audit record of the signature.
pub struct ConsumeSad<'a> {
    /// SHA-256 of the SAD, hex.
    pub hash: &'a str,
    /// The caller: the SAD must be theirs.
    pub user_id: &'a str,
    /// The credential: the SAD must be for it.
    pub credential_id: &'a str,
    /// OID of the digests' algorithm: a bound SAD must have been bound with it.
    pub hash_algo: &'a str,
    /// The digests (hex), one signature each.
    pub digests_hex: Vec<String>,
    /// Now (Unix seconds): the SAD must not have expired.
    pub now: i64,
    /// Written in the consuming transaction, so no signature goes unaudited.
    pub audit: NewAudit<'a>,
    /// Set when the caller's token and credential rows came from a cache.
    pub guard: Option<SadGuard<'a>>,
}

/// Why a SAD could not be consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// Consumed; the signatures may be made.
    Consumed,
    /// No such SAD for this user and credential (or superseded).
    Unknown,
    /// Expired.
    Expired,
    /// Fewer signatures left than asked.
    Exhausted {
        /// Signatures left.
        remaining: i64,
    },
    /// A digest is not among the bound ones (or already used).
    HashNotAuthorized,
    /// The digest algorithm differs from the bound one.
    HashAlgorithmMismatch,
}

impl Store {
    /// Store a SAD with its bound digests.
    pub async fn insert_sad(&self, s: &NewSad<'_>) -> Result<()> {
        transaction!(self.db, |c| {
            insert_sad(&mut c, s).await?;
            Ok(((), true))
        })
    }

    /// Look a SAD up (to explain a refusal).
    pub async fn sad(&self, hash: &str) -> Result<Option<SadRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt("SELECT user_id, credential_id, remaining, expires_at, revoked, sole_key FROM sads WHERE hash = $1", &[P::S(hash)])
            .await?;
        row.map(|r| {
            Ok(SadRow {
                user_id: r.str("user_id")?,
                credential_id: r.str("credential_id")?,
                remaining: r.i64("remaining")?,
                expires_at: r.i64("expires_at")?,
                revoked: r.flag("revoked")?,
                sole_key: r.opt_bytes("sole_key")?,
            })
        })
        .transpose()
    }

    /// Consume `digests_hex.len()` signatures of a SAD, and each digest once if the SAD is
    /// bound, and write the audit record, in one transaction: all or nothing. The first
    /// statement takes the SAD row's write lock, so concurrent consumers (threads or server
    /// processes on one PostgreSQL) queue behind it and see the decremented count. On SQLite,
    /// requests waiting for the one writer share a transaction (group commit, see `group.rs`).
    pub async fn consume_sad(&self, consume: ConsumeSad<'_>) -> Result<ConsumeOutcome> {
        let ConsumeSad { hash, user_id, credential_id, now, guard, .. } = consume;
        let n = consume.digests_hex.len() as i64;
        let job = group::ConsumeJob::from(consume);
        let abandoned = |_| StoreError::Unavailable("the consuming transaction was abandoned".into());
        let outcome = if self.db.is_postgres() {
            let (_queued, mut done) = self.consumers.push(job);
            tokio::select! {
                biased;
                // A batch started by another request ran this one.
                r = &mut done => r.map_err(abandoned)??,
                permit = self.consumers.leader() => match done.try_recv() {
                    Ok(r) => r?,
                    Err(_) => {
                        // Spawned, so that a batch runs to its end even if the request that
                        // started it goes away: the others in it are waiting for its commit.
                        let (db, group) = (self.db.clone(), self.consumers.clone());
                        tokio::spawn(async move {
                            let _permit = permit;
                            // Let requests already running on this worker join the batch.
                            tokio::task::yield_now().await;
                            group.lead_pg(&db).await;
                        });
                        done.await.map_err(abandoned)??
                    }
                },
            }
        } else {
            let (_queued, mut done) = self.consumers.push(job);
            tokio::select! {
                biased;
                // Another request's transaction ran this one.
                r = &mut done => r.map_err(abandoned)??,
                w = self.db.write() => {
                    let mut w = w?;
                    match done.try_recv() {
                        Ok(r) => r?,
                        Err(_) => {
                            tokio::task::yield_now().await;
                            self.consumers.lead(&mut w).await;
                            drop(w);
                            done.await.map_err(abandoned)??
                        }
                    }
                }
            }
        };
        match outcome {
            Some(o) => Ok(o),
            // A guarded caller falls back to fresh reads, which explain the refusal.
            None if guard.is_some() => Ok(ConsumeOutcome::Unknown),
            None => self.explain_refusal(hash, user_id, credential_id, n, now).await,
        }
    }

    /// Why a consumption found its SAD's conditions unmet, from a fresh read.
    pub(crate) async fn explain_refusal(&self, hash: &str, user_id: &str, credential_id: &str, n: i64, now: i64) -> Result<ConsumeOutcome> {
        let Some(s) = self.sad(hash).await? else { return Ok(ConsumeOutcome::Unknown) };
        Ok(if s.user_id != user_id || s.credential_id != credential_id || s.revoked {
            ConsumeOutcome::Unknown
        } else if s.expires_at <= now {
            ConsumeOutcome::Expired
        } else if s.remaining < n {
            ConsumeOutcome::Exhausted { remaining: s.remaining }
        } else {
            ConsumeOutcome::Unknown
        })
    }

    /// extendTransaction: supersede `old` by `new`, carrying the remaining count and the
    /// unused bound digests (plus the new ones), in one transaction. Returns the outcome for
    /// `old` (Consumed means the new SAD is stored) and the count carried over.
    pub async fn extend_sad(
        &self,
        old: &str,
        user_id: &str,
        credential_id: &str,
        new: &NewSad<'_>,
        extra_digests: &[String],
    ) -> Result<(ConsumeOutcome, i64)> {
        self.extend_sad_for_token(old, user_id, credential_id, new, extra_digests, None).await
    }

    /// [`Store::extend_sad`] by a caller holding the access token `token` (hash): the new SAD is
    /// linked to it, so revoking it (or the token that obtained the first SAD of the line)
    /// revokes the new SAD. `Unknown` if `token` is no longer live.
    pub async fn extend_sad_for_token(
        &self,
        old: &str,
        user_id: &str,
        credential_id: &str,
        new: &NewSad<'_>,
        extra_digests: &[String],
        token: Option<&str>,
    ) -> Result<(ConsumeOutcome, i64)> {
        let result = transaction!(self.db, |c| {
            // Lock the live tokens this line hangs from (`revoke_tree` writes them first): a
            // revocation either ran before, and the old SAD is found revoked, or waits for this
            // commit and then sees the new SAD.
            c.exec(
                "UPDATE tokens SET revoked = revoked WHERE revoked = 0 AND hash IN (SELECT token FROM sads WHERE hash = $1 OR hash = \
                 (SELECT origin FROM sads WHERE hash = $1) UNION SELECT hash FROM sads WHERE hash = $1 OR hash = (SELECT origin FROM sads WHERE hash = $1))",
                &[P::S(old)],
            )
            .await?;
            if let Some(t) = token {
                let live = c
                    .exec(
                        "UPDATE tokens SET revoked = revoked WHERE hash = $1 AND revoked = 0 AND expires_at > $2",
                        &[P::S(t), P::I(new.now)],
                    )
                    .await?;
                if live != 1 {
                    return Ok((Some((ConsumeOutcome::Unknown, 0)), false));
                }
            }
            let row = c
                .opt(
                    "UPDATE sads SET revoked = 1 WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $4 AND remaining > 0 \
                     RETURNING remaining, bound, hash_algo",
                    &[P::S(old), P::S(user_id), P::S(credential_id), P::I(new.now)],
                )
                .await?;
            let Some(row) = row else { return Ok((None, false)) };
            let remaining = row.i64("remaining")?;
            let bound = row.flag("bound")?;
            let old_algo = row.opt_str("hash_algo")?;
            let mut digests: Vec<String> = Vec::new();
            if bound {
                for r in c.all("SELECT digest FROM sad_hashes WHERE sad = $1 AND used = 0 ORDER BY idx", &[P::S(old)]).await? {
                    digests.push(r.str("digest")?);
                }
                if !extra_digests.is_empty() && new.hash_algo.is_some() && old_algo.as_deref() != new.hash_algo {
                    return Ok((Some((ConsumeOutcome::HashAlgorithmMismatch, remaining)), false));
                }
            }
            digests.extend(extra_digests.iter().cloned());
            if digests.len() as i64 > remaining {
                return Ok((Some((ConsumeOutcome::Exhausted { remaining }, remaining)), false));
            }
            let algo = if bound { old_algo.as_deref() } else { new.hash_algo };
            let keep_bound = bound || !extra_digests.is_empty();
            let fresh = NewSad { remaining, hash_algo: algo, digests: keep_bound.then_some(digests.as_slice()), ..*new };
            insert_sad(&mut c, &fresh).await?;
            // The first SAD of the line (an OAuth credential token, say): revoking it reaches
            // every extension (`redeem_code` on a replayed code).
            c.exec(
                "UPDATE sads SET origin = (SELECT COALESCE(origin, hash) FROM sads WHERE hash = $2), token = $3 WHERE hash = $1",
                &[P::S(fresh.hash), P::S(old), P::OS(token)],
            )
            .await?;
            Ok((Some((ConsumeOutcome::Consumed, remaining)), true))
        })?;
        match result {
            Some(r) => Ok(r),
            None => Ok((self.explain_refusal(old, user_id, credential_id, 1, new.now).await?, 0)),
        }
    }
}

pub(crate) async fn insert_sad(c: &mut Conn<'_>, s: &NewSad<'_>) -> Result<()> {
    let sole_key = s.sole_key.map(encode);
    c.exec(
        "INSERT INTO sads (hash, user_id, credential_id, remaining, bound, hash_algo, expires_at, revoked, created_at, sole_key) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
        &[P::S(s.hash), P::S(s.user_id), P::S(s.credential_id), P::I(s.remaining), P::I(i64::from(s.digests.is_some())), P::OS(s.hash_algo), P::I(s.expires_at), P::I(s.now), P::OS(sole_key.as_deref())],
    )
    .await?;
    if let Some(digests) = s.digests {
        for (i, d) in digests.iter().enumerate() {
            c.exec("INSERT INTO sad_hashes (sad, idx, digest, used) VALUES ($1, $2, $3, 0)", &[P::S(s.hash), P::I(i as i64), P::S(d)])
                .await?;
        }
    }
    Ok(())
}

/// The consuming UPDATE: the SAD's count, if its conditions hold, with `$extra` conditions
/// (the same conditions, for a whole batch, in `take_unbound_counts`).
macro_rules! consume_update {
    ($($extra:expr),*) => {
        concat!(
            "UPDATE sads SET remaining = remaining - $4 \
             WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $5 AND remaining >= $4"
            $(, $extra)*,
            " RETURNING bound, hash_algo"
        )
    };
}

/// [`SadGuard`]'s conditions.
macro_rules! guarded {
    () => {
        " AND EXISTS (SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $6 AND t.user_id = $2 \
           AND t.revoked = 0 AND t.expires_at > $5 AND u.disabled = 0) \
         AND EXISTS (SELECT 1 FROM credentials c WHERE c.id = $3 AND c.user_id = $2 AND c.disabled = 0 AND c.locked = 0 \
           AND c.cert_status = 'valid' AND c.key_handle = $7 AND c.not_before <= $5 AND c.not_after > $5)"
    };
}

/// Take the job's signatures off its SAD: the row (bound, hash_algo) when the conditions held.
async fn take_count(c: &mut Conn<'_>, job: &group::ConsumeJob) -> Result<Option<crate::db::Row>> {
    let n = job.digests_hex.len() as i64;
    let (hash, user_id, credential_id, now) = (job.hash.as_str(), job.user_id.as_str(), job.credential_id.as_str(), job.now);
    match &job.guard {
        None => c.opt(consume_update!(), &[P::S(hash), P::S(user_id), P::S(credential_id), P::I(n), P::I(now)]).await,
        Some((token_hash, key_handle)) => {
            c.opt(
                consume_update!(guarded!()),
                &[P::S(hash), P::S(user_id), P::S(credential_id), P::I(n), P::I(now), P::S(token_hash), P::S(key_handle)],
            )
            .await
        }
    }
}

/// PostgreSQL batches (`group.rs`): the counts of every job on an unbound SAD, taken by one
/// statement. Jobs are grouped by SAD and caller (hash, user, credential, guard); each group's
/// counts are summed and taken from its SAD at once if the SAD holds them all, with the same
/// conditions as `consume_update!` and `guarded!` for each group. Returns, per job, whether
/// its count was taken; the others (a bound SAD, a refusal, a second caller on one SAD, a group
/// its SAD cannot serve whole) are left to [`decide_in`] one by one, which also explains a
/// refusal. A SAD binding no digests has nothing else to update, so a taken count is the whole
/// consumption but for its audit record, which the batch appends (`audit::append_locked`).
///
/// `append`: every job's audit record, chained from the head the caller expects. When every
/// job is in a group, the same statement also appends them and moves the head, provided the
/// head is the expected one and every group was served (then each job was taken, in order, so
/// the chain is exactly the one the batch would append); otherwise it writes no record and
/// the caller appends what was consumed (`audit::append_locked`). Returns, with the per-job
/// flags, the head before the statement and whether the records were appended.
pub(crate) async fn take_unbound_counts(
    c: &mut Conn<'_>,
    jobs: &[&group::ConsumeJob],
    append: Option<&crate::audit::Chained>,
) -> Result<(Vec<bool>, (i64, String), bool)> {
    type Caller<'j> = (&'j str, &'j str, &'j Option<(String, String)>);
    // Per SAD: the caller of its first job, and the group's index.
    let mut groups: std::collections::HashMap<&str, (Caller<'_>, usize)> = std::collections::HashMap::new();
    let mut member = Vec::with_capacity(jobs.len());
    let (mut hashes, mut users, mut creds, mut counts, mut nows) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::<i64>::new(), Vec::<i64>::new());
    let (mut tokens, mut handles) = (Vec::new(), Vec::new());
    for job in jobs {
        let caller: Caller<'_> = (job.user_id.as_str(), job.credential_id.as_str(), &job.guard);
        let n = job.digests_hex.len() as i64;
        let g = match groups.get(job.hash.as_str()) {
            Some((first, g)) if *first == caller => Some(*g),
            Some(_) => None,
            None => {
                let g = hashes.len();
                groups.insert(job.hash.as_str(), (caller, g));
                hashes.push(job.hash.clone());
                users.push(job.user_id.clone());
                creds.push(job.credential_id.clone());
                counts.push(0);
                nows.push(job.now);
                tokens.push(job.guard.as_ref().map(|(t, _)| t.clone()));
                handles.push(job.guard.as_ref().map(|(_, k)| k.clone()));
                Some(g)
            }
        };
        if let Some(g) = g {
            counts[g] += n;
            // The group's latest clock: the strictest for the expiry conditions.
            nows[g] = nows[g].max(job.now);
        }
        member.push(g);
    }
    if hashes.is_empty() {
        return Ok((vec![false; jobs.len()], crate::audit::chain_head(c).await?, false));
    }
    let append = append.filter(|_| member.iter().all(Option::is_some));
    // One row of `j` per SAD, so that no row of `sads` is matched twice (an UPDATE applies
    // only one of several matching FROM rows, PostgreSQL manual, UPDATE, "Notes").
    // The chain head (locked by this transaction, `audit::BEGIN_LOCKING_CHAIN`) comes back in the same
    // round trip: one more row, after the statement's UPDATE.
    static TAKE: &str = "WITH taken AS (UPDATE sads s SET remaining = s.remaining - j.n \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[]) AS j(hash, user_id, credential_id, n, now, token, key_handle) \
             WHERE s.hash = j.hash AND s.user_id = j.user_id AND s.credential_id = j.credential_id AND s.revoked = 0 AND s.bound = 0 \
               AND s.expires_at > j.now AND s.remaining >= j.n \
               AND (j.token IS NULL OR (\
                 EXISTS (SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = j.token AND t.user_id = j.user_id \
                   AND t.revoked = 0 AND t.expires_at > j.now AND u.disabled = 0) \
                 AND EXISTS (SELECT 1 FROM credentials c WHERE c.id = j.credential_id AND c.user_id = j.user_id AND c.disabled = 0 AND c.locked = 0 \
                   AND c.cert_status = 'valid' AND c.key_handle = j.key_handle AND c.not_before <= j.now AND c.not_after > j.now))) \
             RETURNING s.hash), \
             head AS (SELECT seq, hash FROM audit_head WHERE id = 1)";
    // The records and the new head, written only if the head is the expected one and every
    // group was served. Sub-statements of one statement share its snapshot, so `head` is the
    // head before `moved` (PostgreSQL manual 7.8.4, "Data-Modifying Statements in WITH").
    static TAKE_AND_APPEND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{TAKE}, ok AS (SELECT 1 FROM head WHERE head.seq = $8 AND head.hash = $9 AND (SELECT count(*) FROM taken) = $10), \
             appended AS ({} WHERE EXISTS (SELECT 1 FROM ok)), \
             moved AS (UPDATE audit_head SET seq = $20, hash = $21 WHERE id = 1 AND EXISTS (SELECT 1 FROM ok) RETURNING seq) \
             SELECT 't' AS kind, hash, NULL::int8 AS seq FROM taken UNION ALL SELECT 'h', hash, seq FROM head \
             UNION ALL SELECT 'a', NULL, seq FROM moved",
            crate::audit::insert_chained(11)
        )
    });
    static TAKE_ONLY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("{TAKE} SELECT 't' AS kind, hash, NULL::int8 AS seq FROM taken UNION ALL SELECT 'h', hash, seq FROM head")
    });
    let mut params = vec![P::SA(&hashes), P::SA(&users), P::SA(&creds), P::IA(&counts), P::IA(&nows), P::OSA(&tokens), P::OSA(&handles)];
    let groups_n = hashes.len() as i64;
    let rows = match append {
        Some(chained) => {
            params.extend([P::I(chained.from.0), P::S(&chained.from.1), P::I(groups_n)]);
            params.extend(chained.params());
            params.extend([P::I(chained.head.0), P::S(&chained.head.1)]);
            c.all(&TAKE_AND_APPEND, &params).await?
        }
        None => c.all(&TAKE_ONLY, &params).await?,
    };
    let mut served = vec![false; hashes.len()];
    let (mut head, mut appended) = (None, false);
    for r in &rows {
        match r.str("kind")?.as_str() {
            "t" => {
                if let Some((_, g)) = groups.get(r.str("hash")?.as_str()) {
                    served[*g] = true;
                }
            }
            "h" => head = Some((r.i64("seq")?, r.str("hash")?)),
            _ => appended = true,
        }
    }
    let head = head.ok_or_else(|| crate::StoreError::Db("the audit chain head is missing".into()))?;
    Ok((member.into_iter().map(|g| g.is_some_and(|g| served[g])).collect(), head, appended))
}

/// The statements of one SAD consumption but its audit record (see [`Store::consume_sad`]), in
/// the caller's transaction: `(None, false)` when the SAD's conditions do not hold.
pub(crate) async fn decide_in(c: &mut Conn<'_>, job: &group::ConsumeJob) -> Result<group::Decided> {
    let hash = job.hash.as_str();
    let Some(row) = take_count(c, job).await? else { return Ok((None, false)) };
    if row.flag("bound")? {
        if row.opt_str("hash_algo")?.as_deref() != Some(job.hash_algo.as_str()) {
            return Ok((Some(ConsumeOutcome::HashAlgorithmMismatch), false));
        }
        for d in &job.digests_hex {
            let used = c
                .exec(
                    "UPDATE sad_hashes SET used = 1 WHERE sad = $1 AND idx = (SELECT MIN(idx) FROM sad_hashes WHERE sad = $1 AND digest = $2 AND used = 0)",
                    &[P::S(hash), P::S(d)],
                )
                .await?;
            if used != 1 {
                return Ok((Some(ConsumeOutcome::HashNotAuthorized), false));
            }
        }
    }
    Ok((Some(ConsumeOutcome::Consumed), true))
}

/// The statements of one SAD consumption (see [`Store::consume_sad`]) with its audit record,
/// in the caller's transaction: `(None, false)` when the SAD's conditions do not hold.
pub(crate) async fn consume_in(c: &mut Conn<'_>, job: &group::ConsumeJob) -> Result<group::Decided> {
    let decided = decide_in(c, job).await?;
    if decided.1 {
        // The hash chain is appended by the one audit insert (`audit::insert_audit`).
        job.audit.insert(c).await?;
    }
    Ok(decided)
}

impl<'a> From<ConsumeSad<'a>> for group::ConsumeJob {
    /// Owned, so that the request holding the writer can run it for this one (group commit);
    /// the key handle is compared in SQL in its stored (base64) form.
    fn from(c: ConsumeSad<'a>) -> Self {
        group::ConsumeJob {
            hash: c.hash.to_string(),
            user_id: c.user_id.to_string(),
            credential_id: c.credential_id.to_string(),
            hash_algo: c.hash_algo.to_string(),
            digests_hex: c.digests_hex,
            now: c.now,
            audit: (&c.audit).into(),
            guard: c.guard.map(|g| (g.token_hash.to_string(), encode(g.key_handle))),
        }
    }
}
