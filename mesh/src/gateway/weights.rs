//! Stepping the weights of a route's backends (the canary demos: 100/0, 90/10, ...).

use super::error::{GatewayError, Violation};
use super::object::RouteObject;

const MAX_WEIGHT: u32 = 1_000_000;

pub(super) fn set_weights(
    object: &mut RouteObject,
    weights: &[(&str, u32)],
) -> Result<(), GatewayError> {
    // Check everything first, so that a refused call changes nothing.
    let names = backend_names(object);
    for &(name, weight) in weights {
        if !names.iter().any(|n| n == name) {
            return Err(GatewayError::UnknownBackend {
                object: object.label(),
                name: name.to_owned(),
            });
        }
        if weight > MAX_WEIGHT {
            return Err(GatewayError::Invalid {
                object: object.label(),
                field: format!("backendRef {name} weight"),
                violation: Violation::OutOfRange {
                    value: i64::from(weight),
                    min: 0,
                    max: i64::from(MAX_WEIGHT),
                },
            });
        }
    }
    let weight_of = |name: &str| {
        weights
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            // In range: checked above.
            .map(|&(_, w)| i32::try_from(w).unwrap_or(i32::MAX))
    };
    match object {
        RouteObject::Http(route) => {
            for backend in route
                .spec
                .rules
                .iter_mut()
                .flatten()
                .flat_map(|rule| rule.backend_refs.iter_mut().flatten())
            {
                if let Some(weight) = weight_of(&backend.name) {
                    backend.weight = Some(weight);
                }
            }
        }
        RouteObject::Grpc(route) => {
            for backend in route
                .spec
                .rules
                .iter_mut()
                .flatten()
                .flat_map(|rule| rule.backend_refs.iter_mut().flatten())
            {
                if let Some(weight) = weight_of(&backend.name) {
                    backend.weight = Some(weight);
                }
            }
        }
    }
    Ok(())
}

fn backend_names(object: &RouteObject) -> Vec<String> {
    match object {
        RouteObject::Http(route) => route
            .spec
            .rules
            .iter()
            .flatten()
            .flat_map(|rule| rule.backend_refs.iter().flatten())
            .map(|b| b.name.clone())
            .collect(),
        RouteObject::Grpc(route) => route
            .spec
            .rules
            .iter()
            .flatten()
            .flat_map(|rule| rule.backend_refs.iter().flatten())
            .map(|b| b.name.clone())
            .collect(),
    }
}
