//! ward-policy: the operators' allow-list, from YAML text to a pure decision.
//!
//! [`compile`] turns a policy file into a [`Policy`] once, refusing (with file, line and
//! column) anything that would otherwise be a silent no-match: an invalid SPIFFE ID or
//! pattern, a listener the proxy does not have, a duplicate rule name, an empty `from`.
//! [`Policy::evaluate`] is then a pure function of the peer's SPIFFE ID and the listener:
//! deny rules win over allow rules, and with no matching allow rule the answer is deny.
//! In `audit` mode the same decision is computed and reported, but not enforced.
//! On HTTP listeners rules may also name methods and paths; [`Policy::evaluate_request`]
//! decides each request on its [`http::normalize_path`]-normalized path.

#![forbid(unsafe_code)]

mod compile;
pub mod http;
mod model;

pub use compile::{compile, Listener};
pub use model::{Action, Decision, Mode, Outcome, Policy, Rule, Verdict};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_http;
