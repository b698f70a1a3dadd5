//! Store tests on a throw-away SQLite database.

use crate::db::P;
use crate::{
    AuthMode, CertRow, CertState, CodeIssue, CredentialRow, KeyBackendKind, NewSad, NewToken, Redeemed, Store, StoreError, TokenKind,
};

/// A SAD of user `u` on credential `c` with `remaining` signatures, bound to `bound` (SHA-256
/// digests) when given (the batch and job tests).
pub(crate) async fn put_sad(store: &Store, hash: &str, remaining: i64, bound: Option<&[String]>) {
    let s = NewSad {
        hash,
        user_id: "u",
        credential_id: "c",
        remaining,
        hash_algo: bound.map(|_| "2.16.840.1.101.3.4.2.1"),
        digests: bound,
        expires_at: i64::MAX,
        now: 1,
        sole_key: None,
    };
    store.insert_sad(&s).await.unwrap();
}

/// A new store in its own temporary directory (removed by the caller when done).
pub(crate) async fn store() -> (std::path::PathBuf, Store) {
    let dir = std::env::temp_dir().join(format!("cloudsign-store-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display())).await.unwrap();
    (dir, store)
}

fn sad(hash: &str) -> NewSad<'_> {
    NewSad {
        hash,
        user_id: "u",
        credential_id: "c",
        remaining: 3,
        hash_algo: None,
        digests: None,
        expires_at: i64::MAX,
        now: 1,
        sole_key: None,
    }
}

fn issue() -> CodeIssue<'static> {
    let access = NewToken {
        hash: "T",
        kind: TokenKind::Credential,
        user_id: "u",
        parent: None,
        client_id: Some("client"),
        credential_id: Some("c"),
        expires_at: i64::MAX,
        now: 1,
    };
    CodeIssue { access, refresh: None, sad: Some(sad("T")) }
}

/// RFC 6749 §4.1.2: a code used twice revokes what it issued — here the credential token's
/// SAD and the SADs `credentials/extendTransaction` made from it, one after the other.
#[tokio::test]
async fn a_replayed_code_revokes_the_extensions_of_its_sad() {
    let (dir, store) = store().await;
    store.insert_code("code", "client", "u", "{}", i64::MAX).await.unwrap();
    assert_eq!(store.redeem_code("code", 1, &issue(), "{}").await.unwrap(), Redeemed::Issued);
    store.extend_sad("T", "u", "c", &sad("E1"), &[]).await.unwrap();
    store.extend_sad("E1", "u", "c", &sad("E2"), &[]).await.unwrap();
    assert!(!store.sad("E2").await.unwrap().unwrap().revoked, "the latest extension is live");
    assert_eq!(store.redeem_code("code", 2, &issue(), "{}").await.unwrap(), Redeemed::Reused);
    assert!(store.sad("E2").await.unwrap().unwrap().revoked, "the replay reaches the extension of an extension");
    let _ = std::fs::remove_dir_all(dir);
}

async fn user(store: &Store) {
    let u = crate::UserRow { id: "u".into(), name: "u".into(), password_hash: "h".into(), disabled: false, created_at: 1 };
    store.insert_user(&u).await.unwrap();
}

/// A credential row whose binary fields hold every byte value (base64 of them uses every
/// character of the alphabet and padding).
fn credential(id: &str, backend: KeyBackendKind) -> CredentialRow {
    let all: Vec<u8> = (0u8..=255).collect();
    CredentialRow {
        id: id.into(),
        user_id: "u".into(),
        key_algo: cloudsign_asn1::KeyAlgorithm::EcdsaP256,
        key_handle: all.clone(),
        cert: CertRow {
            der: all.iter().rev().copied().collect(),
            serial_hex: format!("{id}01"),
            subject_dn: "CN=u".into(),
            issuer_dn: "CN=ca".into(),
            not_before: 1,
            not_after: i64::MAX,
        },
        scal: 1,
        multisign: 1,
        pin_hash: "h".into(),
        pin_format: "N".into(),
        otp_kind: Some(crate::OtpKind::Totp),
        otp_secret: Some(all[..21].to_vec()),
        failed_attempts: 0,
        locked: false,
        disabled: false,
        description: None,
        created_at: 1,
        cert_status: CertState::Valid,
        revoked_at: None,
        revocation_reason: None,
        auth_mode: AuthMode::Explicit,
        key_backend: backend,
        pin_wrap_salt: Some(all[..16].to_vec()),
    }
}

/// Bytes go in and come out unchanged, and are stored as the standard base64 with padding
/// that earlier versions wrote (existing databases load, and SQL equality on a handle holds).
#[tokio::test]
async fn binary_fields_round_trip_and_are_stored_as_standard_base64() {
    let (dir, store) = store().await;
    round_trip(&store).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The same on PostgreSQL (a database of its own on the local server, dropped afterwards).
#[tokio::test]
async fn binary_fields_and_stored_names_on_postgres() {
    for body in [0, 1] {
        let (name, store) = pg_store().await;
        if body == 0 {
            round_trip(&store).await;
        } else {
            unknown_names(&store).await;
        }
        store.close().await;
        pg_drop(&name).await;
    }
}

async fn round_trip(store: &Store) {
    user(store).await;
    let row = credential("c", KeyBackendKind::Pkcs11);
    store.insert_credential(&row).await.unwrap();
    let back = store.credential("c").await.unwrap().unwrap();
    assert_eq!(back.key_handle, row.key_handle);
    assert_eq!(back.cert, row.cert);
    assert_eq!(back.otp_secret, row.otp_secret);
    assert_eq!(back.pin_wrap_salt, row.pin_wrap_salt);
    assert_eq!(back.key_backend, KeyBackendKind::Pkcs11);
    assert_eq!(back.auth_mode, AuthMode::Explicit);
    let stored = store
        .db
        .read()
        .await
        .unwrap()
        .opt("SELECT key_handle, otp_secret, pin_wrap_salt, key_backend FROM credentials WHERE id = $1", &[P::S("c")])
        .await
        .unwrap()
        .unwrap();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_eq!(stored.str("key_handle").unwrap(), b64(&row.key_handle));
    assert_eq!(stored.str("otp_secret").unwrap(), b64(&row.otp_secret.unwrap()));
    assert_eq!(stored.str("pin_wrap_salt").unwrap(), b64(&row.pin_wrap_salt.unwrap()));
    assert_eq!(stored.str("key_backend").unwrap(), "pkcs11");

    // A sole-control key with the SAD, and renewal with a new handle.
    let sole = [0u8, 255, 1, 254];
    store.insert_sad(&NewSad { sole_key: Some(&sole), ..sad("S") }).await.unwrap();
    assert_eq!(store.sad("S").await.unwrap().unwrap().sole_key.as_deref(), Some(&sole[..]));
    let renewed = CertRow { der: vec![0x30, 0, 0xff], serial_hex: "c02".into(), ..row.cert.clone() };
    assert!(store.renew_certificate("c", "c01", &renewed, Some(&[9, 9, 9]), 5).await.unwrap());
    let back = store.credential("c").await.unwrap().unwrap();
    assert_eq!((back.cert, back.key_handle), (renewed, vec![9, 9, 9]));
}

/// A key backend, certificate status or token kind the code does not know is an error when
/// the row is read, never taken for the default.
#[tokio::test]
async fn unknown_stored_names_are_errors() {
    let (dir, store) = store().await;
    unknown_names(&store).await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn unknown_names(store: &Store) {
    user(store).await;
    store.insert_credential(&credential("c", KeyBackendKind::Software)).await.unwrap();
    assert_eq!(store.credential("c").await.unwrap().unwrap().key_backend, KeyBackendKind::Software);
    let mut w = store.db.write().await.unwrap();
    w.exec("UPDATE credentials SET key_backend = 'tpm' WHERE id = $1", &[P::S("c")]).await.unwrap();
    drop(w);
    match store.credential("c").await {
        Err(StoreError::Db(m)) => assert!(m.contains("key_backend") && m.contains("tpm"), "{m}"),
        other => panic!("an unknown backend must not load: {other:?}"),
    }
    assert!(store.credentials(None).await.is_err());

    store.insert_credential(&credential("d", KeyBackendKind::Software)).await.unwrap();
    assert!(store.set_cert_status("d", &[CertState::Valid], CertState::Suspended, Some(6), 7).await.unwrap());
    let d = store.credential("d").await.unwrap().unwrap();
    assert_eq!((d.cert_status, d.revoked_at, d.revocation_reason), (CertState::Suspended, Some(7), Some(6)));
    assert_eq!(store.cert_status_by_serial("d01").await.unwrap(), Some((CertState::Suspended, Some(7), Some(6))));
    let mut w = store.db.write().await.unwrap();
    w.exec("UPDATE credentials SET cert_status = 'expired' WHERE id = $1", &[P::S("d")]).await.unwrap();
    drop(w);
    assert!(matches!(store.credential("d").await, Err(StoreError::Db(_))));

    let token = |hash, kind| NewToken {
        hash,
        kind,
        user_id: "u",
        parent: None,
        client_id: None,
        credential_id: None,
        expires_at: i64::MAX,
        now: 1,
    };
    store.insert_token(&token("A", TokenKind::Access)).await.unwrap();
    assert_eq!(store.token("A").await.unwrap().unwrap().kind, TokenKind::Access);
    // A kind this version does not know (written by another program) is an error on reading.
    store.insert_token(&token("X", TokenKind::Access)).await.unwrap();
    let mut w = store.db.write().await.unwrap();
    w.exec("UPDATE tokens SET kind = 'session' WHERE hash = $1", &[P::S("X")]).await.unwrap();
    drop(w);
    assert!(matches!(store.token("X").await, Err(StoreError::Db(_))));
}

/// The local PostgreSQL server's `test` database (trust authentication, as the OS user).
fn pg_url(db: &str) -> String {
    let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
    format!("postgres://{role}@127.0.0.1:5432/{db}")
}

/// A store on a new database of its own.
async fn pg_store() -> (String, Store) {
    let name = format!(
        "cs_store_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let admin = sqlx::PgPool::connect(&pg_url("test")).await.expect("PostgreSQL on 127.0.0.1:5432");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    admin.close().await;
    (name.clone(), Store::connect(&pg_url(&name)).await.unwrap())
}

async fn pg_drop(name: &str) {
    let admin = sqlx::PgPool::connect(&pg_url("test")).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&admin).await;
    admin.close().await;
}

/// A lease left by a process that died mid-check is dropped by the periodic purge once it has
/// lapsed; a live one stays.
#[tokio::test]
async fn purge_drops_lapsed_attempt_leases() {
    use crate::Result;
    async fn two_leases(store: &Store) -> Result<()> {
        transaction!(store.db, |c| {
            assert!(crate::credentials::take_lease(&mut c, "credential:x", "l1", 5, 100).await?);
            assert!(crate::credentials::take_lease(&mut c, "credential:y", "l2", 5, 10_000).await?);
            Ok(((), true))
        })
    }
    let (dir, store) = store().await;
    two_leases(&store).await.unwrap();
    store.purge_expired(100 + crate::credentials::ATTEMPT_LEASE_SECONDS).await.unwrap();
    let left = store.db.read().await.unwrap().all("SELECT subject FROM auth_attempts", &[]).await.unwrap();
    let left: Vec<String> = left.iter().map(|r| r.str("subject").unwrap()).collect();
    assert_eq!(left, ["credential:y"]);
    let _ = std::fs::remove_dir_all(dir);
}
