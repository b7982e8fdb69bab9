//! The admission-webhook side of the mutation: an `AdmissionReview` (admission.k8s.io/v1) in,
//! the `AdmissionReview` answer out, with a JSON Patch that adds exactly what `ward-inject
//! file` adds to the same pod. The webhook's `namespaceSelector` (`ward.dev/inject: enabled`)
//! decides which namespaces are asked, so every Pod it is asked about is injected unless its
//! own annotation says `disabled`. Nothing is written anywhere, so a `dryRun` request gets the
//! same answer. A pod with an invalid annotation is refused (`allowed: false`) with the message
//! `ward-inject file` prints; anything that is not a Pod CREATE is allowed unchanged (pods are
//! immutable where it matters: an UPDATE cannot add containers).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::annotations::{self, AnnotationError};
use crate::config::InjectConfig;
use crate::mutate;

/// Why a review could not be answered at all (not a refusal: a malformed request).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not an AdmissionReview v1 with a request and its uid.
    #[error("not an admission.k8s.io/v1 AdmissionReview request: {0}")]
    Malformed(&'static str),
}

/// The JSON Patch that injects `pod`, or `None` when it is not to be injected.
pub fn patch(
    pod: &Value,
    cfg: &InjectConfig,
    document: &str,
) -> Result<Option<Value>, AnnotationError> {
    let marks = annotations::string_map(pod.pointer("/metadata/annotations"));
    let settings = annotations::settings(document, &marks)?;
    if marks
        .get(annotations::INJECT)
        .is_some_and(|v| v == "disabled")
        || mutate::already_injected(&pod["spec"])
    {
        return Ok(None);
    }
    let mut spec = pod["spec"].clone();
    mutate::inject(&mut spec, cfg, &settings);
    let mut metadata = pod["metadata"].clone();
    mutate::mark(&mut metadata);
    // `add` on an existing member replaces it (RFC 6902), so one op per member, whole.
    Ok(Some(json!([
        {"op": "add", "path": "/spec/initContainers", "value": spec["initContainers"]},
        {"op": "add", "path": "/spec/volumes", "value": spec["volumes"]},
        {"op": "add", "path": "/metadata/annotations", "value": metadata["annotations"]},
    ])))
}

/// Answers one review.
pub fn review(request: &Value, cfg: &InjectConfig) -> Result<Value, ReviewError> {
    if request["apiVersion"] != "admission.k8s.io/v1" || request["kind"] != "AdmissionReview" {
        return Err(ReviewError::Malformed("apiVersion/kind"));
    }
    let req = request
        .get("request")
        .ok_or(ReviewError::Malformed("no request"))?;
    let uid = req["uid"]
        .as_str()
        .ok_or(ReviewError::Malformed("no request.uid"))?;
    let mut response = json!({"uid": uid, "allowed": true});
    let is_pod_create = req.pointer("/kind/kind") == Some(&json!("Pod"))
        && req["operation"] == "CREATE"
        && req["object"].is_object();
    if is_pod_create {
        let pod = &req["object"];
        let name = pod["metadata"]["name"]
            .as_str()
            .or_else(|| pod["metadata"]["generateName"].as_str())
            .unwrap_or("?");
        let ns = req["namespace"].as_str().unwrap_or("default");
        match patch(pod, cfg, &format!("Pod {ns}/{name}")) {
            Ok(Some(ops)) => {
                response["patchType"] = json!("JSONPatch");
                response["patch"] = json!(STANDARD.encode(ops.to_string()));
            }
            Ok(None) => {}
            Err(e) => {
                response["allowed"] = json!(false);
                response["status"] = json!({"code": 400, "message": e.to_string()});
            }
        }
    }
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}
