//! The dashboard's routes under its prefix, and the headers every answer carries.

use actix_web::middleware::DefaultHeaders;
use actix_web::web;

use super::{Mount, api, assets, live, pages};

/// Nothing from elsewhere: scripts, styles and requests only from this origin, no frames.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl Mount {
    /// Adds the dashboard's routes to `cfg`.
    pub(crate) fn mount(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::scope(&self.prefix)
                .app_data(web::Data::new(self.clone()))
                .wrap(
                    DefaultHeaders::new()
                        .add(("content-security-policy", CSP))
                        .add(("x-content-type-options", "nosniff"))
                        .add(("referrer-policy", "no-referrer"))
                        .add(("x-frame-options", "DENY"))
                        .add(("cache-control", "no-store")),
                )
                .route("", web::get().to(pages::overview))
                .route("/", web::get().to(pages::overview))
                .route("/login", web::get().to(pages::login_form))
                .route("/login", web::post().to(pages::login))
                .route("/logout", web::post().to(pages::logout))
                .route("/deliveries", web::get().to(pages::deliveries))
                .route("/predictions/{id}", web::get().to(pages::timeline))
                .route("/inbox", web::get().to(pages::inbox))
                .route("/inbox/confirm", web::get().to(pages::confirm))
                .route("/inbox/act", web::post().to(pages::act))
                .route("/reconciler", web::get().to(pages::reconciler))
                .route("/live", web::get().to(live::overview))
                .route("/assets/{name}", web::get().to(assets::serve))
                .route("/api/deliveries", web::get().to(api::deliveries))
                .route("/api/jobs", web::get().to(api::jobs))
                .route("/api/jobs/{id}/replay", web::post().to(api::replay))
                .route("/api/jobs/{id}/discard", web::post().to(api::discard))
                .route("/api/overview", web::get().to(api::overview))
                .route("/api/reconciler", web::get().to(api::reconciler))
                .default_service(web::to(api::not_found)),
        );
    }
}
