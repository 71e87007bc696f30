//! Which hosts a download may reach.

use url::Url;

/// The hosts files may come from: exact origins and `https` domains with their subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    domains: Vec<String>,
    origins: Vec<url::Origin>,
    data: bool,
}

impl AllowList {
    /// `https` under `replicate.delivery`, and `data:` URIs: where Replicate's outputs are.
    pub fn replicate() -> Self {
        Self::none().domain("replicate.delivery").data(true)
    }

    /// Nothing at all.
    pub fn none() -> Self {
        Self {
            domains: Vec::new(),
            origins: Vec::new(),
            data: false,
        }
    }

    /// Adds `https://DOMAIN` and `https://*.DOMAIN`, any port.
    #[must_use]
    pub fn domain(mut self, domain: &str) -> Self {
        self.domains
            .push(domain.trim_matches('.').to_ascii_lowercase());
        self
    }

    /// Adds one exact origin (scheme, host and port), e.g. `http://127.0.0.1:8081`.
    ///
    /// Panics when `origin` is not an absolute `http` or `https` URL: an allow-list is written
    /// by the programmer, and a typo in it must not silently allow nothing.
    #[must_use]
    pub fn origin(mut self, origin: &str) -> Self {
        let url = Url::parse(origin)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .unwrap_or_else(|| panic!("`{origin}` is not an http(s) origin"));
        self.origins.push(url.origin());
        self
    }

    /// Whether `data:` URIs are accepted (they fetch nothing; only the limits apply).
    #[must_use]
    pub fn data(mut self, on: bool) -> Self {
        self.data = on;
        self
    }

    /// True when `url` may be fetched.
    pub fn allows(&self, url: &Url) -> bool {
        match url.scheme() {
            "data" => self.data,
            "http" | "https" => {
                if self.origins.contains(&url.origin()) {
                    return true;
                }
                let Some(url::Host::Domain(host)) = url.host() else {
                    return false;
                };
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                url.scheme() == "https"
                    && self.domains.iter().any(|d| {
                        host == *d
                            || host
                                .strip_suffix(d.as_str())
                                .is_some_and(|rest| rest.ends_with('.'))
                    })
            }
            _ => false,
        }
    }
}

impl Default for AllowList {
    fn default() -> Self {
        Self::replicate()
    }
}
