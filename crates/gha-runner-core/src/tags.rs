//! The one vocabulary of tags on machines this project launches: what the action, `lambda-gha
//! run`/`launch` and the reaper write and read. Every key starts with `lambda-gha:`, so that a
//! machine of this project is told apart from the account's other machines by its tags alone.

use std::time::Duration;

/// The tag every machine carries with its launch's label.
pub const RUN: &str = "lambda-gha:run";
/// The tag that identifies one machine of a launch (its agent finds itself by it).
pub const MACHINE: &str = "lambda-gha:machine";
/// Whose runners the machine serves: `repo:<owner>/<repo>` or `org:<org>`
/// ([`RunnerScope::owner`](crate::RunnerScope::owner)). A reaper given a scope touches only its own machines.
pub const OWNER: &str = "lambda-gha:owner";
/// When the machine was launched (RFC 3339, UTC): the provider does not say.
pub const LAUNCHED: &str = "lambda-gha:launched";
/// When the machine must be gone (launch + maximum lifetime + the agent's margin), RFC 3339:
/// the reaper terminates what is still running past it.
pub const EXPIRES: &str = "lambda-gha:expires";

/// The tag of a `lambda-gha run` machine, with its run's id. It serves no runners: the reaper
/// ends it only past its [`EXPIRES`].
pub const SESSION: &str = "lambda-gha:session";

/// The [`LAUNCHED`] and [`EXPIRES`] of a machine launched now that must be gone
/// after `lifetime`.
pub fn lifetime_tags(lifetime: Duration) -> [(String, String); 2] {
    let now = jiff::Timestamp::now();
    let expires = jiff::SignedDuration::try_from(lifetime)
        .ok()
        .and_then(|life| now.checked_add(life).ok())
        .unwrap_or(now);
    [
        (LAUNCHED.to_owned(), tag_time(now)),
        (EXPIRES.to_owned(), tag_time(expires)),
    ]
}

/// The [`LAUNCHED`] tag of a machine launched now, for launches with no lifetime of their own
/// (`lambda-gha launch`): what `lambda-gha cost` reads the time running from.
pub fn launched_now() -> (String, String) {
    (LAUNCHED.to_owned(), tag_time(jiff::Timestamp::now()))
}

/// Formats a tag timestamp, to the second.
pub(crate) fn tag_time(at: jiff::Timestamp) -> String {
    // Truncated, not rounded: a launch time rounded up lies in the future for up to half a
    // second, and a stop in that window would find a negative time billed.
    at.round(
        jiff::TimestampRound::new()
            .smallest(jiff::Unit::Second)
            .mode(jiff::RoundMode::Trunc),
    )
    .unwrap_or(at)
    .strftime("%Y-%m-%dT%H:%M:%SZ")
    .to_string()
}

/// The controller (`lambda-gha serve`) that launched a machine, by its configured name: a
/// controller's reaper ends only its own machines.
pub const CONTROLLER: &str = "lambda-gha:controller";

/// Who launched a machine from the command line (`launch`, `run`): their login name.
/// `terminate --mine` ends the machines carrying one's own.
pub const CLI: &str = "lambda-gha:cli";

/// Whether `key` is a tag of this project.
pub fn is_ours(key: &str) -> bool {
    key.starts_with("lambda-gha:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_times_never_lie_in_the_future() {
        let at: jiff::Timestamp = "2026-11-23T10:00:00.9Z".parse().unwrap();
        assert_eq!(tag_time(at), "2026-11-23T10:00:00Z");
        let whole: jiff::Timestamp = "2026-11-23T10:00:01Z".parse().unwrap();
        assert_eq!(tag_time(whole), "2026-11-23T10:00:01Z");
    }

    #[test]
    fn every_tag_is_ours_and_lifetimes_are_in_order() {
        for key in [RUN, MACHINE, OWNER, LAUNCHED, EXPIRES, SESSION, CLI] {
            assert!(is_ours(key), "{key}");
        }
        let [(launched, at), (expires, until)] = lifetime_tags(Duration::from_secs(3600));
        assert_eq!((launched.as_str(), expires.as_str()), (LAUNCHED, EXPIRES));
        assert!(at < until, "{at} < {until}");
    }
}
