//! The HTML pages: each checks the session, runs the shared query and renders its template.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::queries::{self, DeliveryQuery, JobQuery, QueryError};
use super::templates::{self, Page};
use super::{Mount, auth};

/// A logged-in page view: what its forms need.
#[allow(clippy::result_large_err)] // the error is the answer, returned at once
fn session(req: &HttpRequest, mount: &Mount) -> Result<Page, HttpResponse> {
    match mount.auth.session(req) {
        Some(session) => Ok(Page {
            prefix: mount.prefix.clone(),
            csrf: mount.auth.csrf(&session),
        }),
        None => Err(login_page(mount, StatusCode::UNAUTHORIZED, None)),
    }
}

/// The login form, as the body of a 401 (or 429): never a redirect to a 200 page.
fn login_page(mount: &Mount, status: StatusCode, error: Option<&str>) -> HttpResponse {
    html(status, templates::login(&mount.prefix, error))
}

fn html(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

fn failed(page: &Page, e: &QueryError) -> HttpResponse {
    html(e.reported(), templates::problem(page, &e.to_string()))
}

/// A logged-in page: the login form without a session, the problem page when `render` fails.
async fn show(
    req: &HttpRequest,
    mount: &Mount,
    render: impl AsyncFnOnce(&Page) -> Result<maud::Markup, QueryError>,
) -> HttpResponse {
    let page = match session(req, mount) {
        Ok(page) => page,
        Err(login) => return login,
    };
    match render(&page).await {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(e) => failed(&page, &e),
    }
}

fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::SeeOther();
    builder.insert_header((header::LOCATION, location.to_owned()));
    builder
}

pub(crate) async fn login_form(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    match session(&req, &mount) {
        Ok(_) => see_other(&format!("{}/", mount.prefix)).finish(),
        Err(login) => login,
    }
}

#[derive(Deserialize)]
pub(crate) struct Login {
    token: String,
}

pub(crate) async fn login(
    req: HttpRequest,
    mount: web::Data<Mount>,
    form: web::Form<Login>,
) -> HttpResponse {
    if !mount.auth.login_allowed(&req) {
        return login_page(
            &mount,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many login attempts from this address; wait a minute."),
        );
    }
    if !mount.auth.token_ok(&form.token) {
        tracing::warn!("dashboard login refused");
        return login_page(&mount, StatusCode::UNAUTHORIZED, Some("Wrong token."));
    }
    let session = mount.auth.new_session(auth::now_secs());
    see_other(&format!("{}/", mount.prefix))
        .cookie(auth::cookie(session, &mount.prefix, auth::is_https(&req)))
        .finish()
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A form is read only after the session is checked, so an anonymous request learns nothing
/// from how its body is refused.
type FormOf<T> = Result<web::Form<T>, actix_web::Error>;

pub(crate) async fn logout(
    req: HttpRequest,
    mount: web::Data<Mount>,
    form: FormOf<CsrfForm>,
) -> HttpResponse {
    let csrf = form.map(|f| f.into_inner().csrf).unwrap_or_default();
    if let Err(refused) = checked(&req, &mount, &csrf) {
        return refused;
    }
    see_other(&format!("{}/login", mount.prefix))
        .cookie(auth::logout_cookie(&mount.prefix, auth::is_https(&req)))
        .finish()
}

/// The session of a state change, with its CSRF token checked: 401 without a session, 403
/// with a wrong token.
#[allow(clippy::result_large_err)] // the error is the answer, returned at once
fn checked(req: &HttpRequest, mount: &Mount, csrf: &str) -> Result<Page, HttpResponse> {
    let page = session(req, mount)?;
    let session = auth::session_of(req).unwrap_or_default();
    if mount.auth.csrf_ok(&session, csrf) {
        Ok(page)
    } else {
        Err(html(
            StatusCode::FORBIDDEN,
            templates::problem(
                &page,
                "This form is stale or was not sent by this dashboard; reload the page and try again.",
            ),
        ))
    }
}

pub(crate) async fn overview(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    show(&req, &mount, async |page| {
        let overview = queries::overview(&mount).await?;
        Ok(templates::overview(page, &overview, mount.inbox.is_some()))
    })
    .await
}

pub(crate) async fn deliveries(
    req: HttpRequest,
    mount: web::Data<Mount>,
    query: web::Query<DeliveryQuery>,
) -> HttpResponse {
    show(&req, &mount, async |page| {
        let rows = queries::deliveries(&mount, &query).await?;
        Ok(templates::deliveries(page, &query, &rows))
    })
    .await
}

pub(crate) async fn timeline(
    req: HttpRequest,
    mount: web::Data<Mount>,
    id: web::Path<String>,
) -> HttpResponse {
    show(&req, &mount, async |page| {
        let timeline = queries::timeline(&mount, &id).await?;
        Ok(templates::timeline(page, &id, &timeline))
    })
    .await
}

/// What the last action did, shown once.
#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn inbox(
    req: HttpRequest,
    mount: web::Data<Mount>,
    query: web::Query<JobQuery>,
    done: web::Query<Done>,
) -> HttpResponse {
    show(&req, &mount, async |page| {
        let jobs = queries::jobs(&mount, &query).await?;
        Ok(templates::inbox(page, &query, &jobs, done.done.as_deref()))
    })
    .await
}

/// An inbox action: `replay` or `discard` of job `id`, or `replay-all` / `discard-all` of every
/// job the filter selects; posted with the form's `csrf`. (No `serde(flatten)`: it reads every
/// value of a form as a string, which an integer field refuses.)
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Action {
    #[serde(rename = "action")]
    kind: String,
    id: Option<String>,
    state: Option<String>,
    model: Option<String>,
    prediction: Option<String>,
    #[serde(default)]
    csrf: String,
}

impl Action {
    fn filter(&self) -> JobQuery {
        JobQuery {
            state: self.state.clone(),
            model: self.model.clone(),
            prediction: self.prediction.clone(),
            limit: None,
        }
    }

    /// The job id, when the action names one that is a number.
    fn id(&self) -> Option<i64> {
        self.id.as_deref().and_then(|id| id.trim().parse().ok())
    }

    /// What the confirmation asks, or `None` for an unknown action.
    fn describe(&self) -> Option<String> {
        let filter = describe_filter(&self.filter());
        Some(match (self.kind.as_str(), self.id()) {
            ("replay", Some(id)) => format!("Replay job {id}? Its handler runs again."),
            ("discard", Some(id)) => {
                format!("Discard job {id}? It never runs again; its deliveries stay deduplicated.")
            }
            ("replay-all", _) => format!("Replay every dead job{filter}?"),
            ("discard-all", _) => format!("Discard every pending or dead job{filter}?"),
            _ => return None,
        })
    }
}

fn describe_filter(filter: &JobQuery) -> String {
    let parts: Vec<String> = filter
        .filters()
        .map(|(name, value)| format!("{name} {value}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" with {}", parts.join(", "))
    }
}

pub(crate) async fn confirm(
    req: HttpRequest,
    mount: web::Data<Mount>,
    action: web::Query<Action>,
) -> HttpResponse {
    show(&req, &mount, async |page| {
        let question = action
            .describe()
            .ok_or_else(|| QueryError::Invalid("Unknown action.".to_owned()))?;
        let filter = action.filter();
        Ok(templates::confirm(
            page,
            &question,
            &action.kind,
            action.id(),
            &filter,
        ))
    })
    .await
}

pub(crate) async fn act(
    req: HttpRequest,
    mount: web::Data<Mount>,
    form: FormOf<Action>,
) -> HttpResponse {
    let page = match session(&req, &mount) {
        Ok(page) => page,
        Err(login) => return login,
    };
    let action = match form {
        Ok(form) => form.into_inner(),
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                templates::problem(&page, &format!("Unreadable form: {e}")),
            );
        }
    };
    if let Err(refused) = checked(&req, &mount, &action.csrf) {
        return refused;
    }
    let done = match (action.kind.as_str(), action.id()) {
        ("replay", Some(id)) => queries::replay(&mount, id).await.map(|ok| {
            if ok {
                format!("Job {id} replayed.")
            } else {
                format!("Job {id} is not dead; nothing replayed.")
            }
        }),
        ("discard", Some(id)) => queries::discard(&mount, id).await.map(|ok| {
            if ok {
                format!("Job {id} discarded.")
            } else {
                format!("Job {id} is not pending or dead; nothing discarded.")
            }
        }),
        ("replay-all", _) => queries::replay_matching(&mount, &action.filter())
            .await
            .map(|n| format!("{n} dead jobs replayed.")),
        ("discard-all", _) => queries::discard_matching(&mount, &action.filter())
            .await
            .map(|n| format!("{n} jobs discarded.")),
        _ => Err(QueryError::Invalid("unknown action".to_owned())),
    };
    match done {
        Ok(done) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("done", &done)
                .finish();
            see_other(&format!("{}/inbox?{query}", mount.prefix)).finish()
        }
        Err(e) => failed(&page, &e),
    }
}

pub(crate) async fn reconciler(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    show(&req, &mount, async |page| {
        Ok(templates::reconciler(
            page,
            &queries::reconciler(&mount).await,
        ))
    })
    .await
}
