//! `lambda-gha jupyter`: an instance's JupyterLab URL, shown without its token unless asked,
//! and the browser that opens it.

/// `url` without its `token` query parameter: what may be printed by default.
pub fn without_token(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(the API's Jupyter URL is not a URL)".to_owned();
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "token")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// The program that opens a URL in the user's browser: `$BROWSER` when set (as `git` and
/// `xdg-open` honour it), else `open` on macOS and `xdg-open` elsewhere.
pub fn browser(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("BROWSER")
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open".to_owned()
            } else {
                "xdg-open".to_owned()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_out_and_the_rest_kept() {
        assert_eq!(
            without_token("https://jupyter-1.lambdaspaces.com/?token=abc"),
            "https://jupyter-1.lambdaspaces.com/"
        );
        assert_eq!(
            without_token("http://127.0.0.1:9/_sim/jupyter/x/?a=1&token=abc&b=2"),
            "http://127.0.0.1:9/_sim/jupyter/x/?a=1&b=2"
        );
        assert!(!without_token("not a url token=abc").contains("abc"));
        assert_eq!(browser(&|_| Some("firefox".into())), "firefox");
    }
}
