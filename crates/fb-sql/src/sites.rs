//! Site scopes in SQL: how a `SiteScope` is stored on users and API keys, and the condition
//! that limits a query to a scope's sites with one bound parameter per site.

use fb_core::identity::SiteScope;
use fb_core::ports::StoreError;

/// The stored form of `SiteScope::All`. A list is stored as a JSON array, so a site that
/// happens to be called `all` is `["all"]` and cannot be mistaken for it.
const ALL_SITES: &str = "all";

pub fn sites_to_text(sites: &SiteScope) -> Result<String, StoreError> {
    match sites {
        SiteScope::All => Ok(ALL_SITES.to_owned()),
        SiteScope::Sites(names) => {
            serde_json::to_string(names).map_err(|e| StoreError::Other(Box::new(e)))
        }
    }
}

/// Anything but the two stored forms is corrupt, never "every site".
pub fn sites_from_text(text: &str) -> Result<SiteScope, StoreError> {
    if text == ALL_SITES {
        return Ok(SiteScope::All);
    }
    serde_json::from_str(text)
        .map(SiteScope::Sites)
        .map_err(|e| StoreError::Corrupt(format!("sites {text:?}: {e}")))
}

/// A condition on `column` that holds for rows of the scope's sites, with parameters numbered
/// from `$first`, and the names to bind to them in order; `None` for `SiteScope::All` (no
/// condition). A scope of no sites matches nothing.
pub fn site_condition<'s>(
    sites: &'s SiteScope,
    column: &str,
    first: usize,
) -> Option<(String, Vec<&'s str>)> {
    let SiteScope::Sites(names) = sites else {
        return None;
    };
    if names.is_empty() {
        return Some(("1 = 0".to_owned(), Vec::new()));
    }
    let params: Vec<String> = (first..first + names.len())
        .map(|n| format!("${n}"))
        .collect();
    Some((
        format!("{column} IN ({})", params.join(", ")),
        names.iter().map(String::as_str).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_all_is_not_a_site_called_all() {
        let named = SiteScope::named("sites", &["all", "plant-a"]).unwrap();
        for scope in [SiteScope::All, named.clone()] {
            assert_eq!(
                sites_from_text(&sites_to_text(&scope).unwrap()).unwrap(),
                scope
            );
        }
        assert_ne!(sites_to_text(&named).unwrap(), "all");
        assert!(matches!(sites_from_text(""), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            sites_from_text("ALL"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn conditions_bind_one_parameter_per_site() {
        assert_eq!(site_condition(&SiteScope::All, "site", 1), None);
        let scope = SiteScope::named("sites", &["b", "a"]).unwrap();
        let (sql, names) = site_condition(&scope, "site", 8).unwrap();
        assert_eq!(sql, "site IN ($8, $9)");
        assert_eq!(names, ["a", "b"]);
        let nothing = SiteScope::Sites(Default::default());
        assert_eq!(site_condition(&nothing, "site", 1).unwrap().0, "1 = 0");
    }
}
