//! Users, API keys, roles and the permission table (D1–D3).
//!
//! The permission table is policy, so it lives here and is pure: the HTTP layer asks
//! [`Role::allows`] and never hard-codes a role.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;
use crate::plant::validate_site;
use crate::session::SessionId;

/// A user's or API key's role. Ordered from most to least privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Supervisor,
    Operator,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Supervisor, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this role holds `permission`. The one place where roles meet permissions.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            // Supervisors run the floor and approve spending; the plant model, the prediction
            // models, users, credentials and the audit log (which records what supervisors do)
            // stay with admins.
            Role::Supervisor => !matches!(
                permission,
                P::PlantManage | P::ModelsManage | P::UsersManage | P::ApiKeysManage | P::AuditRead
            ),
            Role::Operator => matches!(
                permission,
                P::SelfRead
                    | P::SelfPassword
                    | P::SelfSecurity
                    | P::PlantRead
                    | P::ReadingsWrite
                    | P::AlertsManage
                    | P::TicketsRead
                    | P::TicketsManage
            ),
            Role::Viewer => matches!(
                permission,
                P::SelfRead | P::SelfPassword | P::SelfSecurity | P::PlantRead | P::TicketsRead
            ),
        }
    }

    /// Whether a principal with this role may hand out `other` (e.g. an API key's role).
    /// Nobody can create credentials more privileged than their own.
    pub fn can_grant(self, other: Role) -> bool {
        (self as u8) <= (other as u8)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission a route or use case declares. Names are `area.verb`.
///
/// Some permissions guard features that later issues add; they are listed now so that the
/// role table is complete and stable for integrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Read one's own identity.
    SelfRead,
    /// Change one's own password.
    SelfPassword,
    /// Manage one's own sessions and second factor.
    SelfSecurity,
    /// Read machines, readings, alerts, KPIs.
    PlantRead,
    /// Ingest readings; edit readings metadata.
    ReadingsWrite,
    /// Acknowledge and resolve alerts.
    AlertsManage,
    /// Create, change and delete machines and plant resources.
    PlantManage,
    /// Read maintenance tickets and machines' reliability (MTBF, MTTR).
    TicketsRead,
    /// Create and update maintenance tickets: edit, start, resolve, reopen.
    TicketsManage,
    /// Close resolved maintenance tickets (sign the repair off).
    TicketsClose,
    /// Approve purchase orders and gated actions.
    OrdersApprove,
    /// Accept or dismiss energy recommendations (C3).
    EnergyManage,
    /// Manage parts, BOMs, suppliers, offers and stock; receive orders (C2).
    ProcurementManage,
    /// List users.
    UsersRead,
    /// Create, disable and enable users and change their role and sites.
    UsersManage,
    /// Create, list and revoke API keys.
    ApiKeysManage,
    /// Scrape Prometheus metrics.
    MetricsRead,
    /// Read the audit log.
    AuditRead,
    /// Register, promote and roll back prediction models.
    ModelsManage,
}

impl Permission {
    pub const ALL: [Permission; 19] = [
        Permission::SelfRead,
        Permission::SelfPassword,
        Permission::SelfSecurity,
        Permission::PlantRead,
        Permission::ReadingsWrite,
        Permission::AlertsManage,
        Permission::PlantManage,
        Permission::TicketsRead,
        Permission::TicketsManage,
        Permission::TicketsClose,
        Permission::OrdersApprove,
        Permission::EnergyManage,
        Permission::ProcurementManage,
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::ApiKeysManage,
        Permission::MetricsRead,
        Permission::AuditRead,
        Permission::ModelsManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SelfRead => "self.read",
            Permission::SelfPassword => "self.password",
            Permission::SelfSecurity => "self.security",
            Permission::PlantRead => "plant.read",
            Permission::ReadingsWrite => "readings.write",
            Permission::AlertsManage => "alerts.manage",
            Permission::PlantManage => "plant.manage",
            Permission::TicketsRead => "tickets.read",
            Permission::TicketsManage => "tickets.manage",
            Permission::TicketsClose => "tickets.close",
            Permission::OrdersApprove => "orders.approve",
            Permission::EnergyManage => "energy.manage",
            Permission::ProcurementManage => "procurement.manage",
            Permission::UsersRead => "users.read",
            Permission::UsersManage => "users.manage",
            Permission::ApiKeysManage => "api_keys.manage",
            Permission::MetricsRead => "metrics.read",
            Permission::AuditRead => "audit.read",
            Permission::ModelsManage => "models.manage",
        }
    }
}

impl Permission {
    /// Permissions about the caller's own account, which a user who still has to enrol a
    /// second factor keeps (so that they can enrol it).
    pub fn is_self_service(self) -> bool {
        matches!(
            self,
            Permission::SelfRead | Permission::SelfPassword | Permission::SelfSecurity
        )
    }

    /// What the permission allows, for the README and error messages.
    pub fn description(self) -> &'static str {
        match self {
            Permission::SelfRead => "Read one's own identity and permissions",
            Permission::SelfPassword => "Change one's own password",
            Permission::SelfSecurity => {
                "List and end one's own sessions; enrol and manage one's second factor"
            }
            Permission::PlantRead => "Read machines, readings, alerts and KPIs",
            Permission::ReadingsWrite => "Ingest readings; edit readings metadata",
            Permission::AlertsManage => "Acknowledge and resolve alerts",
            Permission::PlantManage => "Create, change and delete machines and plant resources",
            Permission::TicketsRead => {
                "Read maintenance tickets and machines' reliability (MTBF, MTTR)"
            }
            Permission::TicketsManage => {
                "Create maintenance tickets; edit, start, resolve and reopen them"
            }
            Permission::TicketsClose => "Close resolved maintenance tickets (sign the repair off)",
            Permission::OrdersApprove => "Approve purchase orders and gated actions",
            Permission::EnergyManage => {
                "Accept or dismiss energy recommendations (an accepted one becomes a machine command)"
            }
            Permission::ProcurementManage => {
                "Manage parts, bills of materials, suppliers, offers and stock; receive orders"
            }
            Permission::UsersRead => "List users",
            Permission::UsersManage => {
                "Create, disable and enable users and change their role and sites"
            }
            Permission::ApiKeysManage => "Create, list and revoke API keys",
            Permission::MetricsRead => "Scrape Prometheus metrics",
            Permission::AuditRead => "Read the audit log",
            Permission::ModelsManage => {
                "Register prediction models, make a version active and roll back"
            }
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which sites a user or API key may see and change (D3): every site, or only those named.
///
/// "Every site" is a variant of its own, never an empty list, so that a forgotten or emptied
/// field can never widen access: `Sites` with no names reaches nothing. Machines carry their
/// site (`Location.site`); readings, anomalies and alerts belong to their machine's site.
///
/// New users and keys get their creator's scope unless the request names one: an unscoped
/// admin of a single-site plant never has to think about sites (its users see all of them, as
/// before scopes existed), and a site admin's new users stay within that admin's sites without
/// repeating them. Either way a grant can never exceed the creator's own scope
/// ([`Principal::can_grant`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SiteScope {
    /// Every site, including sites created later. The CLI and first-start admin have it.
    All,
    /// Only these sites (exact names, as in `Location.site`).
    Sites(BTreeSet<String>),
}

impl SiteScope {
    /// A scope of the named sites, each checked by the site rules and reported as
    /// `field[i]`; at least one name is needed (say [`SiteScope::All`] for every site).
    pub fn named<S: AsRef<str>>(field: &str, names: &[S]) -> Result<SiteScope, Vec<FieldError>> {
        if names.is_empty() {
            return Err(vec![FieldError::new(
                field,
                "must name at least one site, or be \"all\"",
            )]);
        }
        let mut problems = Vec::new();
        for (i, name) in names.iter().enumerate() {
            problems.extend(validate_site(&format!("{field}[{i}]"), name.as_ref()));
        }
        if problems.is_empty() {
            Ok(SiteScope::Sites(
                names.iter().map(|n| n.as_ref().to_owned()).collect(),
            ))
        } else {
            Err(problems)
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, SiteScope::All)
    }

    /// Whether a machine of `site` is within this scope.
    pub fn contains(&self, site: &str) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Sites(sites) => sites.contains(site),
        }
    }

    /// What both scopes reach.
    pub fn intersection(&self, other: &SiteScope) -> SiteScope {
        match (self, other) {
            (SiteScope::All, x) | (x, SiteScope::All) => x.clone(),
            (SiteScope::Sites(a), SiteScope::Sites(b)) => {
                SiteScope::Sites(a.intersection(b).cloned().collect())
            }
        }
    }

    /// Whether everything `other` reaches is within this scope. Only `All` covers `All`: a
    /// list of every site known today still misses the sites added tomorrow.
    pub fn covers(&self, other: &SiteScope) -> bool {
        match (self, other) {
            (SiteScope::All, _) => true,
            (SiteScope::Sites(_), SiteScope::All) => false,
            (SiteScope::Sites(mine), SiteScope::Sites(theirs)) => theirs.is_subset(mine),
        }
    }
}

impl std::fmt::Display for SiteScope {
    /// `all`, or the sites separated by commas (as the CLI takes them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SiteScope::All => f.write_str("all"),
            SiteScope::Sites(sites) => {
                let names: Vec<&str> = sites.iter().map(String::as_str).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(pub Uuid);

macro_rules! id_display {
    ($($t:ty),+) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )+};
}
id_display!(UserId, ApiKeyId);

/// A stored user. `password_hash` is a PHC string (argon2id); the password itself is never kept.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    /// The sites whose machines, readings and alerts the user may see and change.
    pub sites: SiteScope,
    pub password_hash: String,
    pub disabled: bool,
    /// Set for generated passwords (the first admin, `user add` without a password): the user
    /// should choose their own.
    pub must_change_password: bool,
    /// Access tokens issued before this instant are refused, so a password change ends every
    /// session that used the old one.
    pub password_changed_at: OffsetDateTime,
    /// A second factor (TOTP) is enrolled and required at login.
    pub mfa_enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for User {
    // The hash is not a secret in the same way a password is, but it has no business in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("sites", &self.sites)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A stored API key: only a hash of its secret is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    /// Public, unique, shown in lists; the first part of the key string, used to look it up.
    pub prefix: String,
    /// SHA-256 of the secret part. API key secrets are 256-bit random, so a fast hash is safe.
    pub secret_hash: Vec<u8>,
    pub name: String,
    pub role: Role,
    /// The sites whose machines, readings and alerts the key may see and change.
    pub sites: SiteScope,
    pub created_by: Option<UserId>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("sites", &self.sites)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Usable at `now`: not revoked and not expired.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Who is calling: the result of authentication, handed to every protected use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// Read from the store with the role on every request, so a narrowed scope applies at once.
    pub sites: SiteScope,
    pub subject: Subject,
    /// The user's role requires a second factor that this session has not verified (the user
    /// has not enrolled one yet): only self-service permissions hold until they do.
    pub mfa_enrolment_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User {
        id: UserId,
        username: String,
        /// The login session the access token belongs to.
        session: Option<SessionId>,
    },
    ApiKey {
        id: ApiKeyId,
        name: String,
    },
    /// Local administration: the CLI and first-start bootstrap.
    System,
}

impl Principal {
    pub fn can(&self, permission: Permission) -> bool {
        self.role.allows(permission)
            && (!self.mfa_enrolment_pending || permission.is_self_service())
    }

    /// The login session behind the call, if it came with an access token.
    pub fn session(&self) -> Option<SessionId> {
        match &self.subject {
            Subject::User { session, .. } => *session,
            Subject::ApiKey { .. } | Subject::System => None,
        }
    }

    /// Whether the caller may see and change what belongs to `site` (its machines, their
    /// readings, anomalies and alerts). Permissions still apply on top.
    pub fn can_access_site(&self, site: &str) -> bool {
        self.sites.contains(site)
    }

    /// Whether the caller may hand out credentials with `role` and `sites`: never more
    /// privileged than its own role, never beyond its own sites.
    pub fn can_grant(&self, role: Role, sites: &SiteScope) -> bool {
        self.role.can_grant(role) && self.sites.covers(sites)
    }

    pub fn user_id(&self) -> Option<UserId> {
        match &self.subject {
            Subject::User { id, .. } => Some(*id),
            Subject::ApiKey { .. } | Subject::System => None,
        }
    }

    /// Who this is in logs and audit records: `user:<name>`, `api_key:<id>` or `system`.
    pub fn describe(&self) -> String {
        match &self.subject {
            Subject::User { username, .. } => format!("user:{username}"),
            Subject::ApiKey { id, .. } => format!("api_key:{id}"),
            Subject::System => "system".to_owned(),
        }
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 64;
pub const PASSWORD_MIN: usize = 12;
/// Upper bound so a huge password cannot be used to burn CPU in the hash.
pub const PASSWORD_MAX: usize = 256;
pub const API_KEY_NAME_MAX: usize = 100;

/// Usernames are lowercase ASCII so that look-ups are unambiguous across backends.
pub fn validate_username(field: &str, username: &str) -> Result<(), FieldError> {
    let len = username.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(FieldError::new(
            field,
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters long"),
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if !username.chars().all(allowed) {
        return Err(FieldError::new(
            field,
            "may contain only lowercase letters, digits, '.', '_' and '-'",
        ));
    }
    // Users are addressed by id or by name in the same place; a name shaped like an id would be
    // unreachable by name.
    if Uuid::parse_str(username).is_ok() {
        return Err(FieldError::new(field, "must not look like a UUID"));
    }
    Ok(())
}

pub fn validate_password(field: &str, password: &str) -> Result<(), FieldError> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(FieldError::new(
            field,
            format!("must be at least {PASSWORD_MIN} characters long"),
        ));
    }
    if len > PASSWORD_MAX {
        return Err(FieldError::new(
            field,
            format!("must be at most {PASSWORD_MAX} characters long"),
        ));
    }
    Ok(())
}

pub fn validate_api_key_name(field: &str, name: &str) -> Result<(), FieldError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > API_KEY_NAME_MAX {
        return Err(FieldError::new(
            field,
            format!("must be at most {API_KEY_NAME_MAX} characters long"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_every_permission_and_viewer_only_reads() {
        for p in Permission::ALL {
            assert!(Role::Admin.allows(p), "admin lacks {p}");
        }
        let viewer: Vec<_> = Permission::ALL
            .into_iter()
            .filter(|p| Role::Viewer.allows(*p))
            .collect();
        assert_eq!(
            viewer,
            [
                Permission::SelfRead,
                Permission::SelfPassword,
                Permission::SelfSecurity,
                Permission::PlantRead,
                Permission::TicketsRead
            ]
        );
    }

    #[test]
    fn operators_work_tickets_and_supervisors_close_them() {
        assert!(Role::Viewer.allows(Permission::TicketsRead));
        assert!(!Role::Viewer.allows(Permission::TicketsManage));
        assert!(Role::Operator.allows(Permission::TicketsManage));
        assert!(!Role::Operator.allows(Permission::TicketsClose));
        assert!(Role::Supervisor.allows(Permission::TicketsClose));
    }

    #[test]
    fn roles_are_nested() {
        // Each role holds at least what the role below it holds.
        for pair in Role::ALL.windows(2) {
            for p in Permission::ALL {
                if pair[1].allows(p) {
                    assert!(
                        pair[0].allows(p),
                        "{} lacks {p} that {} has",
                        pair[0],
                        pair[1]
                    );
                }
            }
        }
    }

    #[test]
    fn only_admin_manages_users_keys_and_the_plant_model_and_reads_the_audit_log() {
        for role in [Role::Supervisor, Role::Operator, Role::Viewer] {
            assert!(!role.allows(Permission::UsersManage));
            assert!(!role.allows(Permission::ApiKeysManage));
            assert!(!role.allows(Permission::PlantManage));
            assert!(!role.allows(Permission::AuditRead));
            assert!(!role.allows(Permission::ModelsManage));
        }
        assert!(Role::Supervisor.allows(Permission::OrdersApprove));
        assert!(!Role::Operator.allows(Permission::OrdersApprove));
        assert!(Role::Supervisor.allows(Permission::EnergyManage));
        assert!(!Role::Operator.allows(Permission::EnergyManage));
        assert!(!Role::Viewer.allows(Permission::EnergyManage));
    }

    #[test]
    fn a_pending_second_factor_leaves_only_self_service() {
        let mut admin = Principal {
            role: Role::Admin,
            subject: Subject::System,
            mfa_enrolment_pending: true,
            sites: SiteScope::All,
        };
        assert!(admin.can(Permission::SelfSecurity));
        assert!(admin.can(Permission::SelfRead));
        assert!(!admin.can(Permission::UsersManage));
        assert!(!admin.can(Permission::PlantRead));
        admin.mfa_enrolment_pending = false;
        assert!(admin.can(Permission::UsersManage));
    }

    #[test]
    fn grant_never_escalates() {
        assert!(Role::Admin.can_grant(Role::Viewer));
        assert!(Role::Supervisor.can_grant(Role::Supervisor));
        assert!(!Role::Operator.can_grant(Role::Supervisor));
    }

    #[test]
    fn role_parse_round_trips() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse(" Admin "), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn username_rules() {
        assert!(validate_username("username", "ops.lead-2").is_ok());
        assert_eq!(
            validate_username("username", "ab").unwrap_err().field,
            "username"
        );
        assert!(validate_username("username", "Admin").is_err());
        assert!(validate_username("username", "a b c").is_err());
        assert!(validate_username("username", &Uuid::now_v7().to_string()).is_err());
    }

    #[test]
    fn password_rules() {
        assert!(validate_password("password", "correct horse battery").is_ok());
        assert!(
            validate_password("password", "short")
                .unwrap_err()
                .reason
                .contains("at least 12")
        );
        assert!(validate_password("password", &"x".repeat(PASSWORD_MAX + 1)).is_err());
    }

    #[test]
    fn api_key_activity() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        let mut key = ApiKey {
            id: ApiKeyId(Uuid::nil()),
            prefix: "p".into(),
            secret_hash: vec![],
            name: "n".into(),
            role: Role::Viewer,
            sites: SiteScope::All,
            created_by: None,
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        assert!(key.is_active(now));
        key.expires_at = Some(now);
        assert!(!key.is_active(now));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!key.is_active(now));
    }

    fn sites(names: &[&str]) -> SiteScope {
        SiteScope::named("sites", names).unwrap()
    }

    fn principal(role: Role, scope: SiteScope) -> Principal {
        Principal {
            role,
            sites: scope,
            subject: Subject::System,
            mfa_enrolment_pending: false,
        }
    }

    #[test]
    fn a_scope_contains_only_its_sites_and_all_contains_every_site() {
        let a = sites(&["plant-a"]);
        assert!(a.contains("plant-a"));
        assert!(!a.contains("plant-b"));
        assert!(!a.contains("Plant-A"), "site names compare exactly");
        assert!(SiteScope::All.contains("anything"));
        assert!(!SiteScope::Sites(BTreeSet::new()).contains("plant-a"));
    }

    #[test]
    fn only_all_covers_all_and_lists_cover_their_subsets() {
        let ab = sites(&["plant-a", "plant-b"]);
        let a = sites(&["plant-a"]);
        assert!(SiteScope::All.covers(&SiteScope::All));
        assert!(SiteScope::All.covers(&ab));
        assert!(ab.covers(&a));
        assert!(ab.covers(&ab));
        assert!(!a.covers(&ab));
        assert!(!ab.covers(&SiteScope::All));
    }

    #[test]
    fn intersections_narrow() {
        let ab = sites(&["plant-a", "plant-b"]);
        let bc = sites(&["plant-b", "plant-c"]);
        assert_eq!(ab.intersection(&bc), sites(&["plant-b"]));
        assert_eq!(SiteScope::All.intersection(&ab), ab);
        assert_eq!(bc.intersection(&SiteScope::All), bc);
        assert_eq!(SiteScope::All.intersection(&SiteScope::All), SiteScope::All);
        assert_eq!(
            sites(&["plant-a"]).intersection(&sites(&["plant-c"])),
            SiteScope::Sites(BTreeSet::new())
        );
    }

    #[test]
    fn named_scopes_follow_the_site_rules_and_are_never_empty() {
        assert_eq!(sites(&["b", "a", "a"]).to_string(), "a,b");
        assert_eq!(SiteScope::All.to_string(), "all");
        let empty: [&str; 0] = [];
        let problems = SiteScope::named("sites", &empty).unwrap_err();
        assert_eq!(problems[0].field, "sites");
        let problems = SiteScope::named("sites", &["ok", "a/b", ""]).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["sites[1]", "sites[2]"]);
    }

    #[test]
    fn granting_never_escalates_role_or_sites() {
        let site_admin = principal(Role::Admin, sites(&["plant-a", "plant-b"]));
        assert!(site_admin.can_grant(Role::Viewer, &sites(&["plant-a"])));
        assert!(site_admin.can_grant(Role::Admin, &sites(&["plant-a", "plant-b"])));
        assert!(!site_admin.can_grant(Role::Viewer, &sites(&["plant-c"])));
        assert!(!site_admin.can_grant(Role::Viewer, &SiteScope::All));
        let supervisor = principal(Role::Supervisor, SiteScope::All);
        assert!(supervisor.can_grant(Role::Operator, &SiteScope::All));
        assert!(!supervisor.can_grant(Role::Admin, &sites(&["plant-a"])));
    }

    #[test]
    fn site_access_follows_the_principal_scope() {
        let scoped = principal(Role::Operator, sites(&["plant-a"]));
        assert!(scoped.can_access_site("plant-a"));
        assert!(!scoped.can_access_site("plant-b"));
        assert!(principal(Role::Viewer, SiteScope::All).can_access_site("plant-b"));
    }
}
