//! The GitHub runner API against wiremock: request shapes, scopes, paging, deletes.

use gha_runner_core::{GitHub, RunnerScope};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ghp_test_secret_token_value";

fn repo() -> RunnerScope {
    RunnerScope::Repo {
        owner: "octo".into(),
        repo: "gpu".into(),
    }
}

fn org(group: Option<u64>) -> RunnerScope {
    RunnerScope::Org {
        org: "octo".into(),
        group_id: group,
    }
}

fn github(server: &MockServer, scope: RunnerScope) -> GitHub {
    GitHub::new(
        &SecretString::from(TOKEN),
        Some(&server.uri()),
        Some("https://ghes.example.com/"),
        scope,
    )
    .unwrap()
}

fn runner(id: u64, name: &str, status: &str) -> Value {
    json!({"id": id, "name": name, "os": "Linux", "status": status, "busy": false,
           "labels": [{"id": 1, "name": "self-hosted", "type": "read-only"}, {"id": 2, "name": name, "type": "custom"}]})
}

#[tokio::test]
async fn tokens_are_requested_for_the_scope_and_kept_secret() {
    let server = MockServer::start().await;
    let answer = ResponseTemplate::new(201).set_body_json(
        json!({"token": "AABBCC-registration", "expires_at": "2030-01-01T00:00:00Z"}),
    );
    Mock::given(method("POST"))
        .and(path("/repos/octo/gpu/actions/runners/registration-token"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(answer.clone())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orgs/octo/actions/runners/remove-token"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let token = github(&server, repo()).registration_token().await.unwrap();
    assert_eq!(token.token.expose_secret(), "AABBCC-registration");
    assert_eq!(token.expires_at.to_string(), "2030-01-01T00:00:00Z");
    github(&server, org(None)).remove_token().await.unwrap();
    let shown = format!("{:?} {token:?}", github(&server, repo()));
    assert!(
        !shown.contains(TOKEN) && !shown.contains("AABBCC"),
        "{shown}"
    );
}

#[tokio::test]
async fn jit_configs_carry_name_group_and_labels() {
    let server = MockServer::start().await;
    let labels = vec!["lambda-1-abc".to_owned(), "gpu".to_owned()];
    for (route, group) in [
        ("/repos/octo/gpu/actions/runners/generate-jitconfig", 1),
        ("/orgs/octo/actions/runners/generate-jitconfig", 7),
    ] {
        Mock::given(method("POST"))
            .and(path(route))
            .and(body_json(
                json!({"name": "lambda-1-abc-0-0", "runner_group_id": group, "labels": labels}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "runner": runner(42, "lambda-1-abc-0-0", "offline"),
                "encoded_jit_config": "ZW5jb2RlZC1qaXQ="
            })))
            .expect(1)
            .mount(&server)
            .await;
    }
    let jit = github(&server, repo())
        .jit_config("lambda-1-abc-0-0", &labels)
        .await
        .unwrap();
    assert_eq!((jit.id, jit.name.as_str()), (42, "lambda-1-abc-0-0"));
    assert_eq!(jit.config.expose_secret(), "ZW5jb2RlZC1qaXQ=");
    assert!(!format!("{jit:?}").contains("ZW5jb2Rl"));
    github(&server, org(Some(7)))
        .jit_config("lambda-1-abc-0-0", &labels)
        .await
        .unwrap();
}

#[tokio::test]
async fn runner_lists_are_followed_past_one_hundred() {
    let server = MockServer::start().await;
    let first: Vec<Value> = (0..100)
        .map(|i| runner(i, &format!("r{i}"), "online"))
        .collect();
    let second: Vec<Value> = (100..105)
        .map(|i| runner(i, &format!("r{i}"), "offline"))
        .collect();
    let next = format!(
        "<{}/repos/octo/gpu/actions/runners?per_page=100&page=2>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .and(query_param("page", "1"))
        .and(query_param("per_page", "100"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(json!({"total_count": 105, "runners": first})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 105, "runners": second})),
        )
        .mount(&server)
        .await;
    let runners = github(&server, repo()).list_runners().await.unwrap();
    assert_eq!(runners.len(), 105);
    assert!(runners[0].is_online() && !runners[104].is_online());
    assert_eq!(runners[7].labels, ["self-hosted", "r7"]);
}

#[tokio::test]
async fn deleting_a_runner_that_is_gone_is_fine_and_other_failures_are_named() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/orgs/octo/actions/runners/1"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/orgs/octo/actions/runners/2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/orgs/octo/actions/runners/3"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"message": "Must have admin rights"})),
        )
        .mount(&server)
        .await;
    let github = github(&server, org(None));
    github.delete_runner(1).await.unwrap();
    github.delete_runner(2).await.unwrap();
    let error = github.delete_runner(3).await.unwrap_err();
    assert_eq!(error.status, Some(403));
    assert!(
        error
            .to_string()
            .starts_with("GitHub: delete runner 3 failed: HTTP 403: Must have admin rights — the token cannot manage self-hosted runners"),
        "{error}"
    );
    assert!(error.is_permanent());
}

#[tokio::test]
async fn a_passing_github_failure_is_sent_again_and_a_lasting_one_is_named() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .respond_with(ResponseTemplate::new(502).set_body_json(json!({"message": "Bad Gateway"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 1, "runners": [runner(5, "r", "online")]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/octo/gpu/actions/runners/registration-token"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"message": "Unavailable"})))
        .expect(3)
        .mount(&server)
        .await;
    let github = github(&server, repo());
    assert_eq!(github.list_runners().await.unwrap().len(), 1);
    let error = github.registration_token().await.unwrap_err();
    assert_eq!(
        error.status,
        Some(503),
        "sent three times, then named: {error}"
    );
}

#[tokio::test]
async fn a_jit_runner_registered_by_a_lost_answer_is_replaced() {
    let server = MockServer::start().await;
    let route = "/repos/octo/gpu/actions/runners/generate-jitconfig";
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(409).set_body_json(
            json!({"message": "Already exists - A runner with the same name already exists."}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "runner": runner(43, "lambda-1-abc-0-0", "offline"),
            "encoded_jit_config": "bmV3"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total_count": 2,
            "runners": [runner(42, "lambda-1-abc-0-0", "offline"), runner(7, "other", "online")]
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/repos/octo/gpu/actions/runners/42"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let jit = github(&server, repo())
        .jit_config("lambda-1-abc-0-0", &["x".to_owned()])
        .await
        .unwrap();
    assert_eq!(jit.id, 43);
}

#[tokio::test]
async fn scopes_and_registration_urls() {
    assert_eq!(
        RunnerScope::parse("repo", "octo/gpu", None).unwrap(),
        repo()
    );
    assert_eq!(
        RunnerScope::parse("org", "octo/gpu", Some(3)).unwrap(),
        org(Some(3))
    );
    assert!(RunnerScope::parse("repo", "octo", None).is_err());
    assert!(
        RunnerScope::parse("enterprise", "octo/gpu", None)
            .unwrap_err()
            .to_string()
            .contains("`repo` or `org`")
    );
    let github = GitHub::new(
        &SecretString::from(TOKEN),
        None,
        Some("https://ghes.example.com/"),
        org(None),
    )
    .unwrap();
    assert_eq!(github.registration_url(), "https://ghes.example.com/octo");
}

#[tokio::test]
async fn the_served_runner_is_asked_for_with_the_token_in_the_scope() {
    let server = MockServer::start().await;
    let sha = "ab".repeat(32);
    let applications = json!([
        {"os": "linux", "architecture": "x64", "download_url": "https://ghes.example.com/r.tar.gz",
         "filename": "actions-runner-linux-x64-2.329.1.tar.gz", "sha256_checksum": sha,
         "temp_download_token": "DLTOKEN"},
        {"os": "win", "architecture": "x64", "download_url": "https://x/w.zip",
         "filename": "actions-runner-win-x64-2.329.1.zip"}
    ]);
    for route in [
        "/repos/octo/gpu/actions/runners/downloads",
        "/orgs/octo/actions/runners/downloads",
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(applications.clone()))
            .expect(1)
            .mount(&server)
            .await;
    }
    for scope in [repo(), org(Some(3))] {
        let package = github(&server, scope).served_runner().await.unwrap();
        let x64 = package.x64.as_ref().unwrap();
        assert_eq!(package.version(), "2.329.1");
        assert_eq!(x64.url, "https://ghes.example.com/r.tar.gz");
        assert_eq!(x64.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(
            x64.token.as_ref().map(ExposeSecret::expose_secret),
            Some("DLTOKEN")
        );
        assert!(package.arm64.is_none(), "no linux-arm64 was offered");
    }
}

#[tokio::test]
async fn a_pinned_runner_comes_from_its_release_notes_without_the_token() {
    let server = MockServer::start().await;
    let notes = format!(
        "Fixes\n<!-- BEGIN SHA linux-arm64 -->{}<!-- END SHA linux-arm64 -->",
        "c".repeat(64)
    );
    Mock::given(method("GET"))
        .and(path("/releases/tags/v2.328.0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"body": notes})))
        .mount(&server)
        .await;
    let releases = format!("{}/releases", server.uri());
    let package = GitHub::pinned_runner("2.328.0", &releases, "https://dl.example")
        .await
        .unwrap();
    assert!(package.x64.is_none());
    assert_eq!(
        package.arm64.unwrap().url,
        "https://dl.example/v2.328.0/actions-runner-linux-arm64-2.328.0.tar.gz"
    );
    for request in server.received_requests().await.unwrap() {
        assert!(
            !request.headers.contains_key("authorization"),
            "no token for a public release"
        );
    }
    let missing = GitHub::pinned_runner("9.9.9", &releases, "https://dl.example")
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("there is no runner v9.9.9"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_runner_group_id_is_looked_up_by_name_for_config_sh() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/octo/actions/runner-groups/7"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 7, "name": "gpu machines", "visibility": "all"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        github(&server, org(Some(7)))
            .runner_group_name(7)
            .await
            .unwrap(),
        "gpu machines"
    );
    let error = github(&server, repo())
        .runner_group_name(7)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("organization"), "{error}");
}

#[tokio::test]
async fn a_runner_is_asked_for_by_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .and(query_param("name", "lambda-1-abc-0-0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"total_count": 1, "runners": [runner(9, "lambda-1-abc-0-0", "online")]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .and(query_param("name", "lambda-1-abc-1-0"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "runners": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let github = github(&server, repo());
    let found = github
        .runner_named("lambda-1-abc-0-0")
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_online() && found.id == 9);
    assert!(
        github
            .runner_named("lambda-1-abc-1-0")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_and_a_long_one_is_named() {
    // docs.github.com, "Rate limits for the REST API": 403 or 429 with this message, and
    // `retry-after` in seconds.
    let limited = |status: u16, retry_after: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}))
            .insert_header("retry-after", retry_after)
    };
    let server = MockServer::start().await;
    let token = ResponseTemplate::new(201).set_body_json(
        json!({"token": "AABBCC-registration", "expires_at": "2030-01-01T00:00:00Z"}),
    );
    for status in [403, 429] {
        Mock::given(method("POST"))
            .and(path("/repos/octo/gpu/actions/runners/registration-token"))
            .respond_with(limited(status, "1"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/repos/octo/gpu/actions/runners/registration-token"))
        .respond_with(token)
        .expect(1)
        .mount(&server)
        .await;
    // The 429 then the 403 (the later mount answers first), each waited out: the third call
    // gets the token.
    let github = github(&server, repo());
    github.registration_token().await.unwrap();

    // A limit that asks for longer than a launch should wait is not waited out: one call.
    Mock::given(method("GET"))
        .and(path("/repos/octo/gpu/actions/runners"))
        .respond_with(limited(403, "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let error = github.list_runners().await.unwrap_err();
    assert!(error.to_string().contains("asks for 3600 s"), "{error}");

    // A 403 that is no rate limit is a refusal: not sent again.
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/repos/octo/gpu/actions/runners/7"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(
                json!({"message": "Resource not accessible by personal access token"}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let github = self::github(&server, repo());
    let error = github.delete_runner(7).await.unwrap_err();
    assert_eq!(error.status, Some(403), "{error}");
}
