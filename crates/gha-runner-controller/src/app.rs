//! GitHub as a GitHub App installation, or with a token: where the controller gets the GitHub
//! client it calls through.
//!
//! An App signs a JSON Web Token with its private key (RS256; `iat` 60 s in the past against
//! clock drift, `exp` at most 10 minutes ahead, `iss` the App's id: docs.github.com,
//! "Generating a JSON Web Token (JWT) for a GitHub App") and trades it for an installation
//! token (`POST /app/installations/{id}/access_tokens`, which answers `token` and `expires_at`,
//! an hour ahead: "Generating an installation access token for a GitHub App"). The token is
//! cached and replaced five minutes before it expires.

use std::sync::Arc;

use base64::Engine as _;
use gha_runner_core::{GitHub, RunnerScope};
use ring::signature::RsaKeyPair;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ControllerError;

/// How long before its expiry an installation token is replaced.
pub const REFRESH_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(5 * 60);

/// A GitHub App's identity: its id, the installation the controller acts for, its key.
pub struct AppKey {
    app_id: u64,
    installation_id: u64,
    key: RsaKeyPair,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

fn app_error(message: impl Into<String>) -> ControllerError {
    ControllerError::App(message.into())
}

impl AppKey {
    /// The App `app_id`'s key from its PEM file as GitHub hands it out (PKCS#1, `BEGIN RSA
    /// PRIVATE KEY`), or converted to PKCS#8 (`BEGIN PRIVATE KEY`).
    pub fn from_pem(
        app_id: u64,
        installation_id: u64,
        pem: &SecretString,
    ) -> Result<AppKey, ControllerError> {
        let text = pem.expose_secret();
        let pkcs1 = text.contains("-----BEGIN RSA PRIVATE KEY-----");
        if !pkcs1 && !text.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(app_error(
                "the private key is not a PEM RSA key: use the .pem file the App's settings page generated",
            ));
        }
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| app_error("the private key's PEM body is not base64"))?;
        let key = if pkcs1 {
            RsaKeyPair::from_der(&der)
        } else {
            RsaKeyPair::from_pkcs8(&der)
        }
        .map_err(|e| app_error(format!("the private key was refused: {e}")))?;
        Ok(AppKey {
            app_id,
            installation_id,
            key,
        })
    }

    /// The public half (an RSAPublicKey, DER), as GitHub keeps it to check the App's JWTs.
    pub fn public_key_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.key.public_key().as_ref().to_vec()
    }

    /// A JWT for the App at `now` (Unix seconds).
    pub fn jwt(&self, now: i64) -> Result<SecretString, ControllerError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64(serde_json::json!({
            "iat": now - 60,
            "exp": now + 9 * 60,
            "iss": self.app_id.to_string(),
        })
        .to_string()
        .as_bytes());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| app_error("signing the App's JWT failed"))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            b64(&signature)
        )))
    }

    /// A new installation token and when it expires.
    pub async fn installation_token(
        &self,
        api_url: Option<&str>,
    ) -> Result<(SecretString, jiff::Timestamp), ControllerError> {
        #[derive(Deserialize)]
        struct Answer {
            token: String,
            expires_at: String,
        }
        let jwt = self.jwt(jiff::Timestamp::now().as_second())?;
        let client = jwt_client(&jwt, api_url)?;
        let route = format!("/app/installations/{}/access_tokens", self.installation_id);
        let answer: Answer = client
            .post(route, None::<&()>)
            .await
            .map_err(|error| match error {
                octocrab::Error::GitHub { source, .. } => app_error(format!(
                    "installation {} of App {}: HTTP {}: {} — check app_id, installation_id and the key",
                    self.installation_id,
                    self.app_id,
                    source.status_code.as_u16(),
                    source.message
                )),
                other => app_error(format!("asking for an installation token failed: {other}")),
            })?;
        let expires = answer
            .expires_at
            .parse()
            .map_err(|_| app_error("GitHub's installation token has no readable expiry"))?;
        Ok((SecretString::from(answer.token), expires))
    }
}

/// A client that authenticates with the App's JWT. Built outside any `async fn`: the
/// builder is not `Send`, and must not live across an await.
fn jwt_client(
    jwt: &SecretString,
    api_url: Option<&str>,
) -> Result<octocrab::Octocrab, ControllerError> {
    let mut builder = octocrab::Octocrab::builder()
        .personal_token(jwt.expose_secret().to_owned())
        .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
        .set_read_timeout(Some(std::time::Duration::from_secs(30)));
    if let Some(url) = api_url {
        builder = builder
            .base_uri(url)
            .map_err(|e| app_error(format!("invalid GitHub API URL {url:?}: {e}")))?;
    }
    builder.build().map_err(|e| app_error(e.to_string()))
}

/// Where the GitHub client comes from.
pub struct GitHubSource {
    kind: Kind,
}

enum Kind {
    Token(Arc<GitHub>),
    App(Box<AppSource>),
}

/// An App installation's clients.
struct AppSource {
    key: AppKey,
    api_url: Option<String>,
    server_url: Option<String>,
    scope: RunnerScope,
    current: tokio::sync::Mutex<Option<(Arc<GitHub>, jiff::Timestamp)>>,
}

impl GitHubSource {
    /// Always the same client (a token that does not expire under the controller).
    pub fn token(github: GitHub) -> GitHubSource {
        GitHubSource {
            kind: Kind::Token(Arc::new(github)),
        }
    }

    /// Clients with installation tokens of `key`'s App, made when needed.
    pub fn app(
        key: AppKey,
        api_url: Option<String>,
        server_url: Option<String>,
        scope: RunnerScope,
    ) -> GitHubSource {
        GitHubSource {
            kind: Kind::App(Box::new(AppSource {
                key,
                api_url,
                server_url,
                scope,
                current: tokio::sync::Mutex::new(None),
            })),
        }
    }

    /// The client to call through now: an App's gets a new installation token when its
    /// token is within [`REFRESH_MARGIN`] of expiring.
    pub async fn get(&self) -> Result<Arc<GitHub>, ControllerError> {
        let AppSource {
            key,
            api_url,
            server_url,
            scope,
            current,
        } = match &self.kind {
            Kind::Token(github) => return Ok(Arc::clone(github)),
            Kind::App(source) => source.as_ref(),
        };
        let mut current = current.lock().await;
        let now = jiff::Timestamp::now();
        if let Some((github, expires)) = current.as_ref()
            && now
                .checked_add(REFRESH_MARGIN)
                .is_ok_and(|soon| soon < *expires)
        {
            return Ok(Arc::clone(github));
        }
        let (token, expires) = key.installation_token(api_url.as_deref()).await?;
        let github = Arc::new(
            GitHub::new(
                &token,
                api_url.as_deref(),
                server_url.as_deref(),
                scope.clone(),
            )
            .map_err(|e| app_error(e.to_string()))?,
        );
        tracing::info!(%expires, "new installation token");
        *current = Some((Arc::clone(&github), expires));
        Ok(github)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh RSA key from `openssl` (installed by `cargo xtask ci`), as PKCS#1 or PKCS#8.
    fn key_pem(pkcs1: bool) -> SecretString {
        let mut command = std::process::Command::new("openssl");
        command.args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ]);
        let pkcs8 = command.output().expect("openssl");
        assert!(pkcs8.status.success());
        if !pkcs1 {
            return SecretString::from(String::from_utf8(pkcs8.stdout).unwrap());
        }
        let mut convert = std::process::Command::new("openssl")
            .args(["rsa", "-traditional"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut convert.stdin.take().unwrap(), &pkcs8.stdout).unwrap();
        let out = convert.wait_with_output().unwrap();
        SecretString::from(String::from_utf8(out.stdout).unwrap())
    }

    #[test]
    fn a_jwt_is_rs256_over_githubs_claims_in_either_pem_form() {
        for pkcs1 in [true, false] {
            let pem = key_pem(pkcs1);
            assert_eq!(pem.expose_secret().contains("BEGIN RSA PRIVATE KEY"), pkcs1);
            let key = AppKey::from_pem(42, 7, &pem).unwrap();
            let jwt = key.jwt(1_000_000).unwrap();
            let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
            assert_eq!(parts.len(), 3);
            let decode = |p: &str| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .unwrap()
            };
            let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
            assert_eq!(header["alg"], "RS256");
            let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
            assert_eq!(claims["iss"], "42");
            assert_eq!(
                claims["iat"],
                1_000_000 - 60,
                "a minute back, for clock drift"
            );
            assert!(
                claims["exp"].as_i64().unwrap() - 1_000_000 <= 600,
                "10 minutes at most"
            );
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                key.public_key_der(),
            )
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &decode(parts[2]),
            )
            .unwrap();
        }
    }

    #[test]
    fn a_key_that_is_not_an_rsa_pem_is_refused_with_the_fix() {
        let error = AppKey::from_pem(1, 2, &SecretString::from("ghp_not_a_key")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the .pem file the App's settings page generated")
        );
        let error = AppKey::from_pem(
            1,
            2,
            &SecretString::from(
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            ),
        )
        .unwrap_err();
        assert!(error.to_string().contains("refused"), "{error}");
        assert_eq!(
            format!("{:?}", AppKey::from_pem(1, 2, &key_pem(true)).unwrap()),
            "AppKey { app_id: 1, installation_id: 2, .. }",
            "no key material in Debug"
        );
    }
}
