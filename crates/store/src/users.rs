//! `users`: accounts, their password hashes and the password-guessing backoff; deleting a user
//! takes everything it owns along.

use crate::credentials::{release_lease, take_lease};
use crate::db::{P, Row};
use crate::{Result, Store};

/// A user account.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Internal id.
    pub id: String,
    /// Login name.
    pub name: String,
    /// Encoded argon2id hash.
    pub password_hash: String,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Creation time.
    pub created_at: i64,
}

/// May a password be tried on an account now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Yes; the attempt is counted.
    Allowed,
    /// Not before `retry_after` seconds.
    Throttled {
        /// Seconds until the next attempt is taken.
        retry_after: i64,
    },
    /// Checks in flight may decide the answer (a right password resets the count): ask again
    /// when one ends.
    Busy,
}

const USER_COLS: &str = "id, name, password_hash, disabled, created_at";

fn user_row(r: &Row) -> Result<UserRow> {
    Ok(UserRow {
        id: r.str("id")?,
        name: r.str("name")?,
        password_hash: r.str("password_hash")?,
        disabled: r.flag("disabled")?,
        created_at: r.i64("created_at")?,
    })
}

impl Store {
    /// Create a user; `Conflict` if the name is taken.
    pub async fn insert_user(&self, u: &UserRow) -> Result<()> {
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO users (id, name, password_hash, disabled, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[P::S(&u.id), P::S(&u.name), P::S(&u.password_hash), P::I(i64::from(u.disabled)), P::I(u.created_at)],
            )
            .await?;
        Ok(())
    }

    /// Find a user by login name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        self.db.read().await?.opt(&sql, &[P::S(name)]).await?.as_ref().map(user_row).transpose()
    }

    /// Ask to check a password on an account, before argon2 runs, under `lease`. Only failures
    /// count ([`Store::login_failed`]); checks in flight hold a lease (`auth_attempts`) and are
    /// counted as possible failures while they run, so guesses sent in parallel (or to several
    /// nodes) cannot get past the schedule:
    /// - while failures plus checks in flight stay under `free`, the check is admitted;
    /// - otherwise, while any check is in flight, `Busy` (its outcome may reset the count);
    /// - otherwise (nothing in flight, `free` failures or more) one check is admitted when the
    ///   account's slot has come, and it reserves the next slot 2, 4, 8, ... seconds later up to
    ///   `max_delay` (whole seconds: the first wait is two so that it is at least one); before
    ///   the slot, `Throttled`.
    ///
    /// A success resets the count ([`Store::login_succeeded`]).
    pub async fn begin_login_attempt(&self, user_id: &str, lease: &str, now: i64, free: i64, max_delay: i64) -> Result<LoginAttempt> {
        let subject = user_subject(user_id);
        transaction!(self.db, |c| {
            // A no-op write that takes the user's row lock (PostgreSQL), so admissions on
            // several nodes queue and each sees the leases the previous one committed.
            let row = c
                .opt(
                    "UPDATE users SET failed_logins = failed_logins WHERE id = $1 RETURNING failed_logins, login_blocked_until",
                    &[P::S(user_id)],
                )
                .await?;
            let Some(row) = row else { return Ok((LoginAttempt::Busy, false)) };
            let (failures, until) = (row.i64("failed_logins")?, row.i64("login_blocked_until")?);
            if until <= now && take_lease(&mut c, &subject, lease, free - failures, now).await? {
                return Ok((LoginAttempt::Allowed, true));
            }
            // Nothing is admitted beyond `free` while a check is in flight: take_lease with one
            // place admits only when there is none.
            if until > now || failures < free || !take_lease(&mut c, &subject, lease, 1, now).await? {
                let in_flight = c
                    .opt("SELECT COUNT(*) AS n FROM auth_attempts WHERE subject = $1 AND expires_at > $2", &[P::S(&subject), P::I(now)])
                    .await?;
                if in_flight.map(|r| r.i64("n")).transpose()?.unwrap_or(0) > 0 {
                    return Ok((LoginAttempt::Busy, true));
                }
                return Ok((LoginAttempt::Throttled { retry_after: (until - now).max(1) }, true));
            }
            let delay = (2i64 << (failures - free).min(20)).min(max_delay);
            c.exec("UPDATE users SET login_blocked_until = $2 WHERE id = $1", &[P::S(user_id), P::I(now + delay)]).await?;
            Ok((LoginAttempt::Allowed, true))
        })
    }

    /// The admitted check found the right password: the account's failure count starts again.
    /// Returns `false` (changing nothing) if the lease had lapsed, so the result must not be
    /// used.
    pub async fn login_succeeded(&self, user_id: &str, lease: &str, now: i64) -> Result<bool> {
        transaction!(self.db, |c| {
            c.exec("UPDATE users SET failed_logins = 0, login_blocked_until = 0 WHERE id = $1 AND failed_logins > 0", &[P::S(user_id)])
                .await?;
            let held = release_lease(&mut c, &user_subject(user_id), lease, now).await?;
            Ok((held, held))
        })
    }

    /// The admitted check failed: count the failure. Returns `false` (changing nothing) if the
    /// lease had lapsed.
    pub async fn login_failed(&self, user_id: &str, lease: &str, now: i64) -> Result<bool> {
        transaction!(self.db, |c| {
            c.exec("UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1", &[P::S(user_id)]).await?;
            let held = release_lease(&mut c, &user_subject(user_id), lease, now).await?;
            Ok((held, held))
        })
    }

    /// Give an admitted check's place back without a result (the request went away).
    pub async fn abandon_login_attempt(&self, user_id: &str, lease: &str) -> Result<()> {
        let mut c = self.db.write().await?;
        c.exec("DELETE FROM auth_attempts WHERE subject = $1 AND id = $2", &[P::S(&user_subject(user_id)), P::S(lease)]).await?;
        Ok(())
    }

    /// Find a user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        self.db.read().await?.opt(&sql, &[P::S(id)]).await?.as_ref().map(user_row).transpose()
    }

    /// All users by name.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY name");
        self.db.read().await?.all(&sql, &[]).await?.iter().map(user_row).collect()
    }

    /// Enable or disable a user; returns whether the user exists. Disabling also revokes the
    /// user's tokens so that a disabled account is shut out at once; enabling also clears the
    /// password-guessing backoff, so an administrator can let the owner in at once.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = if disabled {
                c.exec("UPDATE users SET disabled = 1 WHERE name = $1", &[P::S(name)]).await?
            } else {
                c.exec("UPDATE users SET disabled = 0, failed_logins = 0, login_blocked_until = 0 WHERE name = $1", &[P::S(name)]).await?
            };
            if disabled {
                c.exec("UPDATE tokens SET revoked = 1 WHERE user_id = (SELECT id FROM users WHERE name = $1)", &[P::S(name)]).await?;
            }
            Ok((n == 1, true))
        })
    }

    /// Delete a user with everything it owns; returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let Some(row) = c.opt("SELECT id FROM users WHERE name = $1", &[P::S(name)]).await? else {
                return Ok((false, false));
            };
            let id = row.str("id")?;
            for sql in [
                "DELETE FROM sad_hashes WHERE sad IN (SELECT hash FROM sads WHERE user_id = $1)",
                "DELETE FROM sads WHERE user_id = $1",
                "DELETE FROM otp_challenges WHERE credential_id IN (SELECT id FROM credentials WHERE user_id = $1)",
                "DELETE FROM cert_history WHERE credential_id IN (SELECT id FROM credentials WHERE user_id = $1)",
                "DELETE FROM credentials WHERE user_id = $1",
                "DELETE FROM tokens WHERE user_id = $1",
                "DELETE FROM oauth_codes WHERE user_id = $1",
                "DELETE FROM oauth_requests WHERE user_id = $1",
                "UPDATE oauth_clients SET user_id = NULL WHERE user_id = $1",
                "DELETE FROM users WHERE id = $1",
            ] {
                c.exec(sql, &[P::S(&id)]).await?;
            }
            Ok((true, true))
        })
    }
}

fn user_subject(id: &str) -> String {
    format!("user:{id}")
}
