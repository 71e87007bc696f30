//! The browser harness itself: chromedriver starts, Chromium renders a page, a screenshot is kept.

use std::time::Duration;

use replicate_webhook_tests::browser::Browser;

#[actix_rt::test]
async fn headless_chromium_renders_a_page_and_keeps_a_screenshot() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .goto("data:text/html,<title>t</title><p id=greeting>hello from chromium</p>")
        .await;
    let text = browser
        .wait_text("#greeting", Duration::from_secs(10), "harness", |t| {
            t.contains("hello")
        })
        .await;
    assert_eq!(text, "hello from chromium");
    let shot = browser.screenshot("harness").await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());
    browser.close().await;
}
