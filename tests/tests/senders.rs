//! Who sent a delivery, as handlers and configurations see it: the `Tenant` argument of a
//! multi-account receiver, and `from_env()` reading the Cog token.

use std::process::Command;
use std::sync::Mutex;

use replicate_webhook::secrets::StaticSecrets;
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{Secret, Tenants, WebhookConfig, replicate_webhook};
use replicate_webhook_tests::process::Process;
use replicate_webhook_tests::{TestServer, post};

/// What `on_succeeded` was called with: (prediction id, tenant, sender).
static SEEN: Mutex<Vec<(String, Option<String>, String)>> = Mutex::new(Vec::new());

#[replicate_webhook(model = "*", path = "/webhooks/accounts")]
mod accounts {
    use replicate_webhook::{HandlerError, Prediction, Sender, Tenant};

    async fn on_succeeded(
        p: Prediction,
        tenant: Option<Tenant>,
        sender: Sender,
    ) -> Result<(), HandlerError> {
        let tenant = tenant.map(|t| t.name().to_owned());
        super::SEEN
            .lock()
            .unwrap()
            .push((p.id, tenant, sender.as_str().to_owned()));
        Ok(())
    }
}

#[actix_rt::test]
async fn a_handler_can_take_the_tenant_it_was_called_for() {
    let (own, acme) = (Secret::generate(), Secret::generate());
    let server = TestServer::serve(WebhookConfig::new(own.clone()).tenants(Tenants::by_path(
        StaticSecrets::new().tenant("acme", acme.clone()),
    )));
    let for_acme = TestDelivery::succeeded("acme/x", serde_json::json!("x"))
        .id("msg_t1")
        .path("/webhooks/accounts/acme")
        .sign(&acme);
    assert_eq!(post(&server.base, &for_acme).await.0, 200);
    let own_delivery = TestDelivery::succeeded("acme/x", serde_json::json!("x"))
        .path("/webhooks/accounts")
        .sign(&own);
    assert_eq!(post(&server.base, &own_delivery).await.0, 200);
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].1.as_deref(), seen[0].2.as_str()),
        (Some("acme"), "tenant")
    );
    assert_eq!(
        (seen[1].1.as_deref(), seen[1].2.as_str()),
        (None, "replicate")
    );
}

#[test]
fn from_env_takes_the_cog_token_in_place_of_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    // A Cog token alone is a configuration: the receiver starts.
    let receiver = Process::start(
        env!("CARGO_BIN_EXE_slow_receiver"),
        dir.path(),
        &[("REPLICATE_WEBHOOK_COG_TOKEN", "cog-only-token")],
    );
    receiver.kill();
    // Neither a secret nor a Cog token: refused at start, as before.
    let out = Command::new(env!("CARGO_BIN_EXE_slow_receiver"))
        .current_dir(dir.path())
        .env_remove("REPLICATE_WEBHOOK_SECRET")
        .env_remove("REPLICATE_WEBHOOK_COG_TOKEN")
        .env("BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REPLICATE_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("cog-only-token"));
}

#[actix_rt::test]
async fn a_source_that_cannot_answer_gets_a_retry_not_a_refusal() {
    use replicate_webhook::secrets::{FnSecrets, SecretSourceError};
    let source = FnSecrets::new(|_tenant: String| async {
        Err::<Option<Vec<Secret>>, _>(SecretSourceError::new("database unreachable"))
    });
    let server =
        TestServer::serve(WebhookConfig::new(Secret::generate()).tenants(Tenants::by_path(source)));
    let delivery = TestDelivery::succeeded("acme/x", serde_json::json!("x"))
        .path("/webhooks/accounts/acme")
        .sign(&Secret::generate());
    let response = server.deliver_response(&delivery).await;
    assert_eq!(response.status(), 503, "Replicate retries a 503");
    assert!(replicate_webhook_tests::retry_after(&response) > 0);
}
