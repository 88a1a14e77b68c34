//! The README's reference sections are checked against the code, so they cannot drift.

use fb_core::identity::{Permission, Role};
use fb_http::{Access, routes};

const README: &str = include_str!("../../../../README.md");

fn roles_table() -> String {
    let mut t = String::from(
        "| Permission | Admin | Supervisor | Operator | Viewer | Allows |\n|---|:-:|:-:|:-:|:-:|---|\n",
    );
    for p in Permission::ALL {
        let marks: Vec<&str> = Role::ALL
            .iter()
            .map(|r| if r.allows(p) { "✓" } else { " " })
            .collect();
        t.push_str(&format!(
            "| `{}` | {} | {} |\n",
            p.as_str(),
            marks.join(" | "),
            p.description()
        ));
    }
    t
}

fn routes_table() -> String {
    let mut t = String::from("| Method | Path | Access |\n|---|---|---|\n");
    for r in routes::table() {
        let access = match r.access {
            Access::Public => "public".to_owned(),
            Access::Requires(p) => format!("`{}`", p.as_str()),
        };
        t.push_str(&format!("| {} | `{}` | {} |\n", r.method, r.path, access));
    }
    t
}

#[test]
fn readme_roles_table_matches_the_permission_table() {
    let table = roles_table();
    assert!(
        README.contains(&table),
        "README.md's roles table is out of date; it should read:\n\n{table}"
    );
}

#[test]
fn readme_routes_table_matches_the_route_table() {
    let table = routes_table();
    assert!(
        README.contains(&table),
        "README.md's routes table is out of date; it should read:\n\n{table}"
    );
}

#[test]
fn readme_configuration_reference_is_the_defaults_file() {
    let defaults = fb_server::settings::DEFAULTS_YAML;
    assert!(
        README.contains(defaults),
        "README.md must quote crates/fb-server/src/settings/defaults.yaml verbatim"
    );
}
