//! Who is calling, and what they may do.

use std::collections::BTreeSet;

use eucora_domain::ActorId;
use eucora_domain::cab::Role;
use serde::Serialize;

/// The caller, from the identity token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub id: ActorId,
    pub roles: BTreeSet<Role>,
}

/// The caller lacks every role that would allow the action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this needs one of the roles: {}", .needed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
pub struct Forbidden {
    pub needed: Vec<Role>,
}

impl Actor {
    pub fn new(id: ActorId, roles: impl IntoIterator<Item = Role>) -> Actor {
        Actor {
            id,
            roles: roles.into_iter().collect(),
        }
    }

    /// The system itself (schedules, queue consumers), named after the function acting.
    ///
    /// # Panics
    /// If `name` is not a valid identifier; callers pass fixed names such as `"risk-scoring"`.
    pub fn system(name: &'static str) -> Actor {
        Actor {
            id: ActorId::parse(name).expect("system actor names are valid identifiers"),
            roles: BTreeSet::new(),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Succeeds when the actor holds at least one of `any_of`.
    pub fn require(&self, any_of: &[Role]) -> Result<(), Forbidden> {
        if any_of.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            Err(Forbidden {
                needed: any_of.to_vec(),
            })
        }
    }

    pub fn roles(&self) -> Vec<Role> {
        self.roles.iter().copied().collect()
    }
}
