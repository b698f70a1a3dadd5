//! `users`: accounts, their password hashes and the password-guessing backoff; deleting a user
//! takes everything it owns along.

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

    /// Count a password attempt on an account before the password is checked, and reserve the
    /// account's next slot: the first `free` consecutive failures cost nothing, each later
    /// attempt blocks the account for 2, 4, 8, ... seconds up to `max_delay` (whole seconds: the
    /// first wait is two so that it is at least one). One transaction, so guesses sent in
    /// parallel (or to several nodes) cannot all pass. A success resets the count
    /// ([`Store::login_succeeded`]).
    pub async fn begin_login_attempt(&self, user_id: &str, now: i64, free: i64, max_delay: i64) -> Result<LoginAttempt> {
        transaction!(self.db, |c| {
            let row = c
                .opt(
                    "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 AND login_blocked_until <= $2 RETURNING failed_logins",
                    &[P::S(user_id), P::I(now)],
                )
                .await?;
            let Some(row) = row else {
                let until = c.opt("SELECT login_blocked_until FROM users WHERE id = $1", &[P::S(user_id)]).await?;
                let until = until.map(|r| r.i64("login_blocked_until")).transpose()?.unwrap_or(now);
                return Ok((LoginAttempt::Throttled { retry_after: (until - now).max(1) }, false));
            };
            let n = row.i64("failed_logins")?;
            if n > free {
                let delay = (2i64 << (n - free - 1).min(20)).min(max_delay);
                c.exec("UPDATE users SET login_blocked_until = $2 WHERE id = $1", &[P::S(user_id), P::I(now + delay)]).await?;
            }
            Ok((LoginAttempt::Allowed, true))
        })
    }

    /// The password was right: the account's failure count starts again.
    pub async fn login_succeeded(&self, user_id: &str) -> Result<()> {
        self.db
            .write()
            .await?
            .exec("UPDATE users SET failed_logins = 0, login_blocked_until = 0 WHERE id = $1 AND failed_logins > 0", &[P::S(user_id)])
            .await?;
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
