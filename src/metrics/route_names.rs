//! The route label of a request: the documented path template it matched
//! (`/api/v1/admin/users/{id}`), never the raw path, so user ids, proxy names and invitation
//! codes neither explode the series count nor end up in a scraper's database.

use std::collections::HashMap;

/// Templates from the OpenAPI file: exact paths in a map, templated ones by segment.
pub struct RouteNames {
    exact: HashMap<String, String>,
    templated: Vec<(Vec<String>, String)>,
}

/// The label of every path no template matches (scanners probing for `/wp-login.php`).
pub const UNMATCHED: &str = "unmatched";
/// The label of the panel's static files.
const PANEL_FILES: &str = "/admin/";

impl RouteNames {
    /// From the path templates of an OpenAPI document (none when it does not parse).
    pub fn from_openapi(document: &str) -> RouteNames {
        let parsed: serde_json::Value = serde_json::from_str(document).unwrap_or_default();
        let paths: Vec<&str> = parsed["paths"]
            .as_object()
            .map(|paths| paths.keys().map(String::as_str).collect())
            .unwrap_or_default();
        RouteNames::new(&paths)
    }

    pub fn new(templates: &[&str]) -> RouteNames {
        let mut exact = HashMap::new();
        let mut templated = Vec::new();
        for &template in templates {
            if template.contains('{') {
                let segments = template.split('/').map(str::to_string).collect();
                templated.push((segments, template.to_string()));
            } else {
                exact.insert(template.to_string(), template.to_string());
            }
        }
        RouteNames { exact, templated }
    }

    pub fn name(&self, path: &str) -> &str {
        if let Some(name) = self.exact.get(path) {
            return name;
        }
        // The panel's files, one label for all (its own API is templated like any other).
        if path.starts_with(PANEL_FILES) && !path.starts_with("/admin/api/") {
            return PANEL_FILES;
        }
        let segments: Vec<&str> = path.split('/').collect();
        self.templated
            .iter()
            .find(|(pattern, _)| {
                pattern.len() == segments.len()
                    && pattern.iter().zip(&segments).all(|(want, got)| {
                        want == got || (want.starts_with('{') && !got.is_empty())
                    })
            })
            .map_or(UNMATCHED, |(_, name)| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths_become_their_templates() {
        let names = RouteNames::new(&[
            "/register",
            "/api/v1/admin/users/{id}",
            "/api/v1/admin/users/{id}/pro",
            "/api/v1/invitations/{code}/accept",
        ]);
        assert_eq!(names.name("/register"), "/register");
        assert_eq!(
            names.name("/api/v1/admin/users/42"),
            "/api/v1/admin/users/{id}"
        );
        assert_eq!(
            names.name("/api/v1/admin/users/42/pro"),
            "/api/v1/admin/users/{id}/pro"
        );
        assert_eq!(
            names.name("/api/v1/invitations/s3cr3t/accept"),
            "/api/v1/invitations/{code}/accept"
        );
        assert_eq!(names.name("/api/v1/admin/users/"), UNMATCHED);
        assert_eq!(names.name("/wp-login.php"), UNMATCHED);
        assert_eq!(names.name("/admin/main.js"), "/admin/");
    }

    #[test]
    fn the_shipped_openapi_file_gives_templates() {
        let names = RouteNames::from_openapi(include_str!("../../assets/openapi.json"));
        assert_eq!(
            names.name("/admin/api/accounts/ops/disable"),
            "/admin/api/accounts/{name}/{action}",
            "the panel's API is not one of its files"
        );
        assert_eq!(names.name("/api/v1/config"), "/api/v1/config");
        assert_eq!(
            names.name("/api/v1/admin/proxies/p1/load"),
            "/api/v1/admin/proxies/{name}/load"
        );
        assert!(names.exact.len() + names.templated.len() > 50);
    }
}
