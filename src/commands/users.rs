//! `facture users create-admin --email ADDRESS [--password-stdin]`: creates an ADMIN
//! account, or promotes the existing account with that email (its orders are kept), and
//! sets its password.
//!
//! With `--password-stdin` the password is the first line of standard input (the trailing
//! newline removed); it must have at least 12 characters. Without it, nothing is read: a
//! random password is generated and printed once on standard output (`password <value>`),
//! so the command never waits on a prompt in a script.

use std::io::BufRead;

use anyhow::{bail, Context};
use facture_core::config::Settings;

use crate::auth;

/// Reads the password from the first line of `input`.
pub fn read_password(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

pub async fn create_admin(
    settings: &Settings,
    email: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') || email.chars().any(char::is_whitespace) {
        bail!("`{email}` is not an email address");
    }
    let (password, generated) = if password_stdin {
        (read_password(std::io::stdin().lock())?, false)
    } else {
        (facture_core::random_hex(16), true)
    };
    auth::check_password_strength(&password).map_err(|e| anyhow::anyhow!(e.message))?;
    let phc =
        auth::hash_password(&password).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    let db = super::open_db(settings).await?;
    let account = facture_core::users::upsert_admin(&db, email, &phc).await?;
    println!(
        "{} admin {} ({})",
        if account.created {
            "created"
        } else {
            "promoted"
        },
        account.user.email,
        account.user.id
    );
    if generated {
        println!("password {password}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_the_password() {
        let pw = read_password(&b"correct horse battery\r\nignored\n"[..]).unwrap();
        assert_eq!(pw, "correct horse battery");
        assert!(read_password(&b"\n"[..]).is_err());
        assert!(read_password(&b""[..]).is_err());
    }
}
