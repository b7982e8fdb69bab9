//! `ward-inject file PATH|- --config inject.yaml`: prints the manifests with ward's sidecar and
//! interception init container added to every pod template that opts in (`ward.dev/inject:
//! enabled` on it, or on its Namespace document as a label or annotation; `disabled` on the
//! template wins), like `linkerd inject`. Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet
//! and Job documents; everything else passes through. Injecting twice changes nothing. Any
//! invalid annotation stops the whole run (exit 1, nothing printed) with the document, the
//! annotation and what is wrong. What happened to each document goes to stderr.

#![forbid(unsafe_code)]

mod admission;
mod annotations;
mod config;
mod mutate;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(
    name = "ward-inject",
    version,
    about = "Adds ward's sidecar to the pods that opt in."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the manifests in PATH (or `-`, stdin) with the sidecar injected.
    #[command(
        after_help = "Example:\n  ward-inject file deploy.yaml --config inject.yaml | kubectl apply -f -"
    )]
    File {
        /// Multi-document YAML, or `-`.
        path: String,
        /// The injector's settings (trust domain, CA, images, mesh ranges).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Answer one AdmissionReview (JSON, from PATH or `-`) as the admission webhook does: the
    /// AdmissionReview response, with the JSON Patch that injects the pod.
    #[command(after_help = "Example:\n  ward-inject review review.json --config inject.yaml")]
    Review {
        /// An admission.k8s.io/v1 AdmissionReview request, or `-`.
        path: String,
        /// The injector's settings.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Why nothing was printed.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
    #[error(transparent)]
    Config(#[from] ward_yaml::YamlError),
    #[error(transparent)]
    Annotation(#[from] annotations::AnnotationError),
    #[error(transparent)]
    Review(#[from] admission::ReviewError),
}

/// Where a kind keeps its pod template (metadata and spec), if it has one.
fn template(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some("/spec/template"),
        _ => None,
    }
}

fn name(doc: &Value) -> String {
    let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    format!(
        "{} {ns}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Injects every opted-in template of `docs`; returns what happened to each, for stderr.
fn inject_all(docs: &mut [Value], cfg: &config::InjectConfig) -> Result<Vec<String>, Error> {
    let mut namespaces: BTreeMap<String, bool> = BTreeMap::new();
    for doc in docs.iter().filter(|d| d["kind"] == "Namespace") {
        let mut marks = annotations::string_map(doc.pointer("/metadata/labels"));
        marks.extend(annotations::string_map(
            doc.pointer("/metadata/annotations"),
        ));
        if let Some(v) = marks.get(annotations::INJECT) {
            let document = name(doc);
            annotations::settings(
                &document,
                &BTreeMap::from([(annotations::INJECT.to_owned(), v.clone())]),
            )?;
            let ns = doc["metadata"]["name"].as_str().unwrap_or("").to_owned();
            namespaces.insert(ns, v == "enabled");
        }
    }
    let mut report = Vec::new();
    for doc in docs.iter_mut() {
        let Some(at) = doc["kind"].as_str().and_then(template) else {
            continue;
        };
        let document = name(doc);
        let ns = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let Some(tpl) = doc.pointer_mut(at) else {
            continue;
        };
        let marks = annotations::string_map(tpl.pointer("/metadata/annotations"));
        let settings = annotations::settings(&document, &marks)?;
        let wanted = match marks.get(annotations::INJECT).map(String::as_str) {
            Some("enabled") => true,
            Some(_) => false,
            None => namespaces.get(&ns).copied().unwrap_or(false),
        };
        if !wanted {
            report.push(format!("{document}: not opted in (ward.dev/inject)"));
            continue;
        }
        if mutate::already_injected(&tpl["spec"]) {
            report.push(format!("{document}: already has ward-proxy, unchanged"));
            continue;
        }
        mutate::inject(&mut tpl["spec"], cfg, &settings);
        mutate::mark(&mut tpl["metadata"]);
        report.push(format!("{document}: injected"));
    }
    Ok(report)
}

/// The text of PATH, or of stdin for `-`.
fn read_input(path: &str) -> Result<String, Error> {
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(text)
}

fn review(path: &str, config: &std::path::Path) -> Result<String, Error> {
    let cfg = config::InjectConfig::load(config)?;
    let text = read_input(path)?;
    let request: Value = serde_json::from_str(&text).map_err(|e| Error::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let answer = admission::review(&request, &cfg)?;
    Ok(format!("{answer}\n"))
}

fn file(path: &str, config: &std::path::Path) -> Result<String, Error> {
    let cfg = config::InjectConfig::load(config)?;
    let text = read_input(path)?;
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| Error::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    docs.retain(|d| !d.is_null());
    let report = inject_all(&mut docs, &cfg)?;
    for line in report {
        let _ = writeln!(std::io::stderr(), "ward-inject: {line}");
    }
    let mut out = String::new();
    for doc in &docs {
        let yaml = serde_saphyr::to_string(doc).map_err(|e| Error::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::File { path, config } => file(path, config),
        Cmd::Review { path, config } => review(path, config),
    };
    match result {
        Ok(out) => {
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ward-inject: error: {e}");
            ExitCode::FAILURE
        }
    }
}
