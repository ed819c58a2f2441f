//! Project tokens: bearer secrets confined to one project.

use rand::RngCore;

use super::{hash_token, new_id, paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::{Description, ProjectId};
use crate::store::{now_ms, TokenRow};

/// Prefix of project tokens, so a leaked one is recognisable in logs and by
/// secret scanners.
pub(crate) const PROJECT_TOKEN_PREFIX: &str = "fipp_";

/// A 256-bit random secret in hex, with a prefix.
pub fn generate_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

impl App {
    /// Creates a project token; the secret is returned here only.
    pub async fn token_create(
        &self,
        who: &Principal,
        project_id: ProjectId,
        description: Description,
    ) -> AppResult<(TokenRow, String)> {
        who.require_admin()?;
        let secret = generate_secret(PROJECT_TOKEN_PREFIX);
        let row = TokenRow {
            id: new_id(),
            project_id: project_id.to_string(),
            description: description.as_str().to_owned(),
            token_hash: hash_token(&secret),
            created_at: now_ms(),
        };
        self.store.token_insert(&row).await?;
        Ok((row, secret))
    }

    pub async fn token_list(
        &self,
        who: &Principal,
        page: &PageRequest,
    ) -> AppResult<(Vec<TokenRow>, Option<String>)> {
        who.require_admin()?;
        let rows = self
            .store
            .token_list(page.after.as_deref(), page.limit + 1)
            .await?;
        Ok(paginate(rows, page.limit, |r| r.id.clone()))
    }

    pub async fn token_get(&self, who: &Principal, id: &str) -> AppResult<TokenRow> {
        who.require_admin()?;
        self.store
            .token_get(id)
            .await?
            .ok_or(AppError::NotFound("token"))
    }

    pub async fn token_delete(&self, who: &Principal, id: &str) -> AppResult<()> {
        who.require_admin()?;
        if self.store.token_delete(id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("token"))
        }
    }
}
