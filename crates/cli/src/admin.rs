//! `cloudsign admin ...`: secrets come from stdin or a hidden prompt, never from arguments.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use cloudsign_domain::{KeyAlgorithm, NewCredential, OtpKind, Service};
use serde_json::json;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum AdminCommand {
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
    /// The built-in CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Show the audit log.
    Audit {
        /// Number of most recent events.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
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
    /// Revoke a credential's certificate (final; listed on the CRL).
    Revoke {
        id: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
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
    /// Print the CA certificates (issuing CA, then root) as PEM, for relying parties.
    Export,
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
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn run(service: &Service, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::User { command } => match command {
            UserCommand::Add { name, password_stdin } => {
                let password = read_secret(password_stdin, "Password")?;
                service.add_user(&name, password).await.map_err(domain)?;
                eprintln!("user {name} created");
            }
            UserCommand::List { json } => {
                for u in service.store().users().await? {
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
        AdminCommand::Credential { command } => match command {
            CredentialCommand::Add(a) => {
                let key = KeyAlgorithm::from_name(&a.key).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown key type {}: use one of ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096",
                        a.key
                    )
                })?;
                let pin = read_secret(a.pin_stdin, "PIN")?;
                let result = service
                    .add_credential(NewCredential {
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
                    })
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
                for (owner, c) in service.admin_credentials(user.as_deref()).await.map_err(domain)? {
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
                            json!({"credentialID": c.id, "user": owner, "key": c.key_algo, "scal": c.scal, "multisign": c.multisign, "otp": c.otp_kind, "status": state, "serialNumber": c.cert.serial_hex, "notAfter": c.cert.not_after})
                        );
                    } else {
                        println!("{}\t{}\t{}\tSCAL{}\t{}", c.id, owner, c.key_algo, c.scal, state);
                    }
                }
            }
            CredentialCommand::Disable { id } => service.set_credential_disabled(&id, true).await.map_err(domain)?,
            CredentialCommand::Enable { id } => service.set_credential_disabled(&id, false).await.map_err(domain)?,
            CredentialCommand::Unlock { id } => service.unlock_credential(&id).await.map_err(domain)?,
            CredentialCommand::Revoke { id, reason } => service.revoke_credential(&id, &reason).await.map_err(domain)?,
            CredentialCommand::Suspend { id } => service.suspend_credential(&id).await.map_err(domain)?,
            CredentialCommand::Resume { id } => service.resume_credential(&id).await.map_err(domain)?,
            CredentialCommand::Delete { id } => service.delete_credential(&id).await.map_err(domain)?,
        },
        AdminCommand::Ca { command: CaCommand::Export } => {
            for der in service.ca_chain() {
                print!("{}", cloudsign_domain::pem_certificate(der));
            }
        }
        AdminCommand::Audit { limit, json } => {
            for e in service.store().audit_events(limit).await? {
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
