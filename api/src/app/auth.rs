//! Who is calling: bearer tokens to principals.

use sha2::{Digest, Sha256};

use super::hosts::AGENT_TOKEN_PREFIX;
use super::tokens::PROJECT_TOKEN_PREFIX;
use super::{App, AppError, AppResult};
use crate::domain::ProjectId;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Can do everything.
    Admin,
    /// Sees and changes only its project's floating IPs and instances; reads
    /// networks and pools.
    Project {
        project_id: ProjectId,
        token_id: String,
    },
    /// A host's agent: only the agent endpoints, only for its own host.
    Agent { host_id: String, host_name: String },
}

impl Principal {
    pub fn require_admin(&self) -> AppResult<()> {
        match self {
            Self::Admin => Ok(()),
            _ => Err(AppError::Forbidden(
                "this operation needs the admin token".into(),
            )),
        }
    }

    /// The project a project token is confined to; `None` for admin.
    pub fn project(&self) -> Option<&ProjectId> {
        match self {
            Self::Project { project_id, .. } => Some(project_id),
            _ => None,
        }
    }

    /// Whether an object of `project_id` is visible. Invisible objects are
    /// answered with 404, so a project cannot probe for another's IDs.
    pub fn sees(&self, project_id: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Project { project_id: p, .. } => p.as_str() == project_id,
            Self::Agent { .. } => false,
        }
    }

    /// The project a new object belongs to: project tokens create in their
    /// own project; the admin must say which.
    pub fn owning_project(&self, requested: Option<ProjectId>) -> AppResult<ProjectId> {
        if let Self::Agent { .. } = self {
            return Err(AppError::Forbidden(
                "agent tokens cannot create objects".into(),
            ));
        }
        match (self.project(), requested) {
            (None, Some(p)) => Ok(p),
            // The admin token belongs to no project, so it may not create
            // anything without naming one: a permission, not a schema rule.
            (None, None) => Err(AppError::Forbidden(
                "project_id: the admin token belongs to no project; name the project to create in"
                    .into(),
            )),
            (Some(own), Some(p)) if &p != own => Err(AppError::Forbidden(
                "a project token can only create objects in its own project".into(),
            )),
            (Some(own), _) => Ok(own.clone()),
        }
    }

    /// A stable key for per-caller records (idempotency keys).
    pub fn scope(&self) -> String {
        match self {
            Self::Admin => "admin".into(),
            Self::Project { token_id, .. } => format!("token:{token_id}"),
            Self::Agent { host_id, .. } => format!("host:{host_id}"),
        }
    }
}

/// Hex SHA-256: how tokens are stored and compared. Tokens are 256-bit
/// random secrets, so a fast unsalted hash is enough.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl App {
    /// Resolves a bearer token to a principal.
    pub async fn authenticate(&self, token: &str) -> AppResult<Principal> {
        let hash = hash_token(token);
        // Comparing hashes, not secrets, leaks no timing about the secret.
        if hash == self.config.admin_token_hash {
            return Ok(Principal::Admin);
        }
        // The prefix says which table could know the token, so a bad token
        // costs at most one lookup, and one without a prefix of ours none.
        if token.starts_with(PROJECT_TOKEN_PREFIX) {
            if let Some(row) = self.store.token_by_hash(&hash).await? {
                let project_id = ProjectId::parse(&row.project_id).map_err(|e| {
                    crate::store::StoreError::Corrupt(format!("token project: {e}"))
                })?;
                return Ok(Principal::Project {
                    project_id,
                    token_id: row.id,
                });
            }
        } else if token.starts_with(AGENT_TOKEN_PREFIX) {
            if let Some(host) = self.store.host_by_token_hash(&hash).await? {
                return Ok(Principal::Agent {
                    host_id: host.id,
                    host_name: host.name,
                });
            }
        }
        Err(AppError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(p: &str) -> Principal {
        Principal::Project {
            project_id: ProjectId::parse(p).unwrap(),
            token_id: "t".into(),
        }
    }

    #[test]
    fn project_tokens_see_only_their_project() {
        assert!(project("a").sees("a"));
        assert!(!project("a").sees("b"));
        assert!(Principal::Admin.sees("b"));
    }

    #[test]
    fn admin_must_name_the_owning_project() {
        assert!(Principal::Admin.owning_project(None).is_err());
        let p = ProjectId::parse("x").unwrap();
        assert_eq!(Principal::Admin.owning_project(Some(p.clone())).unwrap(), p);
    }

    #[test]
    fn project_tokens_create_in_their_own_project_only() {
        assert_eq!(project("a").owning_project(None).unwrap().as_str(), "a");
        assert!(matches!(
            project("a").owning_project(Some(ProjectId::parse("b").unwrap())),
            Err(AppError::Forbidden(_))
        ));
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
