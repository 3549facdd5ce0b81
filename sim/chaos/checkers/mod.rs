//! PLACEHOLDER written by the harness author so the harness compiles; the checkers author
//! replaces this whole file.

use super::history::{Entry, Violation};

pub fn check_all(_history: &[Entry]) -> Vec<Violation> {
    Vec::new()
}
