//! Secrets fetched with each tenant's own API token, cached, and fetched again (at a bounded
//! rate) when a signature fails, so a rotated secret heals without a restart and forged
//! requests cannot turn into a storm of API calls.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;

use super::{SecretSource, SecretSourceError};
use crate::client::Client;
use crate::signature::Secret;

type Tokens =
    dyn Fn(String) -> BoxFuture<'static, Result<Option<String>, SecretSourceError>> + Send + Sync;

/// Why a fetch gave no secret.
enum Miss {
    /// The app has no token for this tenant: an unknown tenant, not cached.
    Unknown,
    Failed(SecretSourceError),
}

/// Each tenant's secret from `GET /v1/webhooks/default/secret`, called with the tenant's own
/// Replicate API token, which the app looks up (from its database, say) with the function given
/// to [`FetchedSecrets::new`]. A tenant without a token is unknown: no API call is made.
/// Feature `tenants`.
///
/// Secrets are cached (by default for 1 024 tenants, least recently used out first; concurrent
/// misses for one tenant make one call). When a signature fails, the tenant's secret is fetched
/// again, at most once per [`FetchedSecrets::refetch_period`] (default 30 s) per tenant.
#[derive(Clone)]
pub struct FetchedSecrets {
    tokens: Arc<Tokens>,
    base: String,
    cache: Arc<quick_cache::sync::Cache<String, Vec<Secret>>>,
    refetches: Arc<DefaultKeyedRateLimiter<String>>,
}

impl FetchedSecrets {
    /// The default refetch period, per tenant.
    pub const DEFAULT_REFETCH_PERIOD: Duration = Duration::from_secs(30);
    /// The default number of tenants whose secrets are cached.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A source asking `token` for a tenant's API token (`None`: no such tenant), against
    /// `https://api.replicate.com/v1`.
    pub fn new<F, Fut>(token: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<String>, SecretSourceError>> + Send + 'static,
    {
        Self {
            tokens: Arc::new(move |tenant| Box::pin(token(tenant))),
            base: crate::client::DEFAULT_BASE_URL.to_owned(),
            cache: Arc::new(quick_cache::sync::Cache::new(Self::DEFAULT_CAPACITY)),
            refetches: Arc::new(RateLimiter::keyed(quota(Self::DEFAULT_REFETCH_PERIOD))),
        }
    }

    /// The API's base URL (the simulator's, in tests).
    #[must_use]
    pub fn base_url(mut self, base: impl Into<String>) -> Self {
        self.base = base.into();
        self
    }

    /// How many tenants' secrets are kept.
    #[must_use]
    pub fn capacity(mut self, tenants: usize) -> Self {
        self.cache = Arc::new(quick_cache::sync::Cache::new(tenants.max(1)));
        self
    }

    /// The least time between two refetches of one tenant's secret after failed signatures.
    #[must_use]
    pub fn refetch_period(mut self, period: Duration) -> Self {
        self.refetches = Arc::new(RateLimiter::keyed(quota(period)));
        self
    }

    /// A Replicate client acting as `tenant`: its own token, this source's base URL (so its
    /// predictions are created, read and cancelled in that account), and the tenant's namespace
    /// (through [`crate::WebhookConfig::watching`], its predictions are watched as the tenant's
    /// and polled with its token); `None` for an unknown tenant.
    pub async fn client(&self, tenant: &str) -> Result<Option<Client>, SecretSourceError> {
        let Some(token) = (self.tokens)(tenant.to_owned()).await? else {
            return Ok(None);
        };
        Client::new(&self.base, Some(token))
            .map(|client| Some(client.tenant(crate::Tenant::new(tenant))))
            .map_err(SecretSourceError::new)
    }

    /// Fetches `tenant`'s secret with its token.
    async fn fetch(&self, tenant: &str) -> Result<Vec<Secret>, Miss> {
        let token = (self.tokens)(tenant.to_owned())
            .await
            .map_err(Miss::Failed)?
            .ok_or(Miss::Unknown)?;
        let client = Client::new(&self.base, Some(token))
            .map_err(|e| Miss::Failed(SecretSourceError::new(e)))?;
        let secret = client
            .default_secret()
            .await
            .map_err(|e| Miss::Failed(SecretSourceError::new(e)))?;
        tracing::info!(tenant, "tenant's webhook secret fetched");
        Ok(vec![secret])
    }
}

/// One refetch per `period`, no burst.
fn quota(period: Duration) -> Quota {
    Quota::with_period(period.max(Duration::from_millis(1)))
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::MIN)
}

impl fmt::Debug for FetchedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedSecrets")
            .field("base", &self.base)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl SecretSource for FetchedSecrets {
    async fn secrets(&self, tenant: &str) -> Result<Option<Vec<Secret>>, SecretSourceError> {
        match self
            .cache
            .get_or_insert_async(tenant, self.fetch(tenant))
            .await
        {
            Ok(secrets) => Ok(Some(secrets)),
            Err(Miss::Unknown) => Ok(None),
            Err(Miss::Failed(e)) => Err(e),
        }
    }

    async fn refetch(&self, tenant: &str) -> Result<Option<Vec<Secret>>, SecretSourceError> {
        if self.refetches.check_key(&tenant.to_owned()).is_err() {
            return Ok(None);
        }
        self.refetches.retain_recent();
        match self.fetch(tenant).await {
            Ok(secrets) => {
                self.cache.insert(tenant.to_owned(), secrets.clone());
                Ok(Some(secrets))
            }
            Err(Miss::Unknown) => Ok(None),
            Err(Miss::Failed(e)) => Err(e),
        }
    }

    async fn api_token(&self, tenant: &str) -> Result<Option<SecretString>, SecretSourceError> {
        Ok((self.tokens)(tenant.to_owned())
            .await?
            .map(SecretString::from))
    }
}
