//! `cloudsign admin ...`: secrets come from stdin or a hidden prompt, never from arguments.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use cloudsign_domain::{AuthMode, KeyAlgorithm, KeyStorage, NewCredential, OtpKind, Service};
use serde_json::json;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create the store (database, key-encryption key, CA) if there is none yet; every other
    /// admin command refuses to run without one. On an existing store it changes nothing.
    Init,
    /// Users (signers).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Signing credentials (key + certificate + factors).
    Credential {
        #[command(subcommand)]
        command: CredentialCommand,
    },
    /// OAuth 2.0 clients (signature applications).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// The signer's own devices (smart card through `cloudsign device`, phone page):
    /// pairing codes, list, rename, revoke (`docs/device-protocol.md`).
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// The built-in CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The effective settings of the CSC API 2.2 features (`[asynchronous]`, `[on_demand]`,
    /// `[approval]`): the configuration file's values over the defaults, as this node runs them.
    Settings {
        /// One JSON object instead of `table.key = value` lines.
        #[arg(long)]
        json: bool,
    },
    /// Show the audit log (or verify, export, checkpoint it).
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// Number of most recent events.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, its head and the signed checkpoints: prints each changed, deleted,
    /// inserted or reordered record and a truncated tail, and exits non-zero on any finding.
    Verify,
    /// Write the records as JSON lines (with their chain hashes), oldest first, for a SIEM.
    Export {
        /// Only records after this seq (what an earlier export ended with).
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Sign a checkpoint of the chain now (the server also does, periodically and at shutdown).
    Checkpoint,
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Make a one-time pairing code for USER (printed once, valid `[device] pairing_minutes`).
    /// The PIN read here becomes the device credential's PIN.
    Pair {
        user: String,
        /// Read the credential's PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
        /// `{"pairingCode": ..., "expiresAt": ...}` instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List paired devices.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rename a device.
    Rename { id: String, name: String },
    /// Revoke a device: its messages are refused and its credential disabled.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a user (revokes the user's tokens).
    Disable { name: String },
    /// Enable a user.
    Enable { name: String },
    /// Delete a user and all of its credentials.
    Delete { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OtpArg {
    /// RFC 6238 TOTP (authenticator app); enrolment URI printed once.
    Totp,
    /// A code sent by the service on credentials/getChallenge.
    Online,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AuthModeArg {
    /// credentials/authorize with the PIN (and OTP).
    Explicit,
    /// Only through the OAuth 2.0 consent page.
    Oauth2code,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ApprovalArg {
    /// A one-time link to an approval page, sent through the OTP sender (otp_outbox).
    Link,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// The software keystore (sealed in the database under the key-encryption key).
    Software,
    /// The configured PKCS#11 token (pkcs11_module, pkcs11_token, pkcs11_pin).
    Pkcs11,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id (and, once, the secret of a confidential client).
    Add {
        /// Name shown to signers on the consent page.
        #[arg(long)]
        name: String,
        /// A redirect URI, matched exactly but for the port of a loopback `http://127.0.0.1/...` or
        /// `http://[::1]/...` one, which may differ (RFC 8252 §7.3; repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (browser or mobile app): no secret, PKCE S256 required.
        #[arg(long, conflicts_with = "confidential")]
        public: bool,
        /// A confidential client (server-side application) with a secret (the default).
        #[arg(long)]
        confidential: bool,
        /// Let this confidential client use the client_credentials grant, acting as this user.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a client and revoke every token issued to it.
    Delete { id: String },
}

#[derive(Args)]
pub struct AddCredential {
    /// Owner.
    #[arg(long)]
    user: String,
    /// Read the PIN from the first line of standard input.
    #[arg(long)]
    pin_stdin: bool,
    /// Key type: ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, default_value = "ecdsa-p256")]
    key: String,
    /// Second factor.
    #[arg(long)]
    otp: Option<OtpArg>,
    /// Sole control assurance level: 2 binds each SAD to the hashes authorized.
    #[arg(long, default_value_t = 2)]
    scal: u8,
    /// Maximum signatures per authorization.
    #[arg(long, default_value_t = 10)]
    multisign: u32,
    /// Description shown to clients.
    #[arg(long)]
    description: Option<String>,
    /// How the credential is authorized: explicit (credentials/authorize) or oauth2code
    /// (only on the service's consent page).
    #[arg(long, value_enum, default_value = "explicit")]
    auth_mode: AuthModeArg,
    /// Where the key is generated and kept.
    #[arg(long, value_enum, default_value = "software")]
    backend: BackendArg,
    /// Sole control: also seal the key under a key derived from the PIN, so that nobody can
    /// sign without it (not even with the database and the key-encryption key). The PIN then
    /// cannot be reset, only changed with the current one.
    #[arg(long)]
    sole_control: bool,
    /// Out-of-band approval: after the PIN, every authorization waits for the signer to
    /// approve it where the approver sends the request (CSC v2 202 answer and
    /// credentials/authorizeCheck; needs `[approval] enabled = true`).
    #[arg(long, value_enum)]
    approval: Option<ApprovalArg>,
    /// Print a JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum CredentialCommand {
    /// Generate a key, have the CA certify it, enrol the factors.
    Add(AddCredential),
    /// List credentials.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Disable a credential.
    Disable { id: String },
    /// Enable a credential.
    Enable { id: String },
    /// Unlock a credential locked by failed PIN/OTP attempts.
    Unlock { id: String },
    /// Change a credential's PIN: the current PIN, then the new one (with --pin-stdin: two
    /// lines on standard input). Sole-control keys are re-wrapped under the new PIN.
    ChangePin {
        id: String,
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Revoke a credential's certificate (final; listed on the CRL).
    Revoke {
        id: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Renew a credential's certificate now (the service also does it before expiry).
    Renew {
        id: String,
        /// A new key in the same backend instead of the same key.
        #[arg(long)]
        new_key: bool,
    },
    /// Suspend a credential's certificate (certificateHold on the CRL).
    Suspend { id: String },
    /// Lift a suspension.
    Resume { id: String },
    /// Delete a credential and its key.
    Delete { id: String },
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Print the CA certificates as PEM, for relying parties: the issuing CA, then the root
    /// (the default, as --chain), or only the root (--root).
    Export {
        /// Only the root certificate: the trust anchor, for tools that want the anchor alone
        /// (xmlsec1 --trusted-pem, pyHanko --trust).
        #[arg(long, conflicts_with = "chain")]
        root: bool,
        /// The issuing CA, then the root (the default): the anchor with the intermediate that
        /// certifies every credential.
        #[arg(long)]
        chain: bool,
    },
}

/// What `admin init` says (on stderr): whether it created the store, and the root's SHA-256
/// fingerprint, to compare with `admin ca export --root | openssl x509 -noout -fingerprint -sha256`.
pub fn report_init(service: &Service, created: bool, location: &str) {
    let [_, root] = service.ca_chain();
    let fingerprint: Vec<String> =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, root).as_ref().iter().map(|b| format!("{b:02X}")).collect();
    if created {
        eprintln!("created the cloudsign store at {location} with a new CA");
    } else {
        eprintln!("the cloudsign store at {location} exists already; nothing changed");
    }
    eprintln!("root CA SHA-256 fingerprint: {}", fingerprint.join(":"));
}

/// Read one secret: the first line of stdin with `from_stdin`, else a hidden prompt (twice).
fn read_secret(from_stdin: bool, what: &str) -> anyhow::Result<Zeroizing<String>> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).with_context(|| format!("cannot read the {what} from standard input"))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        if trimmed.is_empty() {
            bail!("no {what} on standard input");
        }
        return Ok(trimmed);
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{what}: "))
            .with_context(|| format!("cannot prompt for the {what} (use --{}-stdin)", what.to_lowercase()))?,
    );
    let second = Zeroizing::new(rpassword::prompt_password(format!("{what} again: "))?);
    if *first != *second {
        bail!("the two entries differ");
    }
    Ok(first)
}

fn domain(e: cloudsign_domain::Error) -> anyhow::Error {
    match e {
        cloudsign_domain::Error::Internal(m) => anyhow::anyhow!("internal error: {m}"),
        cloudsign_domain::Error::Unavailable(m) => anyhow::anyhow!("unavailable: {m}"),
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn run(service: &Service, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        // Opening the service (main.rs) created the store; `report_init` has said so.
        AdminCommand::Init => {}
        AdminCommand::User { command } => match command {
            UserCommand::Add { name, password_stdin } => {
                let password = read_secret(password_stdin, "Password")?;
                service.add_user(&name, password).await.map_err(domain)?;
                eprintln!("user {name} created");
            }
            UserCommand::List { json } => {
                for u in service.users().await.map_err(domain)? {
                    if json {
                        println!("{}", json!({"name": u.name, "disabled": u.disabled, "created_at": u.created_at}));
                    } else {
                        println!("{}\t{}", u.name, if u.disabled { "disabled" } else { "enabled" });
                    }
                }
            }
            UserCommand::Disable { name } => service.set_user_disabled(&name, true).await.map_err(domain)?,
            UserCommand::Enable { name } => service.set_user_disabled(&name, false).await.map_err(domain)?,
            UserCommand::Delete { name } => service.delete_user(&name).await.map_err(domain)?,
        },
        AdminCommand::Device { command } => device(service, command).await?,
        AdminCommand::Credential { command } => match command {
            CredentialCommand::Add(a) => {
                let key = KeyAlgorithm::from_name(&a.key).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown key type {}: use one of ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096",
                        a.key
                    )
                })?;
                let pin = read_secret(a.pin_stdin, "PIN")?;
                let approval = a.approval.map(|ApprovalArg::Link| cloudsign_domain::approval::LINK_APPROVER);
                let result = service
                    .add_credential_with_approval(
                        NewCredential {
                            user: a.user,
                            pin,
                            key,
                            otp: a.otp.map(|o| match o {
                                OtpArg::Totp => OtpKind::Totp,
                                OtpArg::Online => OtpKind::Online,
                            }),
                            scal: a.scal,
                            multisign: a.multisign,
                            description: a.description,
                            auth_mode: match a.auth_mode {
                                AuthModeArg::Explicit => AuthMode::Explicit,
                                AuthModeArg::Oauth2code => AuthMode::OAuth2Code,
                            },
                            sole_control: a.sole_control,
                            backend: match a.backend {
                                BackendArg::Software => KeyStorage::Software,
                                BackendArg::Pkcs11 => KeyStorage::Pkcs11,
                            },
                        },
                        approval,
                    )
                    .await
                    .map_err(domain)?;
                if a.json {
                    let mut out =
                        json!({"credentialID": result.credential_id, "certificate": cloudsign_domain::pem_certificate(&result.cert_der)});
                    if let Some(uri) = &result.otpauth {
                        out["otpauth"] = json!(uri.as_str());
                    }
                    println!("{out}");
                } else {
                    println!("credentialID: {}", result.credential_id);
                    if let Some(uri) = &result.otpauth {
                        println!("otpauth: {}", uri.as_str());
                    }
                }
            }
            CredentialCommand::List { user, json } => {
                for (owner, c, approval) in service.admin_credentials(user.as_deref()).await.map_err(domain)? {
                    let state = if c.disabled {
                        "disabled"
                    } else if c.locked {
                        "locked"
                    } else {
                        "enabled"
                    };
                    if json {
                        println!(
                            "{}",
                            json!({"credentialID": c.id, "user": owner, "key": c.key_algo.name(), "scal": c.scal, "multisign": c.multisign, "otp": c.otp_kind.map(|k| k.as_str()), "backend": c.key_backend.as_str(), "authMode": c.auth_mode.as_str(), "approval": approval, "status": state, "serialNumber": c.cert.serial_hex, "notAfter": c.cert.not_after})
                        );
                    } else {
                        // The approver, where there is one, after the state (older columns keep their place).
                        match &approval {
                            Some(a) => println!("{}\t{}\t{}\tSCAL{}\t{}\tapproval:{a}", c.id, owner, c.key_algo.name(), c.scal, state),
                            None => println!("{}\t{}\t{}\tSCAL{}\t{}", c.id, owner, c.key_algo.name(), c.scal, state),
                        }
                    }
                }
            }
            CredentialCommand::Disable { id } => service.set_credential_disabled(&id, true).await.map_err(domain)?,
            CredentialCommand::Enable { id } => service.set_credential_disabled(&id, false).await.map_err(domain)?,
            CredentialCommand::Unlock { id } => service.unlock_credential(&id).await.map_err(domain)?,
            CredentialCommand::ChangePin { id, pin_stdin } => {
                let (current, new) = if pin_stdin {
                    let mut lines = std::io::stdin().lock().lines();
                    let mut next = |what: &str| -> anyhow::Result<Zeroizing<String>> {
                        let line = Zeroizing::new(lines.next().transpose()?.unwrap_or_default());
                        let line = Zeroizing::new(line.trim_end_matches('\r').to_string());
                        if line.is_empty() {
                            bail!("no {what} on standard input (expected: current PIN, then new PIN, one per line)");
                        }
                        Ok(line)
                    };
                    (next("current PIN")?, next("new PIN")?)
                } else {
                    let current = Zeroizing::new(rpassword::prompt_password("Current PIN: ").context("cannot prompt (use --pin-stdin)")?);
                    (current, read_secret(false, "New PIN")?)
                };
                service.change_pin(&id, current, new).await.map_err(domain)?;
                eprintln!("PIN changed");
            }
            CredentialCommand::Revoke { id, reason } => service.revoke_credential(&id, &reason).await.map_err(domain)?,
            CredentialCommand::Renew { id, new_key } => {
                let serial = service.renew_credential(&id, new_key, "admin").await.map_err(domain)?;
                println!("{serial}");
            }
            CredentialCommand::Suspend { id } => service.suspend_credential(&id).await.map_err(domain)?,
            CredentialCommand::Resume { id } => service.resume_credential(&id).await.map_err(domain)?,
            CredentialCommand::Delete { id } => service.delete_credential(&id).await.map_err(domain)?,
        },
        AdminCommand::Client { command } => match command {
            ClientCommand::Add { name, redirect_uris, public, confidential: _, user, json } => {
                let (client, secret) = service.add_client(&name, &redirect_uris, !public, user.as_deref()).await.map_err(domain)?;
                if json {
                    let mut out = json!({"client_id": client.id, "name": client.name, "redirect_uris": client.redirect_uris, "type": if public { "public" } else { "confidential" }});
                    if let Some(s) = &secret {
                        out["client_secret"] = json!(s.as_str());
                    }
                    println!("{out}");
                } else {
                    println!("client_id: {}", client.id);
                    if let Some(s) = &secret {
                        println!("client_secret: {} (shown once)", s.as_str());
                    }
                }
            }
            ClientCommand::List { json } => {
                for c in service.clients().await.map_err(domain)? {
                    let kind = if c.confidential { "confidential" } else { "public" };
                    if json {
                        println!(
                            "{}",
                            json!({"client_id": c.id, "name": c.name, "redirect_uris": c.redirect_uris, "type": kind, "user": c.user, "created_at": c.created_at})
                        );
                    } else {
                        println!("{}\t{}\t{}\t{}", c.id, kind, c.name, c.redirect_uris.join(" "));
                    }
                }
            }
            ClientCommand::Delete { id } => service.delete_client(&id).await.map_err(domain)?,
        },
        AdminCommand::Ca { command: CaCommand::Export { root, chain: _ } } => {
            let [issuing, root_der] = service.ca_chain();
            let certs: &[&[u8]] = if root { &[root_der] } else { &[issuing, root_der] };
            for der in certs {
                print!("{}", cloudsign_domain::pem_certificate(der));
            }
        }
        AdminCommand::Settings { json } => {
            let cfg = service.config();
            let settings =
                json!({"asynchronous": cfg.asynchronous, "on_demand": cfg.on_demand, "approval": cfg.approval, "device": cfg.device});
            if json {
                println!("{settings}");
            } else {
                for (table, keys) in settings.as_object().into_iter().flatten() {
                    for (key, value) in keys.as_object().into_iter().flatten() {
                        println!("{table}.{key} = {value}");
                    }
                }
            }
        }
        AdminCommand::Audit { command: Some(command), .. } => return audit(service, command).await,
        AdminCommand::Audit { command: None, limit, json } => {
            for e in service.audit_events(limit).await.map_err(domain)? {
                if json {
                    println!(
                        "{}",
                        json!({"seq": e.seq, "at": e.at, "actor": e.actor, "event": e.event, "outcome": e.outcome, "credentialID": e.credential_id, "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or_default()})
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        e.seq,
                        cloudsign_domain::generalized_time(e.at),
                        e.actor,
                        e.event,
                        e.outcome,
                        e.credential_id.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

/// `admin audit verify | export | checkpoint`.
async fn device(service: &Service, command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Pair { user, pin_stdin, json } => {
            let pin = read_secret(pin_stdin, "PIN for the device credential")?;
            let code = service.device_pairing_code(&user, pin, "admin").await.map_err(domain)?;
            // The code goes to stdout once (the operator hands it to the signer); never to a log.
            if json {
                println!("{}", json!({"pairingCode": code.code.as_str(), "expiresAt": code.expires_at}));
            } else {
                println!("{}", code.code.as_str());
                eprintln!("pairing code for {user}, valid until {} (Unix time); it works once", code.expires_at);
            }
        }
        DeviceCommand::List { user, json } => {
            for d in service.devices(user.as_deref()).await.map_err(domain)? {
                if json {
                    println!("{}", serde_json::to_string(&d)?);
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        d.device_id,
                        d.user,
                        d.kind,
                        d.credential_id,
                        if d.revoked { "revoked" } else { "active" },
                        d.name
                    );
                }
            }
        }
        DeviceCommand::Rename { id, name } => service.rename_device(&id, &name, "admin").await.map_err(domain)?,
        DeviceCommand::Revoke { id } => {
            service.revoke_device(&id, "admin").await.map_err(domain)?;
            eprintln!("device {id} revoked; its credential is disabled");
        }
    }
    Ok(())
}

async fn audit(service: &Service, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify => {
            let report = service.verify_audit().await.map_err(domain)?;
            for f in &report.findings {
                println!("{f}");
            }
            if !report.findings.is_empty() {
                bail!("the audit log was tampered with: {} finding(s)", report.findings.len());
            }
            match report.last_checkpoint {
                Some(s) => println!("ok: {} records, last checkpoint at seq {s}", report.records),
                None => println!("ok: {} records, no checkpoint yet", report.records),
            }
        }
        AuditCommand::Export { after } => {
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut after = after;
            loop {
                let page = service.audit_page(after, 5000).await.map_err(domain)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in page {
                    let line = json!({"seq": e.seq, "at": e.at, "actor": e.actor, "event": e.event, "outcome": e.outcome, "credentialID": e.credential_id, "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or(serde_json::Value::String(e.detail.clone())), "prevHash": e.prev_hash, "hash": e.hash});
                    writeln!(out, "{line}")?;
                }
            }
            out.flush()?;
        }
        AuditCommand::Checkpoint => match service.audit_checkpoint().await.map_err(domain)? {
            Some(c) => println!("checkpoint at seq {}", c.seq),
            None => println!("nothing new since the last checkpoint"),
        },
    }
    Ok(())
}
