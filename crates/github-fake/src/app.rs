//! The fake's GitHub App side: an App registered with its public key, whose JWTs
//! (`POST /app/installations/{id}/access_tokens`) are checked as GitHub checks them —
//! RS256 over `header.claims`, `iss` the App's id, `exp` in the future and at most 10 minutes
//! ahead, `iat` not in the future (docs.github.com, "Generating a JSON Web Token (JWT) for a
//! GitHub App") — and traded for installation tokens with an expiry ("Generating an
//! installation access token for a GitHub App": `token`, `expires_at`). While an App is
//! registered, the API takes only its unexpired installation tokens.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::{FakeGitHub, State, expiry_after, message};

/// A registered App.
#[derive(Debug, Clone)]
pub(super) struct FakeApp {
    app_id: u64,
    installation_id: u64,
    /// Its public key, an RSAPublicKey in DER.
    public_key: Vec<u8>,
    /// How long an installation token lasts (GitHub: an hour).
    lifetime: Duration,
    /// Every installation token issued, with when it expires.
    tokens: Vec<(String, Instant)>,
    /// JWTs refused.
    refused: usize,
}

impl FakeApp {
    /// Whether `token` is an installation token of this App that has not expired.
    pub(super) fn accepts(&self, token: &str) -> bool {
        self.tokens
            .iter()
            .any(|(issued, until)| issued == token && Instant::now() < *until)
    }
}

/// Why GitHub refuses `jwt`, if it does.
fn check_jwt(app: &FakeApp, jwt: &str) -> Result<(), &'static str> {
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "A JSON web token could not be decoded")
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("A JSON web token could not be decoded");
    };
    let header: Value = serde_json::from_slice(&decode(header)?)
        .map_err(|_| "A JSON web token could not be decoded")?;
    if header["alg"] != "RS256" {
        return Err("A JSON web token could not be decoded");
    }
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &app.public_key,
    )
    .verify(
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &decode(signature)?,
    )
    .map_err(|_| "A JSON web token could not be decoded")?;
    let claims: Value = serde_json::from_slice(&decode(claims)?)
        .map_err(|_| "A JSON web token could not be decoded")?;
    let issuer = match &claims["iss"] {
        Value::String(text) => text.parse::<u64>().ok(),
        other => other.as_u64(),
    };
    if issuer != Some(app.app_id) {
        return Err("Integration not found");
    }
    let now = jiff::Timestamp::now().as_second();
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        );
    };
    if exp <= now || exp > now + 600 {
        return Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        );
    }
    if iat > now + 60 {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        );
    }
    Ok(())
}

/// `POST /app/installations/{id}/access_tokens`.
pub(super) fn access_token(state: &mut State, canary: &str, request: &Request) -> ResponseTemplate {
    let Some(app) = state.app.as_mut() else {
        return message(401, "A JSON web token could not be decoded");
    };
    let installation = request
        .url
        .path()
        .trim_end_matches("/access_tokens")
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<u64>().ok());
    let jwt = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if let Err(why) = check_jwt(app, jwt) {
        app.refused += 1;
        return message(401, why);
    }
    if installation != Some(app.installation_id) {
        return message(404, "Not Found");
    }
    let token = format!("{canary}-installation-{}", app.tokens.len() + 1);
    let until = Instant::now() + app.lifetime;
    app.tokens.push((token.clone(), until));
    let expires = expiry_after(app.lifetime);
    ResponseTemplate::new(201).set_body_json(json!({
        "token": token,
        "expires_at": expires.to_string(),
        "permissions": {"administration": "write", "actions": "read", "metadata": "read"},
        "repository_selection": "selected",
    }))
}

impl FakeGitHub {
    /// Registers App `app_id`, installed as `installation_id`, with `public_key` (an
    /// RSAPublicKey in DER): from now on the API takes only its installation tokens, each
    /// lasting `lifetime`.
    pub fn register_app(
        &self,
        app_id: u64,
        installation_id: u64,
        public_key: Vec<u8>,
        lifetime: Duration,
    ) {
        self.lock().app = Some(FakeApp {
            app_id,
            installation_id,
            public_key,
            lifetime,
            tokens: Vec::new(),
            refused: 0,
        });
    }

    /// Installation tokens issued, and JWTs refused.
    pub fn app_tokens(&self) -> (usize, usize) {
        self.lock()
            .app
            .as_ref()
            .map_or((0, 0), |app| (app.tokens.len(), app.refused))
    }

    /// Every installation token issued (secrets: canaries for scans).
    pub fn installation_tokens(&self) -> Vec<String> {
        self.lock()
            .app
            .as_ref()
            .map(|app| app.tokens.iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }
}
