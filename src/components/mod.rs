//! Reusable view pieces.
pub mod copy_button;
pub mod form_error;
pub mod nav;
