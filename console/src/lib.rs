//! The aimass web console: what risk teams read and decide in a browser —
//! models and their versions, training runs, deployments, drift and the
//! history of every decision — rendered on the server from the cluster's
//! own objects, live over Server-Sent Events fed by watches.
//!
//! It keeps no database and acts strictly as the signed-in user: a
//! Kubernetes token, validated by a TokenReview, is held server-side behind
//! an HttpOnly, SameSite=Strict cookie; every page and stream is checked
//! with a SubjectAccessReview and read with that token, and every change is
//! made with it, so the API server's RBAC and admission policies decide.
//! The console's own identity may create TokenReviews and
//! SubjectAccessReviews and nothing else.

pub mod chart;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod live;
pub mod pages;
pub mod session;
pub mod views;
