//! The request a job's delivery came in, rebuilt for the handler's extractors.

use actix_service::{IntoServiceFactory as _, Service as _, ServiceFactory as _, boxed};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, Uri};
use actix_web::{App, HttpRequest, HttpResponse, web};

use super::Job;
use crate::config::DataFn;

/// An actix `App` holding the worker's app data, whose one service hands back the request
/// it was given.
///
/// Why an `App`: extractors (`web::Data<T>`, `HttpRequest`) read an `HttpRequest`, and actix
/// builds one (with its app data) only inside an `App` service; `TestRequest` is for tests.
/// Built once per worker thread; a call runs no I/O.
pub(super) struct Requests {
    app: boxed::BoxService<actix_http::Request, ServiceResponse, actix_web::Error>,
}

impl Requests {
    /// The `App` for `data`, on the current (worker) thread.
    pub(super) async fn new(data: &[DataFn]) -> Result<Self, String> {
        let mut app = App::new();
        for data in data {
            app = app.configure(|cfg| data(cfg));
        }
        let app = app.default_service(web::to(HttpResponse::NoContent));
        let service = app
            .into_factory()
            .new_service(AppConfig::default())
            .await
            .map_err(|()| "the worker's app did not start".to_owned())?;
        Ok(Self {
            app: boxed::service(service),
        })
    }

    /// The job's request: its path and query and the headers it was stored with, and the
    /// worker's app data. Rows are ours, but a hand-edited one must not panic the worker:
    /// what is invalid is skipped.
    pub(super) async fn of(&self, job: &Job) -> Result<HttpRequest, actix_web::Error> {
        let mut request = actix_http::Request::new();
        let head = request.head_mut();
        head.method = Method::POST;
        head.uri = Uri::try_from(job.uri.as_str()).unwrap_or_else(|_| Uri::from_static("/"));
        for (name, value) in &job.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                head.headers.insert(name, value);
            }
        }
        let response = self.app.call(request).await?;
        Ok(response.request().clone())
    }
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").finish_non_exhaustive()
    }
}
