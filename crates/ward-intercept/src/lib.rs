//! The interception rules as a library: [`rules`] turns a plan into the nftables ruleset and
//! checks address ranges, for the `ward-intercept` binary and for ward-inject, which checks the
//! ranges it will hand to it.

#![forbid(unsafe_code)]

pub mod rules;
