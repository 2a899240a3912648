//! The scenario engine and its two backends. A scenario ([`scenario`]) is data; [`engine`] runs its
//! phases on a [`backend::Backend`], either [`local`] (the twin) or [`kind`] (a cluster), and
//! [`measure`] turns the client's summaries into phase results.

pub mod backend;
pub mod engine;
pub mod kind;
pub mod local;
pub mod measure;
pub mod scenario;
