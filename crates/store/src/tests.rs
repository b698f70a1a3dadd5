//! Store tests on a throw-away SQLite database.

use crate::{CodeIssue, NewSad, NewToken, Redeemed, Store};

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
        kind: "credential",
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
