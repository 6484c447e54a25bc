//! An instance's JupyterLab: whether the URL the API gives for it answers yet.
//!
//! The API shows `jupyter_url` (token included) on an instance (the spec's `Instance` schema);
//! the lab behind it starts with the machine, so the URL can fail for a while after the
//! instance is `active`. The probe sends no API key: the token in the URL is the credential.

use crate::client::Client;
use crate::instances::Instance;

/// What one look at an instance's JupyterLab found. Never holds the URL or its token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JupyterProbe {
    /// The API shows no Jupyter URL for the instance (yet).
    NoUrl,
    /// The URL answered with a success status (after redirects).
    Answering,
    /// The URL did not answer with success yet: the HTTP status, or why no answer came.
    NotYet(String),
    /// The URL would carry the token in clear (`http://` to another machine): not opened.
    Insecure,
}

impl Client {
    /// Looks once at `instance`'s JupyterLab: `GET` its `jupyter_url`. Errors never name the
    /// URL, since it carries the token.
    pub async fn probe_jupyter(&self, instance: &Instance) -> JupyterProbe {
        let Some(url) = instance.jupyter_url.as_ref().filter(|u| !u.is_empty()) else {
            return JupyterProbe::NoUrl;
        };
        let Ok(parsed) = url::Url::parse(url.expose()) else {
            return JupyterProbe::NotYet("the API's Jupyter URL is not a URL".to_owned());
        };
        let loopback = match parsed.host() {
            Some(url::Host::Domain(host)) => host == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return JupyterProbe::Insecure;
        }
        match self.http().get(parsed).send().await {
            Ok(answer) if answer.status().is_success() => JupyterProbe::Answering,
            Ok(answer) => JupyterProbe::NotYet(format!("HTTP {}", answer.status().as_u16())),
            Err(error) => JupyterProbe::NotYet(error.without_url().to_string()),
        }
    }
}
