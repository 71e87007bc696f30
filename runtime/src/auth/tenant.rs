//! Tenants: the Replicate accounts of a multi-account app, each signing with its own secret.
//!
//! The delivery names its tenant in its path (`/webhooks/replicate/{tenant}`) or in a query
//! parameter the app chooses (`/webhooks/replicate?account={tenant}`); either is part of the
//! webhook URL the app gave Replicate for that account. The tenant's secrets come from the
//! app's [`SecretSource`]; a delivery that verifies with them was sent by that account, so a
//! delivery of account A sent to B's URL fails B's secret.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};

use super::Sender;
use crate::secrets::SecretSource;

/// The route parameter holding the tenant, for tenants named by path.
pub(crate) const PATH_PARAMETER: &str = "tenant";

/// The tenant a delivery was sent for. A handler can take it as an argument (or
/// `Option<Tenant>` on a path that also takes the app's own deliveries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// A tenant named `name`.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// Its name, as the delivery's URL gave it.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a handler's `Tenant` argument could not be given.
#[derive(Debug, thiserror::Error)]
#[error("this delivery names no tenant: it was signed with the app's own secret, or sent by Cog")]
pub struct NoTenant;

impl actix_web::ResponseError for NoTenant {}

impl FromRequest for Tenant {
    type Error = NoTenant;
    type Future = Ready<Result<Self, NoTenant>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.extensions().get::<Sender>() {
            Some(Sender::Tenant(tenant)) => Ok(tenant.clone()),
            _ => Err(NoTenant),
        })
    }
}

/// Where deliveries name their tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// The last path segment: each module's path gets a `{path}/{tenant}` route.
    Path,
    /// This query parameter.
    Query(String),
}

/// A multi-account receiver: how deliveries name their tenant, and where each tenant's secrets
/// come from. Give it to [`crate::WebhookConfig::tenants`].
#[derive(Clone)]
pub struct Tenants {
    named: Named,
    pub(crate) source: Arc<dyn SecretSource>,
}

impl fmt::Debug for Tenants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenants")
            .field("named", &self.named)
            .finish_non_exhaustive()
    }
}

impl Tenants {
    /// Tenants named by the last path segment: a module on `/webhooks/replicate` also takes
    /// `/webhooks/replicate/{tenant}`.
    pub fn by_path(source: impl SecretSource) -> Self {
        Self {
            named: Named::Path,
            source: Arc::new(source),
        }
    }

    /// Tenants named by the query parameter `parameter`: `/webhooks/replicate?account=acme`.
    pub fn by_query(parameter: impl Into<String>, source: impl SecretSource) -> Self {
        Self {
            named: Named::Query(parameter.into()),
            source: Arc::new(source),
        }
    }

    /// Whether each path also gets a `{path}/{tenant}` route.
    pub(crate) fn by_path_segment(&self) -> bool {
        self.named == Named::Path
    }

    /// The tenant `req` names, if any: a delivery naming none is the app's own.
    pub(crate) fn named(&self, req: &HttpRequest) -> Option<Tenant> {
        match &self.named {
            Named::Path => req.match_info().get(PATH_PARAMETER).map(Tenant::new),
            Named::Query(parameter) => url::form_urlencoded::parse(req.query_string().as_bytes())
                .find(|(key, _)| key == parameter)
                .map(|(_, value)| Tenant::new(&value)),
        }
        .filter(|t| !t.name().is_empty())
    }
}
