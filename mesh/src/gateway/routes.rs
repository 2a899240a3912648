//! A validated route set: what the loader returns and what the twin holds.

use std::ops::Deref;

use super::error::GatewayError;
use super::object::RouteObject;
use super::{validate, weights};

/// Route objects that passed every check of [`crate::gateway::load`]: each object is valid and
/// none is defined twice. Only the loader and [`Routes::new`] make one, so whoever holds a
/// `Routes` need not check it again. A change (new weights) makes a new set, checked as well.
///
/// It reads as a slice of [`RouteObject`]s; it cannot be changed in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes(Vec<RouteObject>);

impl Routes {
    /// Checks objects (for instance built in code) as the loader does.
    pub fn new(objects: Vec<RouteObject>) -> Result<Routes, GatewayError> {
        validate::validate(&objects)?;
        Ok(Routes(objects))
    }

    /// No routes at all.
    pub fn empty() -> Routes {
        Routes::default()
    }

    /// Objects the loader has just checked.
    pub(super) fn checked(objects: Vec<RouteObject>) -> Routes {
        Routes(objects)
    }

    /// The same routes with the weights of their backendRefs set by backend Service name, in
    /// every rule of every route (for demos that step weights). A name a route does not have, or
    /// a weight above 1,000,000, is an error, and then nothing changes.
    pub fn with_weights(&self, weights: &[(&str, u32)]) -> Result<Routes, GatewayError> {
        let mut objects = self.0.clone();
        for object in &mut objects {
            weights::set_weights(object, weights)?;
        }
        Routes::new(objects)
    }

    /// The objects, to change them (the result is no longer checked).
    pub fn into_objects(self) -> Vec<RouteObject> {
        self.0
    }
}

impl Deref for Routes {
    type Target = [RouteObject];

    fn deref(&self) -> &[RouteObject] {
        &self.0
    }
}

impl IntoIterator for Routes {
    type Item = RouteObject;
    type IntoIter = std::vec::IntoIter<RouteObject>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Routes {
    type Item = &'a RouteObject;
    type IntoIter = std::slice::Iter<'a, RouteObject>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
