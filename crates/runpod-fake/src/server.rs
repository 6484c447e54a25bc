//! The HTTP side: one handler that authenticates, rate limits, applies faults, validates and
//! dispatches, so that every operation goes through the same gate in the same order.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::world::{Answer, Caller, World, problem};
use crate::{Operation, Shared, spec};

/// The largest body the fake reads.
const MAX_BODY: usize = 2 * 1024 * 1024;

pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = axum::Router::new().fallback(handle).with_state(shared);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::warn!(%error, "the fake RunPod stopped serving");
    }
}

/// The operation `method path` names, and its pod id.
pub(crate) fn route(method: &Method, path: &str) -> Option<(Operation, Option<String>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    Some(match (method.as_str(), segments.as_slice()) {
        ("POST", ["v2", "pods"]) => (Operation::CreatePod, None),
        ("GET", ["v2", "pods"]) => (Operation::ListPods, None),
        ("GET", ["v2", "pods", id]) => (Operation::GetPod, Some((*id).to_owned())),
        ("PATCH", ["v2", "pods", id]) => (Operation::UpdatePod, Some((*id).to_owned())),
        ("DELETE", ["v2", "pods", id]) => (Operation::DeletePod, Some((*id).to_owned())),
        ("GET", ["v2", "catalog", "gpus"]) => (Operation::ListGpuTypes, None),
        ("GET", ["v2", "catalog", "datacenters"]) => (Operation::ListDataCenters, None),
        _ => return None,
    })
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let key = bearer(&parts.headers);
    let (status, body, headers) = shared.with_world(|world, now| {
        // Who called, for the log: a pod's own key is marked (the account's is the default).
        let by_pod = key
            .as_deref()
            .and_then(|key| world.caller(key, &shared.api_key))
            .is_some_and(|caller| matches!(caller, Caller::Pod(_)));
        let (answer, headers) = gate(
            world,
            &shared,
            &parts.method,
            &path,
            &query,
            &body,
            key.as_deref(),
            now,
        );
        let by = if by_pod { " (pod key)" } else { "" };
        world
            .log
            .push(format!("{} {path} {}{by}", parts.method, answer.0));
        (answer.0, answer.1, headers)
    });
    let mut response = if body.is_null() {
        StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response()
    } else {
        let content_type = if status >= 400 {
            "application/problem+json"
        } else {
            "application/json"
        };
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(axum::http::header::CONTENT_TYPE, content_type)],
            body.to_string(),
        )
            .into_response()
    };
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[allow(clippy::too_many_arguments)]
fn gate(
    world: &mut World,
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &Bytes,
    key: Option<&str>,
    now: f64,
) -> (Answer, Vec<(&'static str, String)>) {
    let Some(key) = key else {
        return (problem(401, "missing bearer token"), Vec::new());
    };
    let Some(caller) = world.caller(key, &shared.api_key) else {
        return (problem(401, "invalid api key"), Vec::new());
    };
    let quota = world.scenario.requests_per_minute;
    let (left, reset) = match world.admit(now) {
        Ok(admitted) => admitted,
        Err(reset) => {
            let headers = vec![
                ("retry-after", reset.to_string()),
                ("ratelimit", format!("\"minute\";r=0;t={reset}")),
                ("ratelimit-policy", format!("\"minute\";q={quota};w=60")),
            ];
            return (
                problem(429, "rate limit exceeded for the minute window"),
                headers,
            );
        }
    };
    let headers = vec![
        ("ratelimit", format!("\"minute\";r={left};t={reset}")),
        ("ratelimit-policy", format!("\"minute\";q={quota};w=60")),
    ];
    let Some((operation, id)) = route(method, path) else {
        return (problem(404, "no such operation in this fake"), headers);
    };
    // A pod's own key reaches that pod and nothing else ("Pod-scoped API key"; what exactly it
    // may do is not documented: the fake allows reading, renaming and deleting the pod).
    if let Caller::Pod(own) = &caller
        && id.as_deref() != Some(own.as_str())
    {
        return (problem(403, "access denied"), headers);
    }
    let fault = world.fault(operation);
    if let Some(fault) = &fault
        && !fault.after_effect
    {
        return (problem(fault.status, "injected fault"), headers);
    }
    let answer = operate(world, operation, id.as_deref(), query, body, now);
    match fault {
        Some(fault) => (
            problem(fault.status, "injected fault: the answer was lost"),
            headers,
        ),
        None => (answer, headers),
    }
}

fn operate(
    world: &mut World,
    operation: Operation,
    id: Option<&str>,
    query: &BTreeMap<String, String>,
    body: &Bytes,
    now: f64,
) -> Answer {
    let id = id.unwrap_or_default();
    match operation {
        Operation::CreatePod => match checked(world, "CreatePodRequest", body) {
            Ok(body) => world.create_pod(&body, now),
            Err(answer) => answer,
        },
        Operation::UpdatePod => match checked(world, "UpdatePodRequest", body) {
            Ok(body) => world.update_pod(id, &body, now),
            Err(answer) => answer,
        },
        Operation::ListPods => {
            let pods: Vec<Value> = world
                .pods
                .values()
                .map(|pod| world.pod_json(pod, now))
                .collect();
            (200, serde_json::json!({ "pods": pods }))
        }
        Operation::GetPod => match world.pods.get(id) {
            Some(pod) => (200, world.pod_json(pod, now)),
            None => problem(404, "pod not found"),
        },
        Operation::DeletePod => world.delete_pod(id),
        Operation::ListGpuTypes => world.gpu_types(query),
        Operation::ListDataCenters => world.data_centers(),
    }
}

/// The body as JSON matching schema `name`, or RunPod's refusal: 400 for what is not JSON, 422
/// with every violation for what breaks the contract (`UnprocessableEntityError`).
fn checked(world: &mut World, name: &str, body: &Bytes) -> Result<Value, Answer> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| problem(400, format!("the body is not JSON: {e}")))?;
    let errors = spec::schema_errors(name, &value);
    if errors.is_empty() {
        return Ok(value);
    }
    world.invalid.push(format!("{name}: {}", errors.join("; ")));
    let (status, mut answer) = problem(422, "Request validation failed.");
    answer["errors"] = errors.into();
    Err((status, answer))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|k| k.trim().to_owned())
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match byte {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
