//! Paired devices, pairing codes and device requests (issue 18, `docs/device-protocol.md`).
//!
//! Every rule that must hold across nodes is one conditional statement: a pairing code is
//! started once (`state = 'code'`), a session finished once (`state = 'started'`), a device's
//! counter only grows (`last_counter < n`, "Authenticating device messages", layer 1), and a
//! request is answered once (`state = 'pending'`, layer 3), with its audit record in the same
//! transaction.

use crate::audit::{NewAudit, insert_audit};
use crate::codec::encode;
use crate::db::{P, Row};
use crate::jobs::give_back;
use crate::{Result, Store};

/// A pairing code or session.
#[derive(Debug, Clone)]
pub struct PairingRow {
    /// SHA-256 of the code (`PairingCode::hash`), hex.
    pub code_hash: String,
    /// The session id, once `pair/start` used the code.
    pub pairing_id: Option<String>,
    /// For whom.
    pub user_id: String,
    /// Who made the code (`admin` or the signer).
    pub actor: String,
    /// argon2id hash of the PIN the device credential gets.
    pub pin_hash: String,
    /// `code`, `started` or `paired`.
    pub state: String,
    /// Made (Unix seconds).
    pub created_at: i64,
    /// The code, then the session, is valid until then.
    pub expires_at: i64,
}

/// A paired device.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// `dev_…`.
    pub id: String,
    /// Its signer.
    pub user_id: String,
    /// The credential whose key it holds.
    pub credential_id: String,
    /// Its name, as the device gave it (or renamed).
    pub name: String,
    /// `phone`, `agent` or `app`.
    pub kind: String,
    /// It signs precomputed digests (else it needs the DTBS).
    pub prehashed: bool,
    /// The device key's DER SubjectPublicKeyInfo.
    pub device_key: Vec<u8>,
    /// SHA-256 of `device_key`, hex.
    pub thumbprint: String,
    /// The last counter accepted from it.
    pub last_counter: i64,
    /// Revoked by the signer or an administrator.
    pub revoked: bool,
    /// Paired (Unix seconds).
    pub created_at: i64,
    /// Its last poll or connection (Unix seconds).
    pub last_seen: Option<i64>,
}

/// A request sent to a device.
#[derive(Debug, Clone)]
pub struct DeviceRequestRow {
    /// `req_…`.
    pub id: String,
    /// The device it was sent to.
    pub device_id: String,
    /// The credential.
    pub credential_id: String,
    /// The service message as sent (JSON).
    pub message: String,
    /// `pending`, `signed`, `declined`, `refused`, `expired`.
    pub state: String,
    /// Once answered: the outcome's detail (the signatures, or the reason), JSON.
    pub result: Option<String>,
    /// Once answered: the device's JWS.
    pub answer: Option<String>,
    /// Sent (Unix seconds).
    pub created_at: i64,
    /// The answer must come before then.
    pub expires_at: i64,
}

/// How a request ends.
#[derive(Debug, Clone, Copy)]
pub struct RequestEnd<'a> {
    /// The request.
    pub id: &'a str,
    /// The new state.
    pub state: &'a str,
    /// The outcome's detail.
    pub result: &'a str,
    /// The device's JWS, when it answered.
    pub answer: Option<&'a str>,
    /// The device and the counter to advance it to, when the answer is the device's.
    pub counter: Option<(&'a str, i64)>,
}

const PAIR_COLS: &str = "code_hash, pairing_id, user_id, actor, pin_hash, state, created_at, expires_at";
const DEV_COLS: &str =
    "id, user_id, credential_id, name, kind, prehashed, device_key, thumbprint, last_counter, revoked, created_at, last_seen";
const REQ_COLS: &str = "id, device_id, credential_id, message, state, result, answer, created_at, expires_at";

fn pairing_row(r: &Row) -> Result<PairingRow> {
    Ok(PairingRow {
        code_hash: r.str("code_hash")?,
        pairing_id: r.opt_str("pairing_id")?,
        user_id: r.str("user_id")?,
        actor: r.str("actor")?,
        pin_hash: r.str("pin_hash")?,
        state: r.str("state")?,
        created_at: r.i64("created_at")?,
        expires_at: r.i64("expires_at")?,
    })
}

fn device_row(r: &Row) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.str("id")?,
        user_id: r.str("user_id")?,
        credential_id: r.str("credential_id")?,
        name: r.str("name")?,
        kind: r.str("kind")?,
        prehashed: r.flag("prehashed")?,
        device_key: r.bytes("device_key")?,
        thumbprint: r.str("thumbprint")?,
        last_counter: r.i64("last_counter")?,
        revoked: r.flag("revoked")?,
        created_at: r.i64("created_at")?,
        last_seen: r.opt_i64("last_seen")?,
    })
}

fn request_row(r: &Row) -> Result<DeviceRequestRow> {
    Ok(DeviceRequestRow {
        id: r.str("id")?,
        device_id: r.str("device_id")?,
        credential_id: r.str("credential_id")?,
        message: r.str("message")?,
        state: r.str("state")?,
        result: r.opt_str("result")?,
        answer: r.opt_str("answer")?,
        created_at: r.i64("created_at")?,
        expires_at: r.i64("expires_at")?,
    })
}

impl Store {
    /// Store a new pairing code with the audit record of its making.
    pub async fn insert_pairing_code(&self, p: &PairingRow, audit: &NewAudit<'_>) -> Result<()> {
        transaction!(self.db, |c| {
            c.exec(
                &format!("INSERT INTO device_pairings ({PAIR_COLS}) VALUES ($1, NULL, $2, $3, $4, 'code', $5, $6)"),
                &[P::S(&p.code_hash), P::S(&p.user_id), P::S(&p.actor), P::S(&p.pin_hash), P::I(p.created_at), P::I(p.expires_at)],
            )
            .await?;
            insert_audit(&mut c, audit).await?;
            Ok(((), true))
        })
    }

    /// `pair/start`: use the code (once, before it expires) for the session `pairing_id`, which
    /// lives until `session_expires_at`. `None`: no such live, unused code.
    pub async fn start_pairing(&self, code_hash: &str, pairing_id: &str, now: i64, session_expires_at: i64) -> Result<Option<PairingRow>> {
        let mut c = self.db.write().await?;
        let n = c
            .exec(
                "UPDATE device_pairings SET state = 'started', pairing_id = $2, expires_at = $4 WHERE code_hash = $1 AND state = 'code' AND expires_at > $3",
                &[P::S(code_hash), P::S(pairing_id), P::I(now), P::I(session_expires_at)],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        let sql = format!("SELECT {PAIR_COLS} FROM device_pairings WHERE code_hash = $1");
        c.opt(&sql, &[P::S(code_hash)]).await?.as_ref().map(pairing_row).transpose()
    }

    /// A started pairing session.
    pub async fn pairing_session(&self, pairing_id: &str) -> Result<Option<PairingRow>> {
        let sql = format!("SELECT {PAIR_COLS} FROM device_pairings WHERE pairing_id = $1 AND state = 'started'");
        self.db.read().await?.opt(&sql, &[P::S(pairing_id)]).await?.as_ref().map(pairing_row).transpose()
    }

    /// `pair/finish`: end the session (once). `false`: it was finished already.
    pub async fn finish_pairing(&self, pairing_id: &str) -> Result<bool> {
        let n = self
            .db
            .write()
            .await?
            .exec("UPDATE device_pairings SET state = 'paired' WHERE pairing_id = $1 AND state = 'started'", &[P::S(pairing_id)])
            .await?;
        Ok(n == 1)
    }

    /// Record a paired device with the audit record of its pairing.
    pub async fn insert_device(&self, d: &DeviceRow, audit: &NewAudit<'_>) -> Result<()> {
        let key = encode(&d.device_key);
        transaction!(self.db, |c| {
            c.exec(
                &format!("INSERT INTO devices ({DEV_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, NULL)"),
                &[
                    P::S(&d.id),
                    P::S(&d.user_id),
                    P::S(&d.credential_id),
                    P::S(&d.name),
                    P::S(&d.kind),
                    P::I(i64::from(d.prehashed)),
                    P::S(&key),
                    P::S(&d.thumbprint),
                    P::I(d.created_at),
                ],
            )
            .await?;
            insert_audit(&mut c, audit).await?;
            Ok(((), true))
        })
    }

    /// One device.
    pub async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        let sql = format!("SELECT {DEV_COLS} FROM devices WHERE id = $1");
        self.db.read().await?.opt(&sql, &[P::S(id)]).await?.as_ref().map(device_row).transpose()
    }

    /// The device that holds a credential's key.
    pub async fn device_of_credential(&self, credential_id: &str) -> Result<Option<DeviceRow>> {
        let sql = format!("SELECT {DEV_COLS} FROM devices WHERE credential_id = $1");
        self.db.read().await?.opt(&sql, &[P::S(credential_id)]).await?.as_ref().map(device_row).transpose()
    }

    /// The devices of a user (of everyone with `None`), oldest first.
    pub async fn devices(&self, user_id: Option<&str>) -> Result<Vec<DeviceRow>> {
        let mut c = self.db.read().await?;
        let rows = match user_id {
            Some(u) => c.all(&format!("SELECT {DEV_COLS} FROM devices WHERE user_id = $1 ORDER BY created_at, id"), &[P::S(u)]).await?,
            None => c.all(&format!("SELECT {DEV_COLS} FROM devices ORDER BY created_at, id"), &[]).await?,
        };
        rows.iter().map(device_row).collect()
    }

    /// Rename a device, with the audit record. `false`: no such device.
    pub async fn rename_device(&self, id: &str, name: &str, audit: &NewAudit<'_>) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c.exec("UPDATE devices SET name = $2 WHERE id = $1", &[P::S(id), P::S(name)]).await?;
            if n == 0 {
                return Ok((false, false));
            }
            insert_audit(&mut c, audit).await?;
            Ok((true, true))
        })
    }

    /// Revoke a device: its messages are refused (`unpaired`), its credential is disabled, and
    /// its pending requests end; with the audit record. `false`: no such device, or revoked.
    pub async fn revoke_device(&self, id: &str, audit: &NewAudit<'_>) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c.exec("UPDATE devices SET revoked = 1 WHERE id = $1 AND revoked = 0", &[P::S(id)]).await?;
            if n == 0 {
                return Ok((false, false));
            }
            c.exec("UPDATE credentials SET disabled = 1 WHERE id = (SELECT credential_id FROM devices WHERE id = $1)", &[P::S(id)]).await?;
            c.exec("UPDATE device_requests SET state = 'cancelled' WHERE device_id = $1 AND state = 'pending'", &[P::S(id)]).await?;
            insert_audit(&mut c, audit).await?;
            Ok((true, true))
        })
    }

    /// The device was seen now (a poll held or answered).
    pub async fn device_seen(&self, id: &str, now: i64) -> Result<()> {
        self.db.write().await?.exec("UPDATE devices SET last_seen = $2 WHERE id = $1", &[P::S(id), P::I(now)]).await?;
        Ok(())
    }

    /// Accept `counter` from a device, once: `false` when it is not above the last (another
    /// node, or a replay, took it), or the device is revoked.
    pub async fn advance_device_counter(&self, id: &str, counter: i64, now: i64) -> Result<bool> {
        let n = self
            .db
            .write()
            .await?
            .exec(
                "UPDATE devices SET last_counter = $2, last_seen = $3 WHERE id = $1 AND last_counter < $2 AND revoked = 0",
                &[P::S(id), P::I(counter), P::I(now)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Store a request for a device, with its audit record.
    pub async fn insert_device_request(&self, r: &DeviceRequestRow, audit: &NewAudit<'_>) -> Result<()> {
        transaction!(self.db, |c| {
            c.exec(
                &format!("INSERT INTO device_requests ({REQ_COLS}) VALUES ($1, $2, $3, $4, 'pending', NULL, NULL, $5, $6)"),
                &[P::S(&r.id), P::S(&r.device_id), P::S(&r.credential_id), P::S(&r.message), P::I(r.created_at), P::I(r.expires_at)],
            )
            .await?;
            insert_audit(&mut c, audit).await?;
            Ok(((), true))
        })
    }

    /// One request.
    pub async fn device_request(&self, id: &str) -> Result<Option<DeviceRequestRow>> {
        let sql = format!("SELECT {REQ_COLS} FROM device_requests WHERE id = $1");
        self.db.read().await?.opt(&sql, &[P::S(id)]).await?.as_ref().map(request_row).transpose()
    }

    /// A device's pending, unexpired requests that no poll has handed out yet, or that one
    /// handed out before `redeliver_before` (its answer may have been lost on the way: the
    /// device drops a request it already has), marked as handed out now; each by one
    /// conditional update, so that two polls never both take one.
    pub async fn take_undelivered_device_requests(
        &self,
        device_id: &str,
        now: i64,
        redeliver_before: i64,
    ) -> Result<Vec<DeviceRequestRow>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM device_requests WHERE device_id = $1 AND state = 'pending' AND expires_at > $2 \
             AND (delivered_at IS NULL OR delivered_at < $3) ORDER BY created_at, id"
        );
        let rows = self.db.read().await?.all(&sql, &[P::S(device_id), P::I(now), P::I(redeliver_before)]).await?;
        let mut out = Vec::new();
        for r in rows.iter().map(request_row) {
            let r = r?;
            let n = self
                .db
                .write()
                .await?
                .exec(
                    "UPDATE device_requests SET delivered_at = $2 WHERE id = $1 AND (delivered_at IS NULL OR delivered_at < $3)",
                    &[P::S(&r.id), P::I(now), P::I(redeliver_before)],
                )
                .await?;
            if n == 1 {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// End a pending request (once), advancing the device's counter when the answer is the
    /// device's, with the audit record and, when the signatures were not made, the SAD's
    /// give-back (`give_back`: the SAD hash and the hex digests consumption took), in one
    /// transaction. `false`: the request was not pending, or the counter was taken: nothing
    /// changed.
    pub async fn end_device_request(
        &self,
        end: &RequestEnd<'_>,
        give_back_to: Option<(&str, &[String])>,
        audit: &NewAudit<'_>,
    ) -> Result<bool> {
        transaction!(chained self.db, |c| {
            if let Some((device, counter)) = end.counter {
                let n = c
                    .exec(
                        "UPDATE devices SET last_counter = $2 WHERE id = $1 AND last_counter < $2 AND revoked = 0",
                        &[P::S(device), P::I(counter)],
                    )
                    .await?;
                if n == 0 {
                    return Ok((false, false));
                }
            }
            let n = c
                .exec(
                    "UPDATE device_requests SET state = $2, result = $3, answer = $4 WHERE id = $1 AND state = 'pending'",
                    &[P::S(end.id), P::S(end.state), P::S(end.result), P::OS(end.answer)],
                )
                .await?;
            if n == 0 {
                return Ok((false, false));
            }
            match give_back_to {
                Some((sad, digests)) => give_back(&mut c, sad, digests, audit).await?,
                None => {
                    insert_audit(&mut c, audit).await?;
                }
            }
            Ok((true, true))
        })
    }

    /// Give a SAD back what one consumption took, with the audit record (a device request that
    /// could not be sent).
    pub async fn give_back_sad(&self, sad: &str, digests: &[String], audit: &NewAudit<'_>) -> Result<()> {
        transaction!(chained self.db, |c| {
            give_back(&mut c, sad, digests, audit).await?;
            Ok(((), true))
        })
    }

    /// The registered name of the OAuth client a token was issued to, if any (who asks, as a
    /// device shows it: `application` in a signRequest).
    pub async fn token_client_name(&self, token_hash: &str) -> Result<Option<String>> {
        let row = self
            .db
            .read()
            .await?
            .opt("SELECT c.name AS name FROM tokens t JOIN oauth_clients c ON c.id = t.client_id WHERE t.hash = $1", &[P::S(token_hash)])
            .await?;
        row.map(|r| r.str("name")).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::tests::put_sad;

    fn audit(event: &str) -> NewAudit<'_> {
        NewAudit { at: 1, actor: "alice", event, outcome: Outcome::Ok, credential_id: Some("c"), detail: "{}" }
    }

    fn device() -> DeviceRow {
        DeviceRow {
            id: "dev_1".into(),
            user_id: "u".into(),
            credential_id: "c".into(),
            name: "card".into(),
            kind: "agent".into(),
            prehashed: true,
            device_key: vec![0x30, 0x59, 1, 2, 3],
            thumbprint: "ab".repeat(32),
            last_counter: 0,
            revoked: false,
            created_at: 1,
            last_seen: None,
        }
    }

    fn request(id: &str) -> DeviceRequestRow {
        DeviceRequestRow {
            id: id.into(),
            device_id: "dev_1".into(),
            credential_id: "c".into(),
            message: "{}".into(),
            state: "pending".into(),
            result: None,
            answer: None,
            created_at: 10,
            expires_at: 100,
        }
    }

    fn end<'a>(id: &'a str, state: &'a str, counter: Option<i64>) -> RequestEnd<'a> {
        RequestEnd { id, state, result: "{}", answer: Some("jws"), counter: counter.map(|n| ("dev_1", n)) }
    }

    /// "Authenticating device messages": a pairing code starts one session, once, before it
    /// expires; the session finishes once; a device's counter only grows; a request is handed
    /// out once (again only after `redeliver_before`), answered once, and an unsigned end gives
    /// the SAD back; a revoked device's counter does not move and its requests end.
    async fn lifecycle(store: &Store) {
        let code = PairingRow {
            code_hash: "cd".repeat(32),
            pairing_id: None,
            user_id: "u".into(),
            actor: "admin".into(),
            pin_hash: "N:hash".into(),
            state: "code".into(),
            created_at: 1,
            expires_at: 50,
        };
        store.insert_pairing_code(&code, &audit("device.pair.code")).await.unwrap();
        assert!(store.start_pairing(&code.code_hash, "pair_1", 60, 600).await.unwrap().is_none(), "expired");
        let started = store.start_pairing(&code.code_hash, "pair_1", 10, 600).await.unwrap().expect("started");
        assert_eq!((started.state.as_str(), started.pairing_id.as_deref(), started.expires_at), ("started", Some("pair_1"), 600));
        assert!(store.start_pairing(&code.code_hash, "pair_2", 11, 600).await.unwrap().is_none(), "a code works once");
        assert!(store.pairing_session("pair_1").await.unwrap().is_some());
        assert!(store.finish_pairing("pair_1").await.unwrap());
        assert!(!store.finish_pairing("pair_1").await.unwrap(), "a session finishes once");
        assert!(store.pairing_session("pair_1").await.unwrap().is_none());

        store.insert_device(&device(), &audit("device.pair")).await.unwrap();
        let stored = store.device("dev_1").await.unwrap().unwrap();
        assert_eq!((stored.device_key, stored.last_counter, stored.revoked), (device().device_key, 0, false));
        assert_eq!(store.device_of_credential("c").await.unwrap().unwrap().id, "dev_1");
        assert!(store.advance_device_counter("dev_1", 5, 20).await.unwrap());
        assert!(!store.advance_device_counter("dev_1", 5, 21).await.unwrap(), "replayed");
        assert!(!store.advance_device_counter("dev_1", 4, 21).await.unwrap(), "lower");
        assert_eq!(store.device("dev_1").await.unwrap().unwrap().last_seen, Some(20));

        store.insert_device_request(&request("req_1"), &audit("device.request")).await.unwrap();
        assert_eq!(store.take_undelivered_device_requests("dev_1", 20, 0).await.unwrap().len(), 1);
        assert!(store.take_undelivered_device_requests("dev_1", 21, 0).await.unwrap().is_empty(), "handed out once");
        assert_eq!(store.take_undelivered_device_requests("dev_1", 40, 30).await.unwrap().len(), 1, "handed out again later");
        assert!(store.take_undelivered_device_requests("dev_1", 100, 100).await.unwrap().is_empty(), "expired");
        // The answer's counter taken by a poll meanwhile: nothing changes.
        assert!(!store.end_device_request(&end("req_1", "signed", Some(5)), None, &audit("device.answer")).await.unwrap());
        assert_eq!(store.device_request("req_1").await.unwrap().unwrap().state, "pending");
        assert!(store.end_device_request(&end("req_1", "signed", Some(6)), None, &audit("device.answer")).await.unwrap());
        let answered = store.device_request("req_1").await.unwrap().unwrap();
        assert_eq!((answered.state.as_str(), answered.answer.as_deref()), ("signed", Some("jws")));
        assert_eq!(store.device("dev_1").await.unwrap().unwrap().last_counter, 6);
        assert!(!store.end_device_request(&end("req_1", "declined", Some(7)), None, &audit("device.answer")).await.unwrap(), "once");
        assert_eq!(store.device("dev_1").await.unwrap().unwrap().last_counter, 6, "the counter moves with the answer only");

        // Declined: the SAD gets its signature and its bound digest back, with the record.
        let d = "ef".repeat(32);
        put_sad(store, "S", 1, Some(std::slice::from_ref(&d))).await;
        store.db.write().await.unwrap().exec("UPDATE sads SET remaining = 0 WHERE hash = 'S'", &[]).await.unwrap();
        store.db.write().await.unwrap().exec("UPDATE sad_hashes SET used = 1 WHERE sad = 'S'", &[]).await.unwrap();
        store.insert_device_request(&request("req_2"), &audit("device.request")).await.unwrap();
        let events = store.audit_events(10_000).await.unwrap().len();
        let back = Some(("S", std::slice::from_ref(&d)));
        assert!(store.end_device_request(&end("req_2", "declined", Some(7)), back, &audit("device.answer")).await.unwrap());
        assert_eq!(store.sad("S").await.unwrap().unwrap().remaining, 1);
        let used = store.db.read().await.unwrap().opt("SELECT used FROM sad_hashes WHERE sad = 'S'", &[]).await.unwrap();
        assert_eq!(used.unwrap().i64("used").unwrap(), 0);
        assert_eq!(store.audit_events(10_000).await.unwrap().len(), events + 1);

        store.insert_device_request(&request("req_3"), &audit("device.request")).await.unwrap();
        assert!(store.rename_device("dev_1", "office", &audit("device.rename")).await.unwrap());
        assert!(!store.rename_device("dev_2", "office", &audit("device.rename")).await.unwrap());
        assert!(store.revoke_device("dev_1", &audit("device.revoke")).await.unwrap());
        assert!(!store.revoke_device("dev_1", &audit("device.revoke")).await.unwrap(), "revoked once");
        assert!(!store.advance_device_counter("dev_1", 50, 30).await.unwrap(), "a revoked device's counter stays");
        assert_eq!(store.device_request("req_3").await.unwrap().unwrap().state, "cancelled");
        let listed = store.devices(Some("u")).await.unwrap();
        assert_eq!((listed.len(), listed[0].name.as_str(), listed[0].revoked), (1, "office", true));
        assert!(store.devices(Some("nobody")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn devices_on_sqlite() {
        let (dir, store) = crate::tests::store().await;
        lifecycle(&store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn devices_on_postgres() {
        let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
        let url = |db: &str| format!("postgres://{role}@127.0.0.1:5432/{db}");
        let name = format!("cs_devices_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url("test")).await.expect("PostgreSQL on 127.0.0.1:5432");
        let drop_db = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop_db.clone())).execute(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let store = Store::connect(&url(&name)).await.unwrap();
        lifecycle(&store).await;
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(drop_db)).execute(&admin).await.unwrap();
    }
}
