//! fipd: the floating-IPv6 API server.
//!
//! Layers, outermost first: [`http`] (axum handlers, OpenAPI, problem+json),
//! [`app`] (domain logic, authorisation), [`store`] (SQL for PostgreSQL and
//! SQLite), on top of [`domain`] types; [`background`] runs the controller
//! and cross-replica notifications. [`config`] and [`server`] wire them.

pub mod app;
pub mod background;
pub mod config;
pub mod domain;
pub mod http;
pub mod server;
pub mod store;
