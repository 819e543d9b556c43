//! docs/reference.md, "Who may send what": the function's own principal, the only sender whose follow-up
//! checks and fan-out children are honoured. Asked of STS (`GetCallerIdentity`) at
//! most once per container, and only when such a message arrives: a batch of plain
//! requests never pays for the call.

use tokio::sync::OnceCell;

use crate::classify::{ServiceError, classify};

/// Who the function is, as SQS names a sender.
#[derive(Debug)]
pub struct Identity {
    sts: Option<aws_sdk_sts::Client>,
    /// The caller's `UserId`, once known. A failed call is not kept: the next
    /// message that needs it asks again.
    user_id: OnceCell<String>,
}

impl Identity {
    pub fn new(sts: aws_sdk_sts::Client) -> Self {
        Identity { sts: Some(sts), user_id: OnceCell::new() }
    }

    /// No way to know: nothing is trusted as the function's own.
    pub fn none() -> Self {
        Identity { sts: None, user_id: OnceCell::new() }
    }

    /// The function's `UserId` (`AROA…:<session>` for a role). `Ok(None)` when this
    /// function has no way to ask.
    pub async fn user_id(&self) -> Result<Option<&str>, ServiceError> {
        let Some(sts) = &self.sts else { return Ok(None) };
        let id =
            self.user_id
                .get_or_try_init(|| async {
                    let out = sts.get_caller_identity().send().await.map_err(|e| classify(&e))?;
                    out.user_id().filter(|id| !id.is_empty()).map(str::to_owned).ok_or_else(|| {
                        ServiceError::transient("NoUserId", "GetCallerIdentity answered without a UserId")
                    })
                })
                .await?;
        Ok(Some(id.as_str()))
    }
}

/// Whether an SQS `SenderId` names the same principal as a `UserId`: the parts before
/// the first `:` match. A role's sessions differ after it (`AROA…:session`), and every
/// container of the function runs under its own session of the one role.
pub fn same_principal(sender_id: &str, user_id: &str) -> bool {
    let principal = |s: &str| s.split(':').next().unwrap_or("").to_owned();
    let sender = principal(sender_id);
    !sender.is_empty() && sender == principal(user_id)
}

#[cfg(test)]
mod tests {
    use super::same_principal;

    #[test]
    fn a_sender_is_the_function_when_its_principal_part_matches_whatever_the_session() {
        assert!(same_principal("AROAEXAMPLEROLE:teardown-1", "AROAEXAMPLEROLE:teardown-2"));
        assert!(same_principal("AIDAEXAMPLEUSER", "AIDAEXAMPLEUSER"));
        assert!(!same_principal("AROAOTHERROLE:teardown-1", "AROAEXAMPLEROLE:teardown-1"));
        assert!(!same_principal("AROAEXAMPLEROLE", "AROAEXAMPLEROLEX:s"), "a prefix is not the same principal");
        assert!(!same_principal("", ""), "no sender is nobody's");
        assert!(!same_principal(":teardown", ":teardown"));
    }
}
