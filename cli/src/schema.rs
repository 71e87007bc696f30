//! `schema pull` and `schema check`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::ApiArgs;
use crate::api::client;
use crate::error::{CliError, EXIT_INVALID, EXIT_USAGE, Exit};

fn split_model(spec: &str) -> Result<(&str, Option<&str>), String> {
    let (slug, version) = match spec.split_once(':') {
        Some((slug, version)) => (slug, Some(version)),
        None => (spec, None),
    };
    if replicate_webhook_core::split_model(slug).is_some()
        && version.is_none_or(replicate_webhook_core::is_name_part)
    {
        Ok((slug, version))
    } else {
        Err(format!("`{spec}` is not owner/name or owner/name:version"))
    }
}

pub(crate) async fn pull(api: &ApiArgs, spec: &str, out: &Path) -> Exit {
    let (slug, version) = split_model(spec).map_err(CliError::Usage)?;
    let client = client(api)?;
    let schema = match version {
        Some(version) => client.version_schema(slug, version).await?,
        None => client.model_schema(slug).await?,
    };
    let path = out.join(format!("{slug}.json"));
    let text = serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n";
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, text));
    written.map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
    println!("{}", path.display());
    Ok(0)
}

/// Every `DIR/owner/name.json`, as (`owner/name`, path), sorted.
fn pinned(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for owner in std::fs::read_dir(dir)? {
        let owner = owner?;
        if !owner.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(owner.path())? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(name) = path.file_stem().and_then(|s| s.to_str())
            {
                let slug = format!("{}/{name}", owner.file_name().to_string_lossy());
                found.push((slug, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

pub(crate) async fn check(api: &ApiArgs, dir: &Path) -> Exit {
    let files = match pinned(dir) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            return Err(CliError::Usage(format!(
                "no owner/name.json files in {}",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(CliError::Usage(format!(
                "cannot read {}: {e}",
                dir.display()
            )));
        }
    };
    let client = client(api)?;
    let tty = std::io::stderr().is_terminal();
    let mut drift = false;
    let mut errors = false;
    for (i, (slug, path)) in files.iter().enumerate() {
        if tty {
            eprint!("\rchecking {}/{} {slug}\x1b[K", i + 1, files.len());
        }
        let pinned: Value = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("\rerror {slug}: {}: {e}", path.display());
                errors = true;
                continue;
            }
        };
        match client.model_schema(slug).await {
            Ok(live) => {
                let diffs = replicate_webhook_cli::schema_check::compare(&pinned, &live);
                if tty {
                    eprint!("\r\x1b[K");
                }
                if diffs.is_empty() {
                    println!("ok {slug}");
                } else {
                    drift = true;
                    println!("drift {slug}:");
                    for d in diffs {
                        println!("  {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("\rerror {slug}: {e}");
                errors = true;
            }
        }
    }
    Ok(if drift {
        EXIT_INVALID
    } else if errors {
        EXIT_USAGE
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs() {
        assert_eq!(split_model("a/b").unwrap(), ("a/b", None));
        assert_eq!(split_model("a/b:123").unwrap(), ("a/b", Some("123")));
        assert!(split_model("a").is_err());
        assert!(split_model("../b").is_err());
        assert!(split_model("a/b:").is_err());
    }
}
