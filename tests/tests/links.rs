//! Every link of the user documentation leads somewhere: README.md, CHANGELOG.md, the crates'
//! READMEs and every page under docs/ (a new page is picked up by the walk, nothing to register
//! here). A relative link must name a file or directory of the repository, and a `#anchor` a
//! heading of the page it points to, as GitHub and crates.io derive anchors from headings. Also
//! checks that every docs/ page is compiled as a doc test by `tests/src/lib.rs`.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_path_buf()
}

/// The Markdown files users read: the fixed ones and every `docs/*.md`.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages: Vec<PathBuf> = [
        "README.md",
        "CHANGELOG.md",
        "runtime/README.md",
        "cli/README.md",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "no page under docs/");
    pages.extend(docs);
    pages
}

/// Link destinations, in order.
fn links(markdown: &str) -> Vec<String> {
    Parser::new(markdown)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings, as GitHub makes them: the heading's text in lower case,
/// without punctuation but `-` and `_`, spaces turned into `-`; a repeated one gets `-1`, `-2`...
fn anchors(markdown: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let text = heading.take().expect("a heading was started");
                let slug = slug(&text);
                let mut anchor = slug.clone();
                let mut n = 0;
                while anchors.contains(&anchor) {
                    n += 1;
                    anchor = format!("{slug}-{n}");
                }
                anchors.insert(anchor);
            }
            _ => {}
        }
    }
    anchors
}

fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match link.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", page.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                broken.push(format!(
                    "{}: {link}: an anchor into a non-Markdown file",
                    page.display()
                ));
                continue;
            }
            let heads = anchors(&fs::read_to_string(&target).unwrap());
            if !heads.contains(anchor) {
                broken.push(format!(
                    "{}: {link}: no heading with anchor #{anchor} in {}",
                    page.display(),
                    target.display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser reading links?"
    );
}

/// Each docs/ page's Rust blocks compile only if `tests/src/lib.rs` includes the page as a doc
/// test; a page added without that line would show code no one compiles.
#[test]
fn every_docs_page_is_a_doc_test() {
    let lib = fs::read_to_string(root().join("tests/src/lib.rs")).unwrap();
    for page in pages() {
        let rel = page
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        if !rel.starts_with("docs/") && rel != "README.md" && rel != "runtime/README.md" {
            continue;
        }
        let include = format!("include_str!(\"../../{rel}\")");
        assert!(
            lib.contains(&include),
            "tests/src/lib.rs lacks #[doc = {include}]"
        );
    }
}

#[test]
fn the_slugs_follow_github() {
    let page = concat!(
        "# Output files (feature `files`)\n",
        "## \"My webhook never arrived\": `replicate-webhook doctor`\n",
        "## Layout\n## Layout\n",
    );
    let found = anchors(page);
    for anchor in [
        "output-files-feature-files",
        "my-webhook-never-arrived-replicate-webhook-doctor",
        "layout",
        "layout-1",
    ] {
        assert!(found.contains(anchor), "{anchor} not in {found:?}");
    }
    assert_eq!(
        links("[a](docs/a.md#x) and ![b](b.png) and [c](https://example.com)"),
        ["docs/a.md#x", "b.png", "https://example.com"]
    );
}
