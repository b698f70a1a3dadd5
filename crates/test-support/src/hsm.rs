//! SoftHSM2 for the PKCS#11 tests: a throw-away token in a test's own directory (its own
//! `SOFTHSM2_CONF`), the settings that point cloudsign at it, and what OpenSC's `pkcs11-tool`
//! (not our code) sees in it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;
use crate::server::Env;

/// The SoftHSM2 module (Debian package `softhsm2`).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The label of the test token.
pub const TOKEN: &str = "cloudsign-test";
/// The token's user PIN.
pub const PIN: &str = "hsm-user-pin-1234";
/// The token's security officer PIN.
pub const SO_PIN: &str = "so-pin-87654321";

/// A fresh token labelled [`TOKEN`] with [`PIN`], its objects under `dir`; returns its
/// `SOFTHSM2_CONF` file.
pub fn token(dir: &Path) -> PathBuf {
    let tokens = dir.join("softhsm-tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display())).unwrap();
    run(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
        "--init-token",
        "--free",
        "--label",
        TOKEN,
        "--so-pin",
        SO_PIN,
        "--pin",
        PIN,
    ]));
    conf
}

/// OpenSC's `pkcs11-tool` logged in to the token of `conf` with the user PIN.
fn pkcs11_tool(conf: &Path) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env("SOFTHSM2_CONF", conf).args(["--module", MODULE, "--token-label", TOKEN, "--login", "--pin", PIN]);
    c
}

/// A signer's smart card in the token of `conf` (the bridge agent's tests): an EC P-256 key
/// labelled `card-ec` (CKA_ID 01) and an RSA-2048 key labelled `card-rsa` (CKA_ID 02), each a
/// key pair made by OpenSC's `pkcs11-tool` inside the token (not by us).
pub fn card_keys(conf: &Path) {
    for (kind, label, id) in [("EC:prime256v1", "card-ec", "01"), ("rsa:2048", "card-rsa", "02")] {
        run(pkcs11_tool(conf).args(["--keypairgen", "--key-type", kind, "--label", label, "--id", id]));
    }
}

/// `pkcs11-tool --list-objects` of the private keys in the token of `conf`: OpenSC reads their
/// attributes, not us.
pub fn private_keys(conf: &Path) -> String {
    let out = run(pkcs11_tool(conf).args(["--list-objects", "--type", "privkey"]));
    String::from_utf8_lossy(&out).into_owned()
}

impl Env {
    /// This environment with a fresh [`token`] in its directory, and cloudsign's PKCS#11 module
    /// and token settings naming it; the PIN is the test's to give (`CLOUDSIGN_PKCS11_PIN` or
    /// `CLOUDSIGN_PKCS11_PIN_FILE`). Returns the `SOFTHSM2_CONF` file too, for
    /// [`private_keys`].
    pub fn with_softhsm(self) -> (Env, PathBuf) {
        let conf = token(&self.dir);
        let env = self
            .with_env("SOFTHSM2_CONF", conf.to_str().unwrap())
            .with_env("CLOUDSIGN_PKCS11_MODULE", MODULE)
            .with_env("CLOUDSIGN_PKCS11_TOKEN", TOKEN);
        (env, conf)
    }
}
