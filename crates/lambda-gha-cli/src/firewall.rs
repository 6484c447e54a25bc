//! `lambda-gha firewall`: rules written on the command line as `PROTOCOL:PORTS:SOURCE[:NOTE]`
//! (`tcp:22:0.0.0.0/0`, `tcp:8000-8100:203.0.113.7/32:my office`, `icmp::0.0.0.0/0`), the
//! same shape the tables print, so a rule can be copied from one into the other.

use lambda_cloud::{FirewallRule, FirewallRuleset, NetworkProtocol};

use crate::tables::Table;

/// Reads one rule; the API's own checks (ports, network, note length) run on it too.
pub fn parse_rule(text: &str) -> Result<FirewallRule, String> {
    let form = "write PROTOCOL:PORTS:SOURCE[:NOTE], e.g. tcp:22:0.0.0.0/0 or icmp::0.0.0.0/0";
    let mut parts = text.splitn(4, ':');
    let (Some(protocol), Some(port_text), Some(source)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("rule {text:?}: {form}"));
    };
    let protocol = match protocol.trim().to_ascii_lowercase().as_str() {
        "tcp" => NetworkProtocol::Tcp,
        "udp" => NetworkProtocol::Udp,
        "icmp" => NetworkProtocol::Icmp,
        "all" => NetworkProtocol::All,
        other => {
            return Err(format!(
                "rule {text:?}: protocol {other:?} is not one of tcp, udp, icmp, all"
            ));
        }
    };
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("rule {text:?}: {p:?} is not a port (1-65535)"))
    };
    let port_range = match port_text.trim() {
        "" => None,
        one_or_range => Some(if let Some((low, high)) = one_or_range.split_once('-') {
            [port(low)?, port(high)?]
        } else {
            let one = port(one_or_range)?;
            [one, one]
        }),
    };
    let rule = FirewallRule {
        protocol,
        port_range,
        source_network: source.trim().to_owned(),
        description: parts.next().unwrap_or_default().trim().to_owned(),
    };
    rule.check("rule")
        .map_err(|e| format!("rule {text:?}: {e}"))?;
    Ok(rule)
}

/// A rule as `parse_rule` reads it.
pub fn rule_text(rule: &FirewallRule) -> String {
    let ports = match rule.port_range {
        Some([low, high]) if low == high => low.to_string(),
        Some([low, high]) => format!("{low}-{high}"),
        None => String::new(),
    };
    let mut text = format!("{}:{ports}:{}", rule.protocol, rule.source_network);
    if !rule.description.is_empty() {
        text.push(':');
        text.push_str(&rule.description);
    }
    text
}

/// Whether two rules admit the same traffic (their notes aside): what `--remove-rule` matches.
pub fn same_traffic(a: &FirewallRule, b: &FirewallRule) -> bool {
    a.protocol == b.protocol && a.port_range == b.port_range && a.source_network == b.source_network
}

/// `rules` with `add` appended (unless one admits the same traffic) and `remove` taken out;
/// a rule to remove that is not there is an error, so a typo is not silently ignored.
pub fn edit_rules(
    mut rules: Vec<FirewallRule>,
    add: &[FirewallRule],
    remove: &[FirewallRule],
) -> Result<Vec<FirewallRule>, String> {
    for gone in remove {
        let before = rules.len();
        rules.retain(|rule| !same_traffic(rule, gone));
        if rules.len() == before {
            return Err(format!(
                "no rule admits {}: see the rules with `lambda-gha firewall show`",
                rule_text(gone)
            ));
        }
    }
    for new in add {
        if !rules.iter().any(|rule| same_traffic(rule, new)) {
            rules.push(new.clone());
        }
    }
    Ok(rules)
}

/// The `firewall list` table.
pub fn rulesets_table(rulesets: &[FirewallRuleset]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "REGION", "RULES>", "INSTANCES>"]);
    for r in rulesets {
        table.row(vec![
            r.id.to_string(),
            r.name.clone(),
            r.region.name.to_string(),
            r.rules.len().to_string(),
            r.instance_ids.len().to_string(),
        ]);
    }
    table
}

/// The rules of one ruleset.
pub fn rules_table(rules: &[FirewallRule]) -> Table {
    let mut table = Table::new(&["PROTOCOL", "PORTS", "SOURCE", "NOTE", "AS --rule"]);
    for rule in rules {
        let ports = match rule.port_range {
            Some([low, high]) if low == high => low.to_string(),
            Some([low, high]) => format!("{low}-{high}"),
            None => "-".to_owned(),
        };
        table.row(vec![
            rule.protocol.to_string(),
            ports,
            rule.source_network.clone(),
            if rule.description.is_empty() {
                "-".to_owned()
            } else {
                rule.description.clone()
            },
            rule_text(rule),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_and_print_in_one_shape() {
        for text in [
            "tcp:22:0.0.0.0/0",
            "tcp:8000-8100:203.0.113.7/32:office: 3rd floor",
            "icmp::0.0.0.0/0",
            "udp:53:10.0.0.0/8:dns",
        ] {
            assert_eq!(rule_text(&parse_rule(text).unwrap()), text);
        }
        assert_eq!(
            rule_text(&parse_rule("TCP: 22 :1.2.3.4").unwrap()),
            "tcp:22:1.2.3.4"
        );
        for (bad, says) in [
            ("tcp:22", "PROTOCOL:PORTS:SOURCE"),
            ("sctp:22:0.0.0.0/0", "not one of tcp, udp, icmp, all"),
            ("tcp:ssh:0.0.0.0/0", "is not a port"),
            ("tcp::0.0.0.0/0", "is required for `tcp`"),
            ("icmp:1:0.0.0.0/0", "is not allowed for `icmp`"),
            ("tcp:22:everyone", "IPv4 network"),
            ("tcp:90-80:0.0.0.0/0", "1 <= min <= max"),
        ] {
            let error = parse_rule(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn edits_add_once_and_a_missing_removal_is_an_error() {
        let ssh = parse_rule("tcp:22:0.0.0.0/0:ssh").unwrap();
        let web = parse_rule("tcp:443:0.0.0.0/0").unwrap();
        let rules = edit_rules(vec![ssh.clone()], &[web.clone(), web.clone()], &[]).unwrap();
        assert_eq!(rules, [ssh.clone(), web.clone()]);
        let ssh_no_note = parse_rule("tcp:22:0.0.0.0/0").unwrap();
        assert_eq!(
            edit_rules(rules, &[], &[ssh_no_note]).unwrap(),
            std::slice::from_ref(&web)
        );
        let error = edit_rules(vec![web], &[], &[ssh]).unwrap_err();
        assert!(error.contains("no rule admits tcp:22:0.0.0.0/0"), "{error}");
    }
}
