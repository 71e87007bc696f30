//! The ceiling for any actix receiver: one worker that reads the whole body and answers 200.
//!
//! ```text
//! bare 127.0.0.1:8081
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use replicate_webhook_bench::PATH;

async fn accept(body: web::Bytes) -> HttpResponse {
    // Reading the body is the work every receiver must do; what it does next is what is measured.
    std::hint::black_box(&body);
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    actix_web::rt::System::new().block_on(
        HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(2 * 1024 * 1024))
                .route(PATH, web::post().to(accept))
        })
        .workers(1)
        .bind(bind)?
        .run(),
    )
}
