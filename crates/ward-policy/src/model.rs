//! The compiled policy and its evaluation.

use std::fmt;

use serde::{Deserialize, Serialize};
use ward_identity::{IdPattern, SpiffeId};

use crate::http::{PathPattern, RequestFacts};

/// Whether decisions are enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denied peers are refused.
    #[default]
    Enforce,
    /// Denied peers are logged and counted as would-deny, then allowed.
    Audit,
}

impl fmt::Display for Mode {
    /// As the policy file spells it (`enforce`, `audit`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
        })
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the peer in.
    #[default]
    Allow,
    /// Keep the peer out; beats any allow rule.
    Deny,
}

/// One compiled rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The operator's name for it, unique in the file; reported with every decision.
    pub name: String,
    /// Allow or deny.
    pub action: Action,
    /// Peers it applies to.
    pub from: Vec<IdPattern>,
    /// Listeners it applies to; `None` means every inbound listener.
    pub listeners: Option<Vec<String>>,
    /// HTTP methods it applies to (HTTP listeners only); `None` means any.
    pub methods: Option<Vec<String>>,
    /// Request paths it applies to (HTTP listeners only); `None` means any.
    pub paths: Option<Vec<PathPattern>>,
}

impl Rule {
    fn applies(&self, peer: &SpiffeId, listener: &str) -> bool {
        self.listeners
            .as_ref()
            .is_none_or(|ls| ls.iter().any(|l| l == listener))
            && self.from.iter().any(|p| p.matches(peer))
    }

    /// True when the rule looks at requests, not only at connections.
    pub fn is_per_request(&self) -> bool {
        self.methods.is_some() || self.paths.is_some()
    }

    fn admits(&self, req: &RequestFacts<'_>) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == req.method))
            && self
                .paths
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.matches(req.path)))
    }
}

/// A compiled, validated policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Enforce or audit.
    pub mode: Mode,
    /// Rules in file order.
    pub rules: Vec<Rule>,
}

/// The outcome of the rules, before the mode is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An allow rule matched and no deny rule did.
    Allow {
        /// The first matching allow rule.
        rule: String,
    },
    /// A deny rule matched, or nothing did.
    Deny {
        /// The first matching deny rule; `None` for the default deny.
        rule: Option<String>,
    },
}

/// What a verdict does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed by a rule.
    Allow,
    /// Denied, and enforced.
    Deny,
    /// Denied by the rules, let through by audit mode (and reported).
    AuditDeny,
}

impl Outcome {
    /// `allow`, `deny`, `audit-deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::AuditDeny => "audit-deny",
        }
    }
}

/// A decision plus whether it is enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What the rules say.
    pub decision: Decision,
    /// The policy's mode when the decision was made.
    pub mode: Mode,
}

impl Verdict {
    /// True when the connection may proceed: allowed, or denied only in audit mode.
    pub fn permits(&self) -> bool {
        matches!(self.decision, Decision::Allow { .. }) || self.mode == Mode::Audit
    }

    /// What happens to the connection or request.
    pub fn outcome(&self) -> Outcome {
        match (&self.decision, self.mode) {
            (Decision::Allow { .. }, _) => Outcome::Allow,
            (Decision::Deny { .. }, Mode::Enforce) => Outcome::Deny,
            (Decision::Deny { .. }, Mode::Audit) => Outcome::AuditDeny,
        }
    }

    /// `allow`, `deny`, or `audit-deny`: the outcome as metrics and logs name it.
    pub fn label(&self) -> &'static str {
        self.outcome().as_str()
    }

    /// The deciding rule's name, or `default-deny`.
    pub fn rule(&self) -> &str {
        match &self.decision {
            Decision::Allow { rule } | Decision::Deny { rule: Some(rule) } => rule,
            Decision::Deny { rule: None } => "default-deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rule: {})", self.label(), self.rule())
    }
}

impl Policy {
    /// Decides whether `peer` may connect through `listener`. On an HTTP listener this is the
    /// handshake's question, "may this peer send any request at all": deny rules that name
    /// methods or paths do not refuse the connection (they refuse requests), and an allow
    /// rule that names them admits it (its requests are then checked one by one).
    pub fn evaluate(&self, peer: &SpiffeId, listener: &str) -> Verdict {
        self.decide(|r| {
            r.applies(peer, listener) && (r.action == Action::Allow || !r.is_per_request())
        })
    }

    /// Decides one request of `peer` on the HTTP listener `listener`.
    pub fn evaluate_request(
        &self,
        peer: &SpiffeId,
        listener: &str,
        request: &RequestFacts<'_>,
    ) -> Verdict {
        self.decide(|r| r.applies(peer, listener) && r.admits(request))
    }

    /// Deny rules first, then allow rules, then the default deny, among the rules `matches`.
    fn decide(&self, matches: impl Fn(&Rule) -> bool) -> Verdict {
        let first = |action| {
            self.rules
                .iter()
                .find(|r| r.action == action && matches(r))
                .map(|r| r.name.clone())
        };
        let decision = match first(Action::Deny) {
            Some(rule) => Decision::Deny { rule: Some(rule) },
            None => match first(Action::Allow) {
                Some(rule) => Decision::Allow { rule },
                None => Decision::Deny { rule: None },
            },
        };
        Verdict {
            decision,
            mode: self.mode,
        }
    }
}
