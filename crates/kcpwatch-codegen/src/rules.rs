//! What the rule declaration (`kcpwatch_proto::events::DropRule`) generates: the schema's
//! `rule` vocabulary, its pairing with `trigger`, the rules that go without one and what they
//! imply in `kcp:connection_failed`; the TypeScript rule unions; and a check that
//! `docs/events.md` documents every rule.

use std::fmt::Write as _;

use kcpwatch_proto::events::{Direction, DropRule, FailReason, Refused, RuleSource};
use kcpwatch_proto::DropTrigger;
use serde_json::{json, Map, Value};

type Object = Map<String, Value>;

/// Where the rules are declared, for the "generated from" markers.
pub const SOURCE: &str = "crates/kcpwatch-proto/src/drop_rule.rs";
/// The TypeScript rule unions.
pub const TS_PATH: &str = "src/generated/rules.ts";

fn names(rules: impl IntoIterator<Item = DropRule>) -> Vec<&'static str> {
    rules.into_iter().map(DropRule::as_str).collect()
}

/// The rules reported under `trigger`.
fn of_trigger(trigger: DropTrigger) -> Vec<DropRule> {
    DropRule::ALL
        .iter()
        .copied()
        .filter(|r| r.trigger() == Some(trigger))
        .collect()
}

/// The rules of attempts that refused no datagram.
fn unrefused() -> Vec<DropRule> {
    DropRule::ALL
        .iter()
        .copied()
        .filter(|r| r.trigger().is_none())
        .collect()
}

/// `const` for one name, `enum` for several, as a hand-written schema would say it.
fn one_of(values: &[&str]) -> Value {
    match values {
        [one] => json!({ "const": one }),
        _ => json!({ "enum": values }),
    }
}

fn when_rule(rules: &[&str], then: Value) -> Value {
    json!({
        "if": { "properties": { "rule": one_of(rules) }, "required": ["rule"] },
        "then": then,
    })
}

/// `$defs/rule`: every rule, and the template's prose followed by each trigger's rules.
pub fn rule_def(template: Object) -> Object {
    let mut def = Object::new();
    def.insert("enum".into(), json!(names(DropRule::ALL.iter().copied())));
    let prose = template
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let by_trigger: Vec<String> = DropTrigger::ALL
        .into_iter()
        .map(|t| format!("{}: {}", t.as_str(), names(of_trigger(t)).join(", ")))
        .collect();
    let description = format!(
        "{prose} Each rule with a trigger belongs to that trigger only (trigger_rule): {}. Without a trigger (kcp:connection_failed only: no datagram was refused): {}.",
        by_trigger.join("; "),
        names(unrefused()).join(", ")
    );
    for (key, value) in template {
        if key != "description" {
            def.insert(key, value);
        }
    }
    def.insert("description".into(), json!(description));
    def
}

/// `$defs/trigger_rule`: each trigger admits only its own rules.
pub fn trigger_rule(template: Object) -> Object {
    let mut def = template;
    let all: Vec<Value> = DropTrigger::ALL
        .into_iter()
        .map(|trigger| {
            json!({
                "if": { "properties": { "trigger": { "const": trigger.as_str() } }, "required": ["trigger"] },
                "then": { "properties": { "rule": one_of(&names(of_trigger(trigger))) } },
            })
        })
        .collect();
    def.insert("allOf".into(), Value::Array(all));
    def
}

fn side(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "a server's attempt",
        Direction::Outbound => "a client's attempt",
    }
}

/// The constraints of `kcp:connection_failed` that follow from the rule: a rule that refused
/// a datagram comes with its trigger, one that refused none without, and the latter's reason
/// and direction.
pub fn connection_failed() -> Vec<Value> {
    let refused: Vec<&str> = names(
        DropRule::ALL
            .iter()
            .copied()
            .filter(|r| r.trigger().is_some()),
    );
    let mut all = vec![
        {
            let mut v = when_rule(&refused, json!({ "required": ["trigger"] }));
            prepend_comment(
                &mut v,
                "a rule that refused a datagram comes with its trigger",
            );
            v
        },
        {
            let mut v = when_rule(
                &names(unrefused()),
                json!({ "properties": { "trigger": false } }),
            );
            prepend_comment(&mut v, "rules no datagram caused come without a trigger");
            v
        },
    ];
    // Rules with the same reason and side share one branch.
    let mut groups: Vec<(Option<FailReason>, Direction, Vec<&str>)> = Vec::new();
    for rule in unrefused() {
        let Refused::Attempt { reason, direction } = rule.refused() else {
            continue;
        };
        match groups
            .iter_mut()
            .find(|g| g.0 == reason && g.1 == direction)
        {
            Some(group) => group.2.push(rule.as_str()),
            None => groups.push((reason, direction, vec![rule.as_str()])),
        }
    }
    for (reason, direction, rules) in groups {
        let mut then = Object::new();
        if let Some(reason) = reason {
            then.insert("reason".into(), json!({ "const": reason.as_str() }));
        }
        then.insert("direction".into(), json!({ "const": direction.as_str() }));
        let comment = match reason {
            Some(reason) => format!(
                "{}: {}, reason {}",
                rules.join(", "),
                side(direction),
                reason.as_str()
            ),
            None => format!(
                "{}: {}, whatever its reason",
                rules.join(", "),
                side(direction)
            ),
        };
        let mut v = when_rule(&rules, json!({ "properties": then }));
        prepend_comment(&mut v, &comment);
        all.push(v);
    }
    all
}

fn prepend_comment(value: &mut Value, comment: &str) {
    if let Value::Object(o) = value {
        let mut out = Object::new();
        out.insert("$comment".into(), json!(comment));
        out.extend(std::mem::take(o));
        *o = out;
    }
}

fn member_doc(rule: DropRule) -> String {
    let doc = sentence_case(&rule.doc().replace("*/", "*\\/"));
    match rule.refused() {
        Refused::Datagram(trigger) => format!("`{}`: {doc}", trigger.as_str()),
        Refused::Attempt { reason, direction } => {
            let who = match direction {
                Direction::Inbound => "A server",
                Direction::Outbound => "A client",
            };
            match reason {
                Some(reason) => format!("{who}, reason `{}`: {doc}", reason.as_str()),
                None => format!("{who}: {doc}"),
            }
        }
    }
}

/// "A new connection" -> "a new connection", to follow "`trigger`: "; an acronym stays.
fn sentence_case(doc: &str) -> String {
    let mut chars = doc.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if !second.is_ascii_uppercase() => {
            first.to_ascii_lowercase().to_string() + &doc[first.len_utf8()..]
        }
        _ => doc.to_string(),
    }
}

fn union(out: &mut String, doc: &str, name: &str, members: &[String]) {
    let _ = writeln!(out, "/**\n{}\n */", doc_lines(doc));
    let _ = write!(out, "export type {name} =");
    for member in members {
        let _ = write!(out, "\n{member}");
    }
    out.push_str(";\n\n");
}

fn doc_lines(doc: &str) -> String {
    doc.lines()
        .map(|l| format!(" * {l}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn literal(rule: DropRule) -> String {
    format!("  /** {} */\n  | '{}'", member_doc(rule), rule.as_str())
}

fn of_source(source: RuleSource) -> Vec<String> {
    DropRule::ALL
        .iter()
        .copied()
        .filter(|r| r.source() == source)
        .map(literal)
        .collect()
}

/// `src/generated/rules.ts`.
pub fn ts() -> String {
    let mut out = format!("// generated by `npm run codegen` from {SOURCE}; do not edit.\n");
    out.push_str("/**\n * The `rule` of `kcp:packet_dropped` and `kcp:connection_failed`, each rule with its trigger (or,\n * for an attempt that refused no datagram, the reason and side it goes with).\n * `event-types.ts` re-exports these.\n */\n\n");
    union(
        &mut out,
        "The segment guard's rules (`GuardViolation::rule`).",
        "GuardRule",
        &of_source(RuleSource::Guard),
    );
    union(
        &mut out,
        "The limits' rules: connection limits (trigger `over_limit`), handshake rates and detector\nenforcement (`rate_limited`).",
        "LimitRule",
        &of_source(RuleSource::Limit),
    );
    union(
        &mut out,
        "Secure mode's checks of a datagram before any engine sees it (with their trigger).",
        "SecureRule",
        &of_source(RuleSource::Secure),
    );
    let mut drop = vec!["  | GuardRule".to_string()];
    drop.extend(of_source(RuleSource::Endpoint));
    drop.push("  | LimitRule".into());
    drop.push("  | SecureRule".into());
    union(
        &mut out,
        "The exact rule behind a drop or failed attempt that refused a datagram: a guard rule, the\nendpoint's own (no session, raw FEC, the receive buffer), a limit, or a secure-mode check.",
        "DropRule",
        &drop,
    );
    union(
        &mut out,
        "The rule of a `kcp:connection_failed` that refused no datagram (it has no `trigger`).",
        "FailRule",
        &of_source(RuleSource::Attempt),
    );
    // Each FailRule with the reason and direction it comes with.
    let _ = writeln!(
        out,
        "/** A failed attempt without a refused datagram: the application, a timeout or the server said no. */\nexport type UnrefusedAttempt ="
    );
    for rule in DropRule::ALL
        .iter()
        .copied()
        .filter(|r| r.trigger().is_none())
    {
        let Refused::Attempt { reason, direction } = rule.refused() else {
            continue;
        };
        let reason = reason
            .map(|r| format!(" reason: '{}';", r.as_str()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  | {{ trigger?: never;{reason} rule: '{}'; direction: '{}' }}",
            rule.as_str(),
            direction.as_str()
        );
    }
    out.pop();
    out.push_str(";\n");
    out
}

/// Fails naming each rule that `docs/events.md` has no table row for.
pub fn check_docs(docs: &str) -> Result<(), String> {
    let missing: Vec<&str> = DropRule::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|name| {
            !docs.lines().any(|l| {
                l.starts_with('|')
                    && l.split('|')
                        .nth(1)
                        .is_some_and(|cell| cell.contains(&format!("`{name}`")))
            })
        })
        .collect();
    // The trigger table's last column lists each trigger's rules.
    let mut wrong = Vec::new();
    for trigger in DropTrigger::ALL {
        let head = format!("| `{}` |", trigger.as_str());
        let Some(row) = docs
            .lines()
            .find(|l| l.starts_with(&head) && l.split('|').count() == 5)
        else {
            wrong.push(format!("no trigger table row for {}", trigger.as_str()));
            continue;
        };
        let listed: Vec<&str> = row
            .split('|')
            .nth(3)
            .unwrap_or_default()
            .split(',')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort_unstable();
        let mut declared = names(of_trigger(trigger));
        declared.sort_unstable();
        if listed_sorted != declared {
            wrong.push(format!(
                "the {} row lists {} instead of {}",
                trigger.as_str(),
                listed.join(", "),
                declared.join(", ")
            ));
        }
    }
    if !missing.is_empty() {
        wrong.push(format!(
            "no table row documents the rule(s) {}",
            missing.join(", ")
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", crate::docs::PATH, wrong.join("; ")))
    }
}

/// Fails naming each rule the template's hand-written constraints (a `rule` property's `const`
/// or `enum`) name that is not declared, so that renaming a rule cannot leave the schema
/// silently naming the old one.
pub fn check_template(template: &str) -> Result<(), String> {
    let template: Value =
        serde_json::from_str(template).map_err(|e| format!("{}: {e}", crate::schema::TEMPLATE))?;
    let mut unknown = Vec::new();
    walk(&template, &mut unknown);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: names undeclared rule(s) {}",
            crate::schema::TEMPLATE,
            unknown.join(", ")
        ))
    }
}

fn walk(value: &Value, unknown: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            for (key, v) in o {
                if key == "rule" {
                    let named: Vec<&Value> = match (v.get("const"), v.get("enum")) {
                        (Some(c), _) => vec![c],
                        (None, Some(Value::Array(e))) => e.iter().collect(),
                        _ => Vec::new(),
                    };
                    for name in named.into_iter().filter_map(Value::as_str) {
                        if DropRule::from_name(name).is_none() {
                            unknown.push(name.to_string());
                        }
                    }
                }
                walk(v, unknown);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| walk(v, unknown)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_has_a_rule_and_every_rule_one_place() {
        for trigger in DropTrigger::ALL {
            assert!(!of_trigger(trigger).is_empty(), "{}", trigger.as_str());
        }
        let placed: usize = DropTrigger::ALL
            .into_iter()
            .map(|t| of_trigger(t).len())
            .sum::<usize>()
            + unrefused().len();
        assert_eq!(placed, DropRule::ALL.len());
    }

    #[test]
    fn an_undeclared_rule_in_the_template_is_named() {
        let template = r#"{"if": {"properties": {"rule": {"enum": ["too_short", "made_up"]}}}}"#;
        assert!(check_template(template).unwrap_err().contains("made_up"));
        assert!(check_template(r#"{"rule": {"const": "hello_noise"}}"#).is_ok());
    }

    #[test]
    fn a_rule_missing_from_the_docs_is_named() {
        let err = check_docs("| `too_short` | ... |\n").unwrap_err();
        assert!(
            err.contains("trailing_bytes") && !err.contains(" too_short,"),
            "{err}"
        );
    }
}
