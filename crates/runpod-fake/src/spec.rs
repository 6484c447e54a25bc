//! RunPod's OpenAPI description (vendored: `spec/SOURCE.md` says from where and when) and
//! validators built from it: for the request bodies the fake is sent, and, for tests, the
//! answers it gives.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::Value;

/// The description, parsed.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_json::from_str(include_str!("../spec/runpod-openapi-v2.json")).unwrap_or(Value::Null)
    })
}

/// What is wrong with `value` as an instance of the component schema `name`
/// (`#/components/schemas/<name>`); empty when it is valid.
pub fn schema_errors(name: &str, value: &Value) -> Vec<String> {
    validate(&format!("/components/schemas/{name}"), value)
}

/// What is wrong with `body` as the answer `status` to `method path` (a path as the
/// description names it, e.g. `/v2/pods/{id}`); a status the operation does not declare is
/// an error too.
pub fn answer_errors(method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let operation = format!(
        "/paths/{}/{}",
        path.replace('~', "~0").replace('/', "~1"),
        method.to_ascii_lowercase()
    );
    let Some(responses) = spec().pointer(&format!("{operation}/responses")) else {
        return vec![format!("{method} {path} is no operation of RunPod's API")];
    };
    let key = status.to_string();
    let Some(mut response) = responses.get(&key).or_else(|| responses.get("default")) else {
        return vec![format!("{method} {path} declares no answer {status}")];
    };
    let mut pointer = format!("{operation}/responses/{key}");
    if responses.get(&key).is_none() {
        pointer = format!("{operation}/responses/default");
    }
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        pointer = reference.trim_start_matches('#').to_owned();
        response = spec().pointer(&pointer).unwrap_or(&Value::Null);
    }
    let Some(content) = response.get("content") else {
        return if body.is_null() {
            Vec::new()
        } else {
            vec![format!(
                "{method} {path} {status} has no body, but one was sent"
            )]
        };
    };
    let media = if content.get("application/json").is_some() {
        "application/json"
    } else {
        "application/problem+json"
    };
    validate(
        &format!("{pointer}/content/{}/schema", media.replace('/', "~1")),
        body,
    )
}

fn validate(pointer: &str, value: &Value) -> Vec<String> {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, Option<jsonschema::Validator>>>> =
        OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut validators = validators.lock().unwrap_or_else(PoisonError::into_inner);
    let validator = validators.entry(pointer.to_owned()).or_insert_with(|| {
        // The whole description is the schema's root, so its `$ref`s resolve; the root's own
        // `$ref` picks the schema.
        let mut root = spec().clone();
        if let Value::Object(map) = &mut root {
            // A URI fragment: the braces of path templates are percent-encoded.
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            map.insert("$ref".into(), Value::from(format!("#{fragment}")));
        }
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .ok()
    });
    match validator {
        Some(validator) => validator
            .iter_errors(value)
            .map(|error| {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() {
                    "$".to_owned()
                } else {
                    format!("${at}")
                };
                format!("{at}: {error}")
            })
            .collect(),
        None => vec![format!("no schema at {pointer}")],
    }
}
