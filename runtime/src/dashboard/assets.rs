//! The stylesheet and the script, embedded in the binary.

use actix_web::{HttpResponse, web};

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

pub(crate) async fn serve(name: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match name.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type(content_type).body(body)
}
