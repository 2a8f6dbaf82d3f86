//! The files derived from the event catalogue and the other Rust declarations (`kcpwatch_proto::events`, `EventKind::spec`):
//!
//! | file | what is generated |
//! |---|---|
//! | `schema/events.schema.json` | the name enum and dispatch, the vocabularies, the severity table, every event's and field group's properties and required lists, severities, the detector rules; merged into `templates/events.schema.json`, which holds what the catalogue cannot say (shared definitions, prose, cross-field constraints) |
//! | `src/generated/event-catalog.ts` | the vocabularies, the field groups, one record interface per event with every field the schema allows, `EventRecords` |
//! | `src/event-types.ts` | the public event types: each event's record with its severities and the unions its `shapes` declare (which fields come together), `KcpEvent`, `KcpEventMap` |
//! | (both of the above) | the engine's error codes, read from `EngineError::from_kcp` applied to every `kcp::Error` (`engine_error_code`, `library_error_code`, `EngineErrorCode`, `LibraryErrorCode`) |
//! | `src/generated/event-checks.ts` | compile-time checks that the unions of `src/event-types.ts` name the same events and fields as the records, with compatible types |
//! | `docs/events.md` | the catalogue table between its `BEGIN`/`END generated` markers |
//! | `crates/kcpwatch-log/tests/fixtures/events_docs.ndjson` | every event's declared examples (`EventRecord::examples`) through the canonical writer |
//! | `src/generated/rules.ts` | from `kcpwatch_proto::events::DropRule`: the rule unions (`GuardRule`, `LimitRule`, `SecureRule`, `DropRule`, `FailRule`, `UnrefusedAttempt`); the same declaration gives the schema its `rule` vocabulary, `trigger_rule` and the rule constraints of `kcp:connection_failed`, and codegen fails if `docs/events.md` has no row for a rule |
//! | `src/generated/error-codes.ts` | from `kcpwatch_proto::ErrorCode`, not the catalogue: every stable failure code (`KCP_ERR_*`) with its doc line; `src/errors.ts` registers one class per code |
//! | `src/generated/stats.ts`, the metric and stats tables of `docs/metrics.md` | from `kcpwatch::stats` (`STATS`, `METRICS`), not the catalogue: each field of `server.stats()` (name, type, doc; the addon returns the values in this order) and each Prometheus family of `server.metrics()` (name, type, help, labels, fields) |
//! | `integrations/elasticsearch/kcpwatch-ecs-template.json` | the `kcp.*` mappings: every field the catalogue declares that the ECS writer's table (`kcpwatch_log::formats::ecs::kcp_fields`) may leave under `kcp.*`, its Elasticsearch type from its `WireType`; and `_meta.ecs_version` from the writer; merged into `templates/kcpwatch-ecs-template.json`, which holds the rest (index patterns, settings, dynamic templates, the ECS fields) |
//! | `src/generated/kcp-options.ts` | from `kcpwatch_proto::config` (`Knob`, `Preset`), not the catalogue: each KCP knob's type, default and range, and the presets |
//!
//! Every generated file says it is generated, and from what.

#![warn(missing_docs)]

mod docs;
mod engine_errors;
mod error_codes;
mod es_template;
mod options;
mod rules;
mod schema;
mod stats;
mod ts;

use std::path::Path;

/// Where the catalogue is declared, for the "generated from" markers.
pub const SOURCE: &str = "crates/kcpwatch-proto/src/events/catalog";

/// Every event's declared examples through the canonical writer (`EventRecord::examples`,
/// `kcpwatch_log::canonical::example_ndjson`): the records `docs/events.md` shows, which the
/// format and schema tests read. NDJSON has no comment syntax, so its generated mark is in
/// `.gitattributes` and in the tests that read it.
pub const EXAMPLES_PATH: &str = "crates/kcpwatch-log/tests/fixtures/events_docs.ndjson";

/// One generated file.
#[derive(Debug)]
pub struct Generated {
    /// Its path from the repository root.
    pub path: &'static str,
    /// What it must contain.
    pub contents: String,
}

/// Every generated file, read from the catalogue and the hand-written parts under `root`.
pub fn generate(root: &Path) -> Result<Vec<Generated>, String> {
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).map_err(|e| format!("cannot read {path}: {e}"))
    };
    let template = read(schema::TEMPLATE)?;
    rules::check_template(&template)?;
    let ts_template = ts::Template::parse(&template)?;
    let es_template = read(es_template::TEMPLATE)?;
    let docs = read(docs::PATH)?;
    rules::check_docs(&docs)?;
    Ok(vec![
        Generated {
            path: schema::PATH,
            contents: schema::generate(&template)?,
        },
        Generated {
            path: ts::CATALOG_PATH,
            contents: ts::catalog(&ts_template)?,
        },
        Generated {
            path: ts::TYPES_PATH,
            contents: ts::types(&ts_template)?,
        },
        Generated {
            path: ts::CHECKS_PATH,
            contents: ts::checks(),
        },
        Generated {
            path: docs::PATH,
            contents: docs::generate(&docs)?,
        },
        Generated {
            path: EXAMPLES_PATH,
            contents: kcpwatch_log::canonical::example_ndjson(),
        },
        options::generated(),
        error_codes::generated(),
        stats::ts(),
        stats::docs(&read(stats::DOCS_PATH)?)?,
        Generated {
            path: rules::TS_PATH,
            contents: rules::ts(),
        },
        Generated {
            path: es_template::PATH,
            contents: es_template::generate(&es_template)?,
        },
    ])
}

/// The files under `root` that differ from what [`generate`] makes.
pub fn stale(root: &Path) -> Result<Vec<&'static str>, String> {
    Ok(generate(root)?
        .into_iter()
        .filter(|f| std::fs::read_to_string(root.join(f.path)).ok().as_deref() != Some(&f.contents))
        .map(|f| f.path)
        .collect())
}

/// `snake_case` -> `PascalCase`.
/// A hand-written JSON template (`name` for errors): its top-level object, whose keys a
/// generator merges with what it generates.
fn template_object(
    text: &str,
    name: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))? {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(format!("{name}: not an object")),
    }
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI fails on drift: `cargo test --workspace` runs this.
    #[test]
    fn committed_files_match_the_catalogue() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let stale = stale(&root).unwrap();
        assert!(
            stale.is_empty(),
            "generated files differ from the catalogue: {stale:?}; run `npm run codegen` and commit the result"
        );
    }

    /// `--check` (and this crate's drift test) name a hand-edited index template: its `kcp.*`
    /// mappings are not a hand-written file any more.
    #[test]
    fn a_hand_edited_index_template_is_stale() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = std::env::temp_dir().join(format!("kcpwatch-codegen-{}", std::process::id()));
        let inputs = [
            schema::TEMPLATE,
            es_template::TEMPLATE,
            docs::PATH,
            stats::DOCS_PATH,
        ];
        for path in inputs {
            let to = root.join(path);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo.join(path), to).unwrap();
        }
        for file in generate(&root).unwrap() {
            let to = root.join(file.path);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, file.contents).unwrap();
        }
        assert_eq!(stale(&root).unwrap(), Vec::<&str>::new());

        // What adding a field by hand looks like: one more kcp.* mapping.
        let path = root.join(es_template::PATH);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replacen(
            "\"acks_received\": {",
            "\"pause_ms\": {\n              \"type\": \"long\"\n            },\n            \"acks_received\": {",
            1,
        );
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        let stale = stale(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(stale, vec![es_template::PATH]);
    }

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("connection_state_updated"), "ConnectionStateUpdated");
    }
}
