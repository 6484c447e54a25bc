//! Naming things on the command line: wherever a command takes an instance, SSH key,
//! filesystem or firewall ruleset, its id or its name will do. A name two of them share is
//! refused, listing them, rather than guessed.

use lambda_cloud::{Filesystem, FirewallRuleset, Instance, SshKey};

use crate::CliError;

/// Something the account holds that has an id and may have a name.
pub trait Named {
    /// What it is, for messages: `instance`, `SSH key`…
    const KIND: &'static str;
    /// The command that lists them.
    const LIST: &'static str;
    /// Its id.
    fn id(&self) -> &str;
    /// Its name, when it has one.
    fn name(&self) -> Option<&str>;
    /// Whether a name still points at it (a terminated instance keeps its name a while).
    fn live(&self) -> bool {
        true
    }
    /// How it is told apart from another of the same name.
    fn describe(&self) -> String {
        self.id().to_owned()
    }
}

impl Named for Instance {
    const KIND: &'static str = "instance";
    const LIST: &'static str = "lambda-gha ls";
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn live(&self) -> bool {
        !self.status.is_gone()
    }
    fn describe(&self) -> String {
        format!(
            "{} ({} in {})",
            self.id, self.instance_type.name, self.region.name
        )
    }
}

impl Named for SshKey {
    const KIND: &'static str = "SSH key";
    const LIST: &'static str = "lambda-gha ssh-keys list";
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl Named for Filesystem {
    const KIND: &'static str = "filesystem";
    const LIST: &'static str = "lambda-gha filesystems list";
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn describe(&self) -> String {
        format!("{} (in {})", self.id, self.region.name)
    }
}

impl Named for FirewallRuleset {
    const KIND: &'static str = "firewall ruleset";
    const LIST: &'static str = "lambda-gha firewall list";
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn describe(&self) -> String {
        format!("{} (in {})", self.id, self.region.name)
    }
}

/// The one of `items` that `wanted` names: by id first, then by name among the live ones.
pub fn resolve<'a, T: Named>(items: &'a [T], wanted: &str) -> Result<&'a T, CliError> {
    if let Some(found) = items.iter().find(|item| item.id() == wanted) {
        return Ok(found);
    }
    let named: Vec<&T> = items
        .iter()
        .filter(|item| item.live() && item.name() == Some(wanted))
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::NotFound {
            kind: T::KIND,
            wanted: wanted.to_owned(),
            list: T::LIST,
        }),
        many => Err(CliError::Ambiguous {
            kind: T::KIND,
            wanted: wanted.to_owned(),
            matches: many.iter().map(|item| item.describe()).collect(),
        }),
    }
}

/// The ids of every one of `items` that `wanted` names, in order; the first that names none
/// (or more than one) is the error.
pub fn resolve_all<T: Named>(items: &[T], wanted: &[String]) -> Result<Vec<String>, CliError> {
    wanted
        .iter()
        .map(|w| resolve(items, w).map(|item| item.id().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(&'static str, Option<&'static str>, bool);

    impl Named for Thing {
        const KIND: &'static str = "thing";
        const LIST: &'static str = "things";
        fn id(&self) -> &str {
            self.0
        }
        fn name(&self) -> Option<&str> {
            self.1
        }
        fn live(&self) -> bool {
            self.2
        }
    }

    #[test]
    fn an_id_wins_then_a_live_name_and_a_shared_name_is_refused_with_its_ids() {
        let things = [
            Thing("a1", Some("train"), true),
            Thing("b2", Some("train"), true),
            Thing("c3", Some("eval"), true),
            Thing("d4", Some("eval"), false),
            Thing("e5", Some("a1"), true),
        ];
        assert_eq!(
            resolve(&things, "a1").unwrap().0,
            "a1",
            "an id beats a name"
        );
        assert_eq!(
            resolve(&things, "eval").unwrap().0,
            "c3",
            "gone ones do not count"
        );
        let error = resolve(&things, "train").err().unwrap().to_string();
        assert_eq!(
            error,
            "2 things are named \"train\": name one by its id: a1, b2"
        );
        let error = resolve(&things, "nope").err().unwrap().to_string();
        assert_eq!(error, "no thing has the id or name \"nope\" (see `things`)");
        let ids = resolve_all(&things, &["eval".to_owned(), "e5".to_owned()]).unwrap();
        assert_eq!(ids, ["c3", "e5"]);
        assert!(resolve_all(&things, &["eval".to_owned(), "train".to_owned()]).is_err());
    }
}
