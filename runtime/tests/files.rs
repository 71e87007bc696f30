//! The `files` helper against a local HTTP server: the limits, the retries and the allow-list.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::stream;
use replicate_webhook::Url;
use replicate_webhook::files::{AllowList, Fetcher, FileError};

struct Server {
    root: String,
    hits: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really";

fn serve() -> Server {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let flaky = Arc::new(AtomicUsize::new(0));
    let log = hits.clone();
    let server = HttpServer::new(move || {
        let (log, flaky) = (log.clone(), flaky.clone());
        App::new().default_service(web::to(move |req: HttpRequest| {
            let (log, flaky) = (log.clone(), flaky.clone());
            async move {
                log.lock().unwrap().push(req.path().to_owned());
                respond(&req, &flaky)
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let root = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Server { root, hits, handle }
}

fn respond(req: &HttpRequest, flaky: &AtomicUsize) -> HttpResponse {
    match req.path() {
        "/out-0.png" => HttpResponse::Ok().content_type("image/png").body(PNG),
        "/missing" => HttpResponse::NotFound().body("gone"),
        "/big" => HttpResponse::Ok()
            .content_type("image/png")
            .body(vec![7u8; 4096]),
        // No Content-Length: only counting the bytes can stop it.
        "/big-chunked" => HttpResponse::Ok()
            .content_type("image/png")
            .streaming(stream::iter(
                (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 512]))),
            )),
        // One chunk, then nothing ever again.
        "/slow" => {
            HttpResponse::Ok()
                .content_type("image/png")
                .streaming(futures_util::StreamExt::chain(
                    stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"first")) }),
                    stream::pending(),
                ))
        }
        "/flaky" => {
            if flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                HttpResponse::ServiceUnavailable().finish()
            } else {
                HttpResponse::Ok().content_type("image/webp").body("webp")
            }
        }
        "/always-500" => HttpResponse::InternalServerError().finish(),
        "/to-elsewhere" => HttpResponse::Found()
            .insert_header(("location", "http://localhost:9/secret"))
            .finish(),
        "/to-png" => HttpResponse::Found()
            .insert_header(("location", "/out-0.png"))
            .finish(),
        _ => HttpResponse::NotFound().finish(),
    }
}

impl Server {
    fn url(&self, path: &str) -> Url {
        format!("{}{path}", self.root).parse().unwrap()
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher::with_allow_list(AllowList::replicate().origin(&self.root))
            .retries(3, Duration::from_millis(10))
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

#[actix_rt::test]
async fn a_file_downloads_to_bytes_a_path_and_a_writer() {
    let server = serve();
    let fetcher = server.fetcher().content_types(["image/"]);
    let file = fetcher.bytes(&server.url("/out-0.png")).await.unwrap();
    assert_eq!(file.bytes, PNG);
    assert_eq!(file.content_type.as_deref(), Some("image/png"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved.png");
    let fetched = fetcher
        .to_path(&server.url("/out-0.png"), &path)
        .await
        .unwrap();
    assert_eq!(fetched.len, PNG.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), PNG);

    let mut sink = Vec::new();
    fetcher
        .to_writer(&server.url("/to-png"), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink, PNG, "a same-origin redirect is followed");
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_404_is_an_error_and_not_retried() {
    let server = serve();
    let error = server
        .fetcher()
        .bytes(&server.url("/missing"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, FileError::Status { status: 404, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(server.hits("/missing"), 1);
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn server_errors_are_retried_with_backoff_until_it_succeeds() {
    let server = serve();
    let file = server.fetcher().bytes(&server.url("/flaky")).await.unwrap();
    assert_eq!(file.bytes, b"webp");
    assert_eq!(server.hits("/flaky"), 3);

    let error = server
        .fetcher()
        .retries(2, Duration::from_millis(1))
        .bytes(&server.url("/always-500"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, FileError::Status { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(server.hits("/always-500"), 3, "one try and two retries");
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn an_oversized_file_is_refused_declared_or_counted() {
    let server = serve();
    let fetcher = server.fetcher().max_bytes(1000);
    for path in ["/big", "/big-chunked"] {
        let error = fetcher.bytes(&server.url(path)).await.unwrap_err();
        assert!(
            matches!(error, FileError::TooLarge { limit: 1000, .. }),
            "{path}: {error:?}"
        );
    }
    // Nothing half-written is left behind.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.png");
    fetcher
        .to_path(&server.url("/big-chunked"), &path)
        .await
        .unwrap_err();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_server_that_stalls_times_out() {
    let server = serve();
    let fetcher = server.fetcher().timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let error = fetcher.bytes(&server.url("/slow")).await.unwrap_err();
    assert!(matches!(error, FileError::Timeout(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.hits("/slow"), 1, "a timeout is not retried");
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn the_wrong_content_type_is_refused() {
    let server = serve();
    let error = server
        .fetcher()
        .content_types(["video/"])
        .bytes(&server.url("/out-0.png"))
        .await
        .unwrap_err();
    assert!(matches!(error, FileError::ContentType { .. }), "{error:?}");
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn hosts_outside_the_allow_list_are_never_contacted() {
    let server = serve();
    // The default list: a forged-but-signed output pointing at the local server.
    let error = Fetcher::new()
        .bytes(&server.url("/out-0.png"))
        .await
        .unwrap_err();
    assert!(matches!(error, FileError::Refused(_)), "{error:?}");
    assert_eq!(server.hits("/out-0.png"), 0);
    // A redirect out of the list is refused too.
    let error = server
        .fetcher()
        .bytes(&server.url("/to-elsewhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FileError::Refused(to) if to == "http://localhost:9/secret"),
        "{error:?}"
    );
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn data_uris_need_no_server_and_obey_the_limits() {
    let url: Url = "data:image/png;base64,aGVsbG8=".parse().unwrap();
    let file = Fetcher::new().bytes(&url).await.unwrap();
    assert_eq!(file.bytes, b"hello");
    assert_eq!(file.content_type.as_deref(), Some("image/png"));
    let error = Fetcher::new().max_bytes(4).bytes(&url).await.unwrap_err();
    assert!(matches!(error, FileError::TooLarge { .. }), "{error:?}");
    let refused = Fetcher::with_allow_list(AllowList::none())
        .bytes(&url)
        .await
        .unwrap_err();
    assert!(matches!(refused, FileError::Refused(_)), "{refused:?}");
}

#[actix_rt::test]
async fn every_file_of_a_typed_output_in_one_call() {
    #[derive(serde::Serialize)]
    struct Output {
        images: Vec<Url>,
        mask: Option<Url>,
        caption: String,
    }
    let server = serve();
    let output = Output {
        images: vec![server.url("/out-0.png"), server.url("/flaky")],
        mask: Some("data:,mask".parse().unwrap()),
        caption: "a cat".to_owned(),
    };
    let files = server.fetcher().all(&output).await.unwrap();
    let bodies: Vec<&[u8]> = files.iter().map(|f| f.bytes.as_slice()).collect();
    assert_eq!(bodies, [PNG, b"webp", b"mask"]);

    let dir = tempfile::tempdir().unwrap();
    let paths = server
        .fetcher()
        .all_to_dir(&output.images, dir.path().join("p1"))
        .await
        .unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["out-0.png", "flaky"]);
    assert_eq!(std::fs::read(&paths[0]).unwrap(), PNG);
    server.handle.stop(false).await;
}
