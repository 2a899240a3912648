//! The Gateway API CRDs' schemas, to check objects against as the API server does.
//!
//! The CRDs are found as `cargo xtask up` finds them ([`crate::cluster::fetch`]): the file
//! `GATEWAY_API_CRDS` names, else the copy in `.tools/` whose content matches the pinned checksum,
//! else downloaded there from the release (once; the download is checked before it is kept).
//!
//! What this checks, and what it cannot: each object is validated against its version's
//! `openAPIV3Schema` (types, enums, patterns, lengths, ranges, required fields). The schemas'
//! Kubernetes extensions are ignored by the `jsonschema` crate as unknown keywords, so the
//! `x-kubernetes-validations` rules (CEL expressions, such as "a parentRef's kind Service needs
//! group \"\"") are not evaluated here; and fields the schema does not know are accepted, as the
//! API server prunes them rather than refusing them (the route loader refuses them anyway).

use serde::Deserialize;
use serde_json::Value;

/// The CustomResourceDefinitions of a Gateway API release.
pub struct Crds {
    crds: Vec<Value>,
}

impl Crds {
    /// Reads the CRDs as `cargo xtask up` finds them; panics saying why when it cannot.
    pub fn load() -> Crds {
        let path =
            crate::cluster::fetch::crds(&crate::project::root(), &|name| std::env::var(name).ok())
                .unwrap_or_else(|e| panic!("no Gateway API CRDs: {e:#}"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let crds: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: malformed yaml: {e}", path.display()))
            })
            .filter(|doc| doc["kind"] == "CustomResourceDefinition")
            .collect();
        assert!(
            !crds.is_empty(),
            "{}: no CustomResourceDefinition in it",
            path.display()
        );
        Crds { crds }
    }

    /// The `openAPIV3Schema` of the served version of `kind` that `apiVersion` names.
    pub fn schema(&self, api_version: &str, kind: &str) -> Result<&Value, String> {
        let (group, version) = api_version
            .split_once('/')
            .ok_or_else(|| format!("apiVersion {api_version:?} names no group"))?;
        let crd = self
            .crds
            .iter()
            .find(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind)
            .ok_or_else(|| format!("no CRD for {kind} in {group}"))?;
        crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == version && v["served"] == true)
            .map(|v| &v["schema"]["openAPIV3Schema"])
            .filter(|schema| schema.is_object())
            .ok_or_else(|| format!("{kind}: no served version {version} with a schema"))
    }

    /// Validates an object against its CRD's schema; the error lists every violation.
    pub fn check(&self, object: &Value) -> Result<(), String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let schema = self.schema(api_version, kind)?;
        // A CRD schema is OpenAPI 3.0's dialect of JSON Schema draft 4.
        let validator = jsonschema::draft4::new(schema)
            .map_err(|e| format!("{kind} {api_version}: the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{kind}: {}", errors.join("; ")))
        }
    }
}
