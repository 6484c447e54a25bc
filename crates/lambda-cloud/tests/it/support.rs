//! Test support: the spec as the source of truth. Success answers are synthesized from the
//! spec's own examples, and every body the client sends is checked against the spec's schema.

use std::sync::OnceLock;
use std::time::Duration;

use lambda_cloud::{Client, RateLimits, RetryPolicy};
use serde_json::{Map, Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const TEST_KEY: &str = "test-api-key-0123456789";

pub(crate) fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = include_str!("../../spec/lambda-cloud-openapi.json");
        serde_json::from_str(text).expect("the vendored spec is JSON")
    })
}

/// (method, path template, operation) for every operation of the spec.
pub(crate) fn spec_operations() -> Vec<(String, String, &'static Value)> {
    let mut operations = Vec::new();
    for (path, item) in spec()["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    operations
}

pub(crate) fn spec_operation(id: &str) -> (String, String, &'static Value) {
    spec_operations()
        .into_iter()
        .find(|(_, _, op)| op["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id} in the spec"))
}

pub(crate) fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().expect("ref name");
            resolve(&spec()["components"]["schemas"][name])
        }
        None => schema,
    }
}

pub(crate) fn response_schema(op: &Value, status: &str) -> &'static Value {
    let op: &'static Value = spec_operation(op["operationId"].as_str().expect("id")).2;
    &op["responses"][status]["content"]["application/json"]["schema"]
}

pub(crate) fn success_status(op: &Value) -> String {
    op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .find(|code| code.starts_with('2'))
        .expect("a success response")
        .clone()
}

/// A value for `schema` built from the spec's examples, falling back to the simplest value of
/// the right type. Every property is filled, optional ones too, so decoding is fully exercised.
pub(crate) fn example(schema: &Value) -> Value {
    if let Some(first) = schema.get("examples").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(value) = schema.get("example") {
        return value.clone();
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    let resolved = resolve(schema);
    if !std::ptr::eq(resolved, schema) {
        return example(resolved);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let option = options
            .iter()
            .find(|o| o.get("type") != Some(&json!("null")))
            .expect("a non-null option");
        return example(option);
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values[0].clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None if schema.get("properties").is_some() => {
            let mut object = Map::new();
            for (name, property) in schema["properties"].as_object().expect("properties") {
                object.insert(name.clone(), example(property));
            }
            Value::Object(object)
        }
        Some("object") => json!({}),
        Some("array") => json!([example(&schema["items"])]),
        Some("integer") => json!(schema.get("minimum").and_then(Value::as_u64).unwrap_or(1)),
        Some("boolean") => json!(true),
        Some("string") if schema.get("format") == Some(&json!("date-time")) => {
            json!("2024-10-20T10:15:00Z")
        }
        Some("string") => json!("example"),
        other => panic!("no example for schema type {other:?}: {schema}"),
    }
}

/// Checks `value` against `schema` as far as the spec uses JSON Schema: types, required and
/// unknown properties, enums, consts, lengths, ranges, item counts, `anyOf`. Returns every
/// violation with its path. `strict` refuses properties the schema does not define even where
/// JSON Schema would allow them: right for what we send, too strict for what servers answer.
pub(crate) fn violations(value: &Value, schema: &Value, at: &str, strict: bool) -> Vec<String> {
    let schema = resolve(schema);
    let mut found = Vec::new();
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        if !options
            .iter()
            .any(|o| violations(value, o, at, strict).is_empty())
        {
            found.push(format!("{at}: matches none of the anyOf options"));
        }
        return found;
    }
    if let Some(constant) = schema.get("const")
        && value != constant
    {
        found.push(format!("{at}: expected {constant}, got {value}"));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {values:?}"));
    }
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some("null") => value.is_null(),
        _ => true,
    };
    if !type_ok {
        found.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return found;
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            found.push(format!("{at}: longer than {max}"));
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            found.push(format!("{at}: shorter than {min}"));
        }
    }
    if let Some(number) = value.as_i64() {
        if let Some(max) = schema.get("maximum").and_then(Value::as_i64)
            && number > max
        {
            found.push(format!("{at}: above {max}"));
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_i64)
            && number < min
        {
            found.push(format!("{at}: below {min}"));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            found.push(format!("{at}: more than {max} items"));
        }
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            found.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                found.extend(violations(
                    item,
                    item_schema,
                    &format!("{at}[{index}]"),
                    strict,
                ));
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = required.as_str().expect("required name");
            if !object.contains_key(name) {
                found.push(format!("{at}: missing required `{name}`"));
            }
        }
        for (name, item) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => {
                    found.extend(violations(item, property, &format!("{at}.{name}"), strict));
                }
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(true)) => {}
                    Some(extra) if extra.is_object() => {
                        found.extend(violations(item, extra, &format!("{at}.{name}"), strict));
                    }
                    Some(Value::Bool(false)) => {
                        found.push(format!("{at}: unknown property `{name}`"));
                    }
                    _ if strict => found.push(format!("{at}: unknown property `{name}`")),
                    _ => {}
                },
            }
        }
    }
    found
}

/// A client for a mock server: no pacing, no retries, a known key.
pub(crate) fn client_for(server: &MockServer) -> Client {
    Client::builder()
        .api_key(TEST_KEY)
        .base_url(server.uri())
        .rate_limits(RateLimits::UNLIMITED)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A mock server answering one operation with the spec's example answer, checking the method,
/// path and `Authorization` header the spec requires.
pub(crate) struct Harness {
    pub(crate) server: MockServer,
    pub(crate) client: Client,
    operation: &'static Value,
}

impl Harness {
    /// `concrete_path` is the operation's path with example parameters filled in.
    pub(crate) async fn new(operation_id: &str, concrete_path: &str) -> Harness {
        let (http_method, template, operation) = spec_operation(operation_id);
        assert!(
            path_matches(&template, concrete_path),
            "{concrete_path} does not fit the spec's {template}"
        );
        let status = success_status(operation);
        let answer = example(response_schema(operation, &status));
        assert_eq!(
            violations(
                &answer,
                response_schema(operation, &status),
                "answer",
                false
            ),
            Vec::<String>::new(),
            "the synthesized answer must itself follow the spec"
        );
        let server = MockServer::start().await;
        Mock::given(method(http_method.as_str()))
            .and(path(concrete_path))
            .and(header(
                "authorization",
                format!("Bearer {TEST_KEY}").as_str(),
            ))
            .respond_with(
                ResponseTemplate::new(status.parse::<u16>().expect("status")).set_body_json(answer),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = client_for(&server);
        Harness {
            server,
            client,
            operation,
        }
    }

    /// The answer the server gives, for comparing with what the client decoded.
    pub(crate) fn answer(&self) -> Value {
        let status = success_status(self.operation);
        example(response_schema(self.operation, &status))["data"].clone()
    }

    /// The one request received: its body checked against the spec's request schema (or
    /// checked to be absent when the operation takes none), its query returned.
    pub(crate) async fn request(&self) -> (Value, Vec<(String, String)>) {
        let requests = self.server.received_requests().await.expect("recording");
        assert_eq!(requests.len(), 1, "exactly one request");
        let request = &requests[0];
        let query = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let schema = &self.operation["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert!(request.body.is_empty(), "this operation takes no body");
            return (Value::Null, query);
        }
        let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
        assert_eq!(
            violations(&body, schema, "body", true),
            Vec::<String>::new(),
            "the request body must follow the spec"
        );
        (body, query)
    }
}

fn path_matches(template: &str, concrete: &str) -> bool {
    let t: Vec<_> = template.split('/').collect();
    let c: Vec<_> = concrete.split('/').collect();
    t.len() == c.len()
        && t.iter()
            .zip(&c)
            .all(|(t, c)| t == c || (t.starts_with('{') && !c.is_empty()))
}
