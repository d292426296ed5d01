//! One module per command. Each validates before it touches AWS, checks the account before it
//! changes anything, and ends with one [`crate::run::Failure`] or an exit code.

pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod down;
pub(crate) mod graph;
pub(crate) mod outputs;
pub(crate) mod plan;
pub(crate) mod refresh;
pub(crate) mod status;
pub(crate) mod unlock;
pub(crate) mod up;
