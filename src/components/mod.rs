//! Reusable view pieces.
pub mod chart;
pub mod copy_button;
pub mod form_error;
pub mod nav;
pub mod session;
