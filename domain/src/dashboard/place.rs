//! Where a deep link lands inside the dashboard (docs/PROTOCOL.md §4.5): the deep link's
//! `purpose` (protocol, free-form; we serve [`PURPOSES`]) and its optional `path`, a relative
//! path inside the dashboard. Below the dashboard logic and the request parsers, which both
//! read it; imports nothing of this crate.
//!
//! The dashboard is one page; its places are sections of it ([`Place::anchor`] is the HTML
//! `id`). A link always opens `/dashboard` on this origin: the path only chooses the section, so
//! it can never send the owner elsewhere. It is still checked strictly ([`check_path`]), since
//! it is stored, echoed, recorded and shown.

/// The purposes we serve, each with where it lands when no `path` is given. `dashboard` is the
/// protocol's default; `billing` lands on this month's spend and the spending cap.
pub const PURPOSES: &[(&str, Place)] =
    &[("dashboard", Place::Overview), ("billing", Place::Billing)];

/// The purpose of a deep link sent without one (absent or `null`).
pub const DEFAULT_PURPOSE: &str = "dashboard";

/// The longest `path` accepted.
pub const MAX_PATH: usize = 256;

/// The paths [`Place::parse`] knows, for messages.
pub const KNOWN_PATHS: &str = "/, /billing, /resources, /resources/{resource id}";

/// A section of the dashboard page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `/`: the top (owner, account, plan, spend).
    Overview,
    /// `/billing`: this month's spend and the spending cap.
    Billing,
    /// `/resources`: the list of resources.
    Resources,
    /// `/resources/{id}`: one resource in that list.
    Resource(String),
}

impl Place {
    /// The place a checked path names, if the dashboard has it.
    pub fn parse(path: &str) -> Option<Place> {
        match path {
            "/" => Some(Place::Overview),
            "/billing" => Some(Place::Billing),
            "/resources" => Some(Place::Resources),
            _ => path
                .strip_prefix("/resources/")
                .filter(|id| is_resource_id(id))
                .map(|id| Place::Resource(id.to_string())),
        }
    }

    /// Where a purpose lands, if we serve it.
    pub fn of_purpose(purpose: &str) -> Option<Place> {
        PURPOSES
            .iter()
            .find(|(p, _)| *p == purpose)
            .map(|(_, place)| place.clone())
    }

    pub fn path(&self) -> String {
        match self {
            Place::Overview => "/".into(),
            Place::Billing => "/billing".into(),
            Place::Resources => "/resources".into(),
            Place::Resource(id) => format!("/resources/{id}"),
        }
    }

    /// The HTML `id` of its section: the link's URL fragment, so the browser scrolls there.
    pub fn anchor(&self) -> String {
        match self {
            Place::Overview => "overview".into(),
            Place::Billing => "billing".into(),
            Place::Resources => "resources".into(),
            Place::Resource(id) => format!("resource-{id}"),
        }
    }
}

/// The names served in discovery (`deep_link_purposes`).
pub fn purposes() -> Vec<&'static str> {
    PURPOSES.iter().map(|(p, _)| *p).collect()
}

fn is_resource_id(id: &str) -> bool {
    id.len() > 4
        && id.len() <= 64
        && id.starts_with("res_")
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a deep link's `path`: a relative path inside the dashboard, never anything a browser
/// could read as another origin. Returns why not, for the `invalid_request` message.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.len() > MAX_PATH {
        return Err("is longer than 256 characters");
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if path.contains('\\') {
        return Err("must not contain a backslash");
    }
    if !path.starts_with('/') {
        return Err("must start with /");
    }
    // `//host` is protocol-relative: another origin.
    if path.contains("//") {
        return Err("must not contain //");
    }
    if path.contains(':') {
        return Err("must not contain a scheme or ':'");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
    {
        return Err("may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'");
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain . or .. segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_dashboard_are_accepted() {
        for p in [
            "/",
            "/billing",
            "/resources",
            "/resources/res_abc123",
            "/a-b_c.d~e",
            "/x/y.z",
            "/.well-known-ish",
            "/...",
        ] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
        assert_eq!(check_path(&format!("/{}", "a".repeat(255))), Ok(()));
    }

    #[test]
    fn anything_that_could_leave_the_dashboard_is_refused() {
        let refused = [
            ("", "must start with /"),
            ("billing", "must start with /"),
            ("./billing", "must start with /"),
            ("//evil.example", "must not contain //"),
            ("//evil.example/x", "must not contain //"),
            ("/billing//x", "must not contain //"),
            ("https://evil.example", "must start with /"),
            ("javascript:alert(1)", "must start with /"),
            ("/x:y", "must not contain a scheme or ':'"),
            ("/https:/evil.example", "must not contain a scheme or ':'"),
            ("/\\evil.example", "must not contain a backslash"),
            ("\\\\evil.example", "must not contain a backslash"),
            ("/..", "must not contain . or .. segments"),
            ("/../x", "must not contain . or .. segments"),
            ("/a/../../x", "must not contain . or .. segments"),
            ("/a/.", "must not contain . or .. segments"),
            ("/./a", "must not contain . or .. segments"),
            ("/a\n", "must not contain control characters"),
            ("/a\u{0}b", "must not contain control characters"),
            ("/a\tb", "must not contain control characters"),
            ("/a\u{7f}", "must not contain control characters"),
            ("/a\u{85}", "must not contain control characters"),
            (
                "/%2e%2e/x",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
            ("/a?next=https://x", "must not contain //"),
            (
                "/a?b",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
            (
                "/a#b",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
            (
                "/a b",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
            (
                "/é",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
            (
                "/\u{2215}evil",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
            (
                "/a@b",
                "may contain only A-Z, a-z, 0-9, '/', '-', '_', '.' and '~'",
            ),
        ];
        for (p, why) in refused {
            assert_eq!(check_path(p), Err(why), "{p:?}");
        }
        assert_eq!(
            check_path(&format!("/{}", "a".repeat(256))),
            Err("is longer than 256 characters")
        );
    }

    #[test]
    fn places_are_the_sections_the_page_has() {
        assert_eq!(Place::parse("/"), Some(Place::Overview));
        assert_eq!(Place::parse("/billing"), Some(Place::Billing));
        assert_eq!(Place::parse("/resources"), Some(Place::Resources));
        assert_eq!(
            Place::parse("/resources/res_1a"),
            Some(Place::Resource("res_1a".into()))
        );
        for unknown in [
            "/settings",
            "/billing/",
            "/resources/",
            "/resources/acct_1",
            "/resources/res_",
            "/resources/res_1/x",
            "/Billing",
        ] {
            assert_eq!(Place::parse(unknown), None, "{unknown}");
        }
        for place in [
            Place::Overview,
            Place::Billing,
            Place::Resources,
            Place::Resource("res_9".into()),
        ] {
            assert_eq!(check_path(&place.path()), Ok(()));
            assert_eq!(Place::parse(&place.path()), Some(place));
        }
        assert_eq!(Place::Resource("res_9".into()).anchor(), "resource-res_9");
    }

    #[test]
    fn served_purposes_and_where_they_land() {
        assert_eq!(purposes(), ["dashboard", "billing"]);
        assert_eq!(Place::of_purpose(DEFAULT_PURPOSE), Some(Place::Overview));
        assert_eq!(Place::of_purpose("billing"), Some(Place::Billing));
        assert_eq!(Place::of_purpose("support"), None);
        assert_eq!(Place::of_purpose("Dashboard"), None);
    }
}
