//! Authentication, the first step of a delivery, with one output: who sent it ([`Sender`]),
//! which also names the dedupe namespace its keys live in.
//!
//! Replicate signs with Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`); a self-hosted Cog container sends a bearer token instead ([`cog`]).
//! What costs nothing is checked first, so a request that cannot be accepted is refused before
//! its body costs any memory.

pub(crate) mod cog;
pub(crate) mod tenant;

use std::borrow::Cow;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse};

use crate::answer;
use crate::body::{self, BodyError};
use crate::envelope::Envelope;
use crate::journal::{Noted as _, Outcome as Journaled};
use crate::receiver::{Checks, Endpoint};
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, VerifyError};

/// Who sent a delivery. A handler can take it as an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sender {
    /// Replicate, signed with one of the receiver's secrets.
    Replicate,
    /// One of the Replicate accounts of a multi-account app (see [`tenant::Tenants`]), signed
    /// with that account's secret.
    Tenant(tenant::Tenant),
    /// A self-hosted Cog container, authenticated by its bearer token.
    Cog,
}

impl Sender {
    /// The prediction id as the dedupe store knows it: Replicate's ids as they are (the keys of
    /// earlier versions stay valid), Cog's apart, since a Cog container chooses its own ids.
    pub(crate) fn scope<'a>(&self, prediction: &'a str) -> Cow<'a, str> {
        match self {
            Self::Replicate => Cow::Borrowed(prediction),
            Self::Tenant(tenant) => Cow::Owned(scoped(tenant, prediction)),
            Self::Cog => Cow::Owned(format!("cog/{prediction}")),
        }
    }

    /// What identifies one delivery across its retries: Replicate's `webhook-id`, or for Cog,
    /// which sends none, one derived from the prediction's id, status and progress.
    pub(crate) fn delivery_id<'a>(
        &self,
        webhook_id: &'a str,
        envelope: &Envelope<'_>,
    ) -> Cow<'a, str> {
        match self {
            Self::Cog => Cow::Owned(cog::delivery_id(
                envelope.id(),
                envelope.status().as_str(),
                envelope.output(),
                envelope.logs_len(),
            )),
            Self::Replicate => Cow::Borrowed(webhook_id),
            Self::Tenant(tenant) => Cow::Owned(scoped(tenant, webhook_id)),
        }
    }

    /// `replicate` or `cog`, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Replicate => "replicate",
            Self::Tenant(_) => "tenant",
            Self::Cog => "cog",
        }
    }

    /// Adapts an answer to what this sender retries: coglet never retries a 409.
    pub(crate) fn retryable(&self, response: HttpResponse) -> HttpResponse {
        match self {
            Self::Cog => cog::retryable_for_coglet(response),
            Self::Replicate | Self::Tenant(_) => response,
        }
    }

    /// Whether the reconciler watches its predictions: Replicate's and a tenant's (polled with
    /// that tenant's token), never Cog's, which no API can be asked about.
    #[cfg(feature = "client")]
    pub(crate) fn reconciled(&self) -> bool {
        !matches!(self, Self::Cog)
    }

    /// The tenant, for one of a multi-account app's accounts.
    pub fn tenant(&self) -> Option<&tenant::Tenant> {
        match self {
            Self::Tenant(tenant) => Some(tenant),
            _ => None,
        }
    }
}

/// `id` in `tenant`'s namespace; the name's length first, so no two (tenant, id) pairs meet.
pub(crate) fn scoped(tenant: &tenant::Tenant, id: &str) -> String {
    format!("t{}:{}/{id}", tenant.name().len(), tenant.name())
}

/// The tenant and the id a [`scoped`] key holds; `None` for a key in no tenant's namespace
/// (Replicate's ids hold neither `:` nor `/`).
#[cfg(any(feature = "client", feature = "dashboard"))]
pub(crate) fn unscoped(key: &str) -> Option<(&str, &str)> {
    let (len, rest) = key.strip_prefix('t')?.split_once(':')?;
    let (tenant, id) = rest.split_at_checked(len.parse().ok()?)?;
    Some((tenant, id.strip_prefix('/')?))
}

/// The `webhook-id` header, or empty.
pub(crate) fn webhook_id(req: &HttpRequest) -> &str {
    req.headers()
        .get(&ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// No delivery without a sender: the receiver sets it before any handler runs.
impl FromRequest for Sender {
    type Error = actix_web::error::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Self>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("no webhook sender")),
        )
    }
}

/// An authenticated delivery: who sent it, and its body.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub(crate) sender: Sender,
    pub(crate) body: Bytes,
}

// Parsed once, here, rather than from `&str` on every lookup.
static ID: HeaderName = HeaderName::from_static(HEADER_ID);
static TIMESTAMP: HeaderName = HeaderName::from_static(HEADER_TIMESTAMP);
static SIGNATURE: HeaderName = HeaderName::from_static(HEADER_SIGNATURE);

/// Reads and authenticates a delivery: the declared size, then the headers, then the body and
/// its MAC. Every refusal is the answer to send.
pub(crate) async fn authenticate(
    req: &HttpRequest,
    payload: web::Payload,
    endpoint: &Endpoint,
) -> Result<Authenticated, HttpResponse> {
    let checks = &*endpoint.checks;
    let declared =
        body::declared_length(req, &checks.body).map_err(|e| body_refused(checks, &e))?;
    // `None` for a Cog delivery, whose bearer token was already the whole proof.
    let signed = if let Some(token) = endpoint.cog_token()
        && cog::is_cog_request(req.headers())
    {
        // One `Authorization` header, and the token in it.
        let mut given = req.headers().get_all(header::AUTHORIZATION);
        if !(given.next().is_some_and(|value| token.accepts(value)) && given.next().is_none()) {
            return Err(refuse(
                checks,
                StatusCode::UNAUTHORIZED,
                "bearer-token-mismatch",
                "the bearer token is not the Cog token this receiver accepts",
            ));
        }
        None
    } else {
        let signed = signed_headers(req.headers()).map_err(|e| unsigned(checks, &e))?;
        checks
            .verifier
            .check_headers(signed.0, signed.1, signed.2)
            .map_err(|e| unsigned(checks, &e))?;
        Some(signed)
    };
    // A tenant's secrets are asked for only once the headers could be a real delivery; an
    // unknown tenant is refused before its body is read or any store is asked.
    let tenant = if let Some(tenants) = &checks.tenants
        && signed.is_some()
        && let Some(tenant) = tenants.named(req)
    {
        match tenants.source.secrets(tenant.name()).await {
            Ok(Some(secrets)) => Some((tenants, tenant, secrets)),
            Ok(None) => {
                return Err(refuse(
                    checks,
                    StatusCode::NOT_FOUND,
                    "unknown-tenant",
                    "no such tenant",
                ));
            }
            Err(e) => return Err(source_unavailable(&e)),
        }
    } else {
        None
    };
    let (body, reservation) = body::read(payload, declared, &checks.body)
        .await
        .map_err(|e| body_refused(checks, &e))?;
    let sender = match (signed, tenant) {
        (Some((id, timestamp, signature)), None) => {
            checks
                .verifier
                .verify(id, timestamp, signature, &body)
                .map_err(|e| unsigned(checks, &e))?;
            Sender::Replicate
        }
        (Some(signed), Some((tenants, tenant, secrets))) => {
            verify_tenant(checks, tenants, &tenant, secrets, signed, &body).await?;
            Sender::Tenant(tenant)
        }
        (None, _) => Sender::Cog,
    };
    // Authenticated: this body is the sender's, so it no longer counts against the budget that
    // bounds what unauthenticated clients can make the receiver hold.
    drop(reservation);
    req.extensions_mut().insert(sender.clone());
    Ok(Authenticated { sender, body })
}

/// The three `webhook-*` headers, each present once and ASCII.
fn signed_headers(headers: &HeaderMap) -> Result<(&str, &str, &str), VerifyError> {
    Ok((
        single_header(headers, &ID)?,
        single_header(headers, &TIMESTAMP)?,
        single_header(headers, &SIGNATURE)?,
    ))
}

fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &'static HeaderName,
) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name);
    let value = values
        .next()
        .ok_or(VerifyError::MissingHeader(name.as_str()))?;
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader(name.as_str()));
    }
    value
        .to_str()
        .map_err(|_| VerifyError::InvalidHeader(name.as_str()))
}

/// Verifies a tenant's delivery with its secrets; when they fail, once more with the fresher
/// ones the source may have (a rotated secret), which the source fetches at a bounded rate.
async fn verify_tenant(
    checks: &Checks,
    tenants: &tenant::Tenants,
    tenant: &tenant::Tenant,
    secrets: Vec<crate::signature::Secret>,
    (id, timestamp, signature): (&str, &str, &str),
    body: &[u8],
) -> Result<(), HttpResponse> {
    let tolerance = checks.verifier.current_tolerance();
    let verify = |secrets| {
        crate::signature::Verifier::new(secrets)
            .tolerance(tolerance)
            .verify(id, timestamp, signature, body)
    };
    let Err(first) = verify(secrets) else {
        return Ok(());
    };
    match tenants.source.refetch(tenant.name()).await {
        Ok(Some(fresh)) => verify(fresh).map_err(|e| unsigned(checks, &e)),
        Ok(None) => Err(unsigned(checks, &first)),
        Err(e) => Err(source_unavailable(&e)),
    }
}

fn source_unavailable(e: &crate::secrets::SecretSourceError) -> HttpResponse {
    tracing::error!(error = %e, "tenant secret unavailable; delivery refused");
    answer::retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        5,
        "the tenant's secret is unavailable; retry later",
    )
}

fn unsigned(checks: &Checks, e: &VerifyError) -> HttpResponse {
    refuse(checks, StatusCode::UNAUTHORIZED, e.reason(), e.to_string())
}

/// Answers a request that did not prove who sent it, logging at a bounded rate.
pub(crate) fn refuse(
    checks: &Checks,
    status: StatusCode,
    reason: &str,
    message: impl Into<Cow<'static, str>>,
) -> HttpResponse {
    checks.refusals.record(status.as_u16(), reason);
    if let Some(journal) = &checks.journal {
        journal.refused(status.as_u16(), reason);
    }
    answer::text(status, message).noted(Journaled::Refused)
}

fn body_refused(checks: &Checks, e: &BodyError) -> HttpResponse {
    match e {
        BodyError::TooLarge(limit) => refuse(
            checks,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("body exceeds {limit} bytes"),
        ),
        BodyError::BadLength => refuse(
            checks,
            StatusCode::BAD_REQUEST,
            "invalid-content-length",
            "invalid Content-Length",
        ),
        BodyError::TooSlow => refuse(
            checks,
            StatusCode::REQUEST_TIMEOUT,
            "body-too-slow",
            "the body did not arrive in time",
        ),
        BodyError::Busy => {
            checks.refusals.record(503, "unverified-budget-spent");
            if let Some(journal) = &checks.journal {
                journal.refused(503, "unverified-budget-spent");
            }
            answer::retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                1,
                "too many bodies being received; retry later",
            )
        }
        BodyError::Broken(e) => refuse(
            checks,
            StatusCode::BAD_REQUEST,
            "body-unreadable",
            format!("could not read body: {e}"),
        ),
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_key_gives_back_its_tenant_and_id() {
        for (tenant, id) in [("acme", "p1"), ("a:b/c", "x/y"), ("", "z")] {
            let key = scoped(&tenant::Tenant::new(tenant), id);
            assert_eq!(unscoped(&key), Some((tenant, id)), "{key}");
        }
        for plain in [
            "ufawqhfynnddngldkgtslldrkq",
            "cog/p1",
            "t9:short/x",
            "tx:a/b",
        ] {
            assert_eq!(unscoped(plain), None, "{plain}");
        }
    }
}
