//! `ca_certs`: the CA hierarchy and the other CA-side certificates (the TSA's), with their
//! keys' handles; and what the CA publishes about the certificates it issued (CRL, OCSP),
//! read from `credentials` and `cert_history`.

use cloudsign_keys::KeyBackendKind;

use crate::codec::{StoredName as _, encode};
use crate::credentials::CertState;
use crate::db::{Conn, P, Row};
use crate::{Result, Store, StoreError};

/// A certificate and its metadata as stored.
pub type CertRow = cloudsign_asn1::cert::CertInfo;

/// A CA certificate with its key handle.
#[derive(Debug, Clone)]
pub struct CaRow {
    /// `root`, `issuing` or `tsa`.
    pub name: String,
    /// The certificate.
    pub cert: CertRow,
    /// The key's handle in its backend.
    pub key_handle: Vec<u8>,
    /// Where the key lives.
    pub key_backend: KeyBackendKind,
}

/// A revoked or suspended certificate, for the CRL.
#[derive(Debug, Clone)]
pub struct RevokedCert {
    /// Hex serial.
    pub serial_hex: String,
    /// When (Unix seconds).
    pub revoked_at: i64,
    /// CRLReason code.
    pub reason: i64,
}

const CA_COLS: &str = "name, cert_der, key_handle, serial_hex, subject_dn, issuer_dn, not_before, not_after, key_backend";

/// The certificate columns of a `credentials` or `ca_certs` row.
pub(crate) fn cert_row(r: &Row) -> Result<CertRow> {
    Ok(CertRow {
        der: r.bytes("cert_der")?,
        serial_hex: r.str("serial_hex")?,
        subject_dn: r.str("subject_dn")?,
        issuer_dn: r.str("issuer_dn")?,
        not_before: r.i64("not_before")?,
        not_after: r.i64("not_after")?,
    })
}

async fn insert_ca(c: &mut Conn<'_>, sql: &str, ca: &CaRow) -> Result<u64> {
    let (der, handle) = (encode(&ca.cert.der), encode(&ca.key_handle));
    c.exec(
        sql,
        &[
            P::S(&ca.name),
            P::S(&der),
            P::S(&handle),
            P::S(&ca.cert.serial_hex),
            P::S(&ca.cert.subject_dn),
            P::S(&ca.cert.issuer_dn),
            P::I(ca.cert.not_before),
            P::I(ca.cert.not_after),
            P::S(ca.key_backend.stored()),
        ],
    )
    .await
}

impl Store {
    /// Store a whole CA hierarchy in one transaction, unless a hierarchy exists already.
    /// Returns false when another process got there first.
    pub async fn insert_ca_hierarchy(&self, cas: &[CaRow]) -> Result<bool> {
        let sql = format!("INSERT INTO ca_certs ({CA_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let r: Result<bool> = transaction!(self.db, |c| {
            if c.opt("SELECT name FROM ca_certs", &[]).await?.is_some() {
                return Ok((false, false));
            }
            for ca in cas {
                insert_ca(&mut c, &sql, ca).await?;
            }
            Ok((true, true))
        });
        match r {
            Err(StoreError::Conflict) => Ok(false),
            other => other,
        }
    }

    /// Store one CA-side certificate (e.g. the TSA's) unless one of that name exists (the first
    /// node to start wins; the others then load its record).
    pub async fn insert_ca_if_absent(&self, ca: &CaRow) -> Result<()> {
        let sql = format!("INSERT INTO ca_certs ({CA_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING");
        insert_ca(&mut self.db.write().await?, &sql, ca).await?;
        Ok(())
    }

    /// Read a CA certificate.
    pub async fn ca(&self, name: &str) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLS} FROM ca_certs WHERE name = $1");
        let row = self.db.read().await?.opt(&sql, &[P::S(name)]).await?;
        row.map(|r| {
            Ok(CaRow { name: r.str("name")?, key_handle: r.bytes("key_handle")?, cert: cert_row(&r)?, key_backend: r.name("key_backend")? })
        })
        .transpose()
    }

    /// The status of the certificate with this serial (credentials, then the CA-side
    /// certificates such as the TSA's, which are always `valid`): (status, time, reason).
    pub async fn cert_status_by_serial(&self, serial_hex: &str) -> Result<Option<(CertState, Option<i64>, Option<i64>)>> {
        let mut c = self.db.read().await?;
        if let Some(r) =
            c.opt("SELECT cert_status, revoked_at, revocation_reason FROM credentials WHERE serial_hex = $1", &[P::S(serial_hex)]).await?
        {
            return Ok(Some((r.name("cert_status")?, r.opt_i64("revoked_at")?, r.opt_i64("revocation_reason")?)));
        }
        // A certificate replaced by a renewal shares its credential's fate.
        if let Some(r) = c
            .opt(
                "SELECT c.cert_status, c.revoked_at, c.revocation_reason FROM cert_history h JOIN credentials c ON c.id = h.credential_id \
                 WHERE h.serial_hex = $1",
                &[P::S(serial_hex)],
            )
            .await?
        {
            return Ok(Some((r.name("cert_status")?, r.opt_i64("revoked_at")?, r.opt_i64("revocation_reason")?)));
        }
        let ca = c.opt("SELECT name FROM ca_certs WHERE serial_hex = $1 AND name = 'tsa'", &[P::S(serial_hex)]).await?;
        Ok(ca.map(|_| (CertState::Valid, None, None)))
    }

    /// Every revoked or suspended certificate, for the CRL.
    pub async fn revoked_certificates(&self) -> Result<Vec<RevokedCert>> {
        let rows = self
            .db
            .read()
            .await?
            .all(
                "SELECT serial_hex, revoked_at, revocation_reason FROM credentials WHERE cert_status <> 'valid' \
                 UNION ALL SELECT h.serial_hex, c.revoked_at, c.revocation_reason FROM cert_history h JOIN credentials c ON c.id = h.credential_id \
                 WHERE c.cert_status <> 'valid' ORDER BY 2, 1",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RevokedCert {
                    serial_hex: r.str("serial_hex")?,
                    revoked_at: r.opt_i64("revoked_at")?.unwrap_or(0),
                    reason: r.opt_i64("revocation_reason")?.unwrap_or(0),
                })
            })
            .collect()
    }
}
