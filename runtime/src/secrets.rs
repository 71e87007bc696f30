//! Where a tenant's signing secrets come from, for apps that receive for many Replicate
//! accounts: each account signs with its own secret (`GET /v1/webhooks/default/secret` with that
//! account's token).
//!
//! A [`SecretSource`] answers "the secrets of tenant `t`", or that `t` is unknown (the delivery
//! then gets 404 before any store call). Three come built in: [`StaticSecrets`] (a map),
//! [`FnSecrets`] (an async function, e.g. a database lookup) and, with the `tenants` feature,
//! [`FetchedSecrets`] (fetched from the API with the tenant's own token and cached).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use crate::signature::Secret;

/// Why a source could not answer. A delivery then gets 503, so Replicate retries it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the tenant's secret could not be read: {0}")]
pub struct SecretSourceError(String);

impl SecretSourceError {
    /// An error with `message`, which must not contain a secret or a token.
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// The signing secrets of each tenant of a multi-account app.
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync + 'static {
    /// The secrets `tenant` signs with (several during a rotation), or `None` when the app has
    /// no such tenant.
    async fn secrets(&self, tenant: &str) -> Result<Option<Vec<Secret>>, SecretSourceError>;

    /// Called when a delivery for `tenant` fails verification with the secrets of
    /// [`SecretSource::secrets`]: fresher secrets when the source can get some (a rotated secret
    /// heals without a restart), `None` when it has nothing fresher. Sources that fetch must
    /// limit how often, or forged requests become a fetch storm. The default has nothing fresher.
    async fn refetch(&self, tenant: &str) -> Result<Option<Vec<Secret>>, SecretSourceError> {
        let _ = tenant;
        Ok(None)
    }

    /// `tenant`'s Replicate API token, which the reconciler polls that tenant's predictions
    /// with (each account sees only its own); `None` when the app has none, and then the
    /// tenant's lost webhooks are not recovered (a log line says so). The default has none.
    async fn api_token(&self, tenant: &str) -> Result<Option<SecretString>, SecretSourceError> {
        let _ = tenant;
        Ok(None)
    }
}

/// Secrets known up front, by tenant, and the API tokens the reconciler polls with.
#[derive(Clone, Default)]
pub struct StaticSecrets {
    secrets: HashMap<String, Vec<Secret>>,
    tokens: HashMap<String, SecretString>,
}

impl StaticSecrets {
    /// No tenants yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tenant` with `secret` (call again for a second secret during a rotation).
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>, secret: Secret) -> Self {
        self.secrets.entry(tenant.into()).or_default().push(secret);
        self
    }

    /// `tenant`'s Replicate API token, for the reconciler to poll its predictions with.
    #[must_use]
    pub fn api_token(mut self, tenant: impl Into<String>, token: impl Into<String>) -> Self {
        self.tokens
            .insert(tenant.into(), SecretString::from(token.into()));
        self
    }
}

impl fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tenants: Vec<_> = self.secrets.keys().collect();
        tenants.sort();
        f.debug_struct("StaticSecrets")
            .field("tenants", &tenants)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl SecretSource for StaticSecrets {
    async fn secrets(&self, tenant: &str) -> Result<Option<Vec<Secret>>, SecretSourceError> {
        Ok(self.secrets.get(tenant).cloned())
    }

    async fn api_token(&self, tenant: &str) -> Result<Option<SecretString>, SecretSourceError> {
        Ok(self.tokens.get(tenant).cloned())
    }
}

type Lookup = dyn Fn(String) -> BoxFuture<'static, Result<Option<Vec<Secret>>, SecretSourceError>>
    + Send
    + Sync;

/// Secrets from an async function of the tenant, such as a database lookup; called for every
/// delivery, so cache inside when it is slow.
#[derive(Clone)]
pub struct FnSecrets(Arc<Lookup>);

impl FnSecrets {
    /// A source calling `lookup` with the tenant's name.
    pub fn new<F, Fut>(lookup: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Vec<Secret>>, SecretSourceError>> + Send + 'static,
    {
        Self(Arc::new(move |tenant| Box::pin(lookup(tenant))))
    }
}

impl fmt::Debug for FnSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSecrets(..)")
    }
}

#[async_trait::async_trait]
impl SecretSource for FnSecrets {
    async fn secrets(&self, tenant: &str) -> Result<Option<Vec<Secret>>, SecretSourceError> {
        (self.0)(tenant.to_owned()).await
    }
    // No `refetch`: the function is asked on every delivery, so it already gave its newest.
}

#[cfg(feature = "tenants")]
mod fetched;
#[cfg(feature = "tenants")]
#[cfg_attr(docsrs, doc(cfg(feature = "tenants")))]
pub use fetched::FetchedSecrets;

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn static_and_function_sources_answer_by_tenant() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let map = StaticSecrets::new()
            .tenant("acme", secret.clone())
            .api_token("acme", "r8_acme_token");
        assert_eq!(map.secrets("acme").await.unwrap().unwrap().len(), 1);
        assert!(map.secrets("other").await.unwrap().is_none());
        assert!(
            map.refetch("acme").await.unwrap().is_none(),
            "nothing fresher"
        );
        // The trait's method, not the builder of the same name.
        let token = |tenant| SecretSource::api_token(&map, tenant);
        assert!(token("acme").await.unwrap().is_some());
        assert!(token("other").await.unwrap().is_none());
        let shown = format!("{map:?}");
        assert!(
            shown.contains("acme") && !shown.contains("MfKQ9r8") && !shown.contains("r8_acme"),
            "{shown}"
        );

        let function = FnSecrets::new(move |tenant: String| {
            let secret = secret.clone();
            async move {
                match tenant.as_str() {
                    "acme" => Ok(Some(vec![secret])),
                    "down" => Err(SecretSourceError::new("database unreachable")),
                    _ => Ok(None),
                }
            }
        });
        assert!(function.secrets("acme").await.unwrap().is_some());
        assert!(
            function.api_token("acme").await.unwrap().is_none(),
            "a function of secrets knows no token"
        );
        assert!(function.secrets("other").await.unwrap().is_none());
        let err = function.secrets("down").await.unwrap_err();
        assert!(err.to_string().contains("database unreachable"), "{err}");
    }
}
