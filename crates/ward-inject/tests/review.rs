//! `ward-inject review`, the admission webhook's answer, on AdmissionReview documents shaped as
//! the API server sends them (a Pod with `generateName`, the defaults the API server fills in,
//! `dryRun`, `UPDATE`, an already injected pod): the JSON Patch, applied to the pod, gives the
//! same init containers, volumes and annotation as `ward-inject file` gives the Deployment the
//! pod came from; an opted-out or injected pod and an UPDATE are allowed unchanged; a bad
//! annotation refuses the pod with the same message; a malformed review is an error, exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::process::Output;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use support::{demo_inject, shipped_config};

fn ward_inject(args: &[&str], input: &str) -> Output {
    support::ward_inject(args, &shipped_config(), input)
}

/// backend's Deployment from deploy/kubernetes/demo-inject, as written and as `file` injects it.
fn backend(injected: bool) -> Value {
    let text = demo_inject(&["namespace", "backend"]);
    let text = if injected {
        let out = ward_inject(&["file", "-"], &text);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    } else {
        text
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap()
}

/// The Pod the ReplicaSet controller asks to create, with the API server's defaults.
fn pod_from(deployment: &Value) -> Value {
    let template = &deployment["spec"]["template"];
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template["metadata"].clone(),
        "spec": template["spec"].clone(),
    });
    pod["metadata"]["generateName"] = json!("backend-7d9c5b6f4-");
    pod["metadata"]["namespace"] = json!("ward-inject-demo");
    pod["spec"]["dnsPolicy"] = json!("ClusterFirst");
    pod["spec"]["restartPolicy"] = json!("Always");
    pod["spec"]["schedulerName"] = json!("default-scheduler");
    pod["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    pod["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    pod
}

fn review(pod: &Value, operation: &str, dry_run: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ward-inject-demo",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": if operation == "UPDATE" { pod.clone() } else { Value::Null },
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    })
}

fn answer(review: &Value) -> Value {
    let out = ward_inject(&["review", "-"], &review.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    answer["response"].clone()
}

/// Applies a patch made of `add` operations on object members (all the webhook sends).
fn apply(pod: &Value, response: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch");
    let ops: Value = serde_json::from_slice(
        &STANDARD
            .decode(response["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut pod = pod.clone();
    for op in ops.as_array().unwrap() {
        assert_eq!(op["op"], "add", "{op}");
        *pod.pointer_mut(op["path"].as_str().unwrap().rsplit_once('/').unwrap().0)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .entry(op["path"].as_str().unwrap().rsplit('/').next().unwrap())
            .or_insert(Value::Null) = op["value"].clone();
    }
    pod
}

#[test]
fn the_webhook_patches_a_pod_as_file_injects_its_deployment() {
    let pod = pod_from(&backend(false));
    let response = answer(&review(&pod, "CREATE", false));
    assert_eq!(response["allowed"], true);
    let patched = apply(&pod, &response);
    let by_file = &backend(true)["spec"]["template"];
    for part in [
        "/spec/initContainers",
        "/spec/volumes",
        "/metadata/annotations",
    ] {
        assert_eq!(patched.pointer(part), by_file.pointer(part), "{part}");
    }
    assert_eq!(
        patched["spec"]["containers"], pod["spec"]["containers"],
        "the app is untouched"
    );
    // dryRun: the same answer (nothing is written anywhere).
    assert_eq!(answer(&review(&pod, "CREATE", true)), response);
}

#[test]
fn updates_injected_and_opted_out_pods_pass_unchanged_and_bad_annotations_are_refused() {
    let pod = pod_from(&backend(false));
    for (what, review) in [
        ("UPDATE", review(&pod, "UPDATE", false)),
        (
            "already injected",
            review(&pod_from(&backend(true)), "CREATE", false),
        ),
        ("opted out", {
            let mut p = pod.clone();
            p["metadata"]["annotations"]["ward.dev/inject"] = json!("disabled");
            review_of(p)
        }),
    ] {
        let response = answer(&review);
        assert_eq!(response["allowed"], true, "{what}");
        assert!(response.get("patch").is_none(), "{what}: {response}");
    }
    let mut bad = pod.clone();
    bad["metadata"]["annotations"]["ward.dev/inbound-ports"] = json!("8080/grpc");
    let response = answer(&review_of(bad));
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "Pod ward-inject-demo/backend-7d9c5b6f4-: annotation ward.dev/inbound-ports: \"grpc\": the protocol is tcp or http"
    );

    let out = ward_inject(&["review", "-"], "{\"kind\": \"AdmissionReview\"}");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an admission.k8s.io/v1 AdmissionReview")
    );
}

fn review_of(pod: Value) -> Value {
    review(&pod, "CREATE", false)
}
