//! A verified delivery: what the request path carries from authentication to the answer.

use actix_web::HttpRequest;
use actix_web::web::Bytes;

use crate::auth::Sender;
use crate::envelope::Envelope;

/// One delivery that passed authentication and whose envelope decoded. Every step after those
/// reads it from here, so none reads the request again for what an earlier step already knew.
pub(crate) struct Verified<'a> {
    /// The request, for its path, query and headers (handlers extract from it).
    pub(crate) req: &'a HttpRequest,
    /// The body, byte for byte as signed.
    pub(crate) body: &'a Bytes,
    /// Who sent it, and so the namespace of its dedupe keys.
    pub(crate) sender: &'a Sender,
    /// The `webhook-id` header, read once (empty for Cog, which sends none).
    pub(crate) webhook_id: &'a str,
    /// The decoded envelope; the handler takes its typed body out of it.
    pub(crate) envelope: Envelope<'a>,
}
