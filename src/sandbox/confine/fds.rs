//! Inherited file descriptors.

use crate::sandbox::error::ConfineError;
use crate::sandbox::wire::CONTROL_FD;

use super::sys;

/// In the helper: close everything inherited except stdio (fd 0 is the control socket).
pub fn close_inherited() -> Result<(), ConfineError> {
    sys::close_from(CONTROL_FD.max(2) as u32 + 1).map_err(|e| ConfineError::Control(e.into()))
}

/// In the sandbox init, before spawning the payload: every descriptor above stderr
/// becomes close-on-exec, so the payload inherits exactly stdin, stdout and stderr.
pub fn cloexec_all_but_stdio() -> Result<(), ConfineError> {
    sys::cloexec_from(3).map_err(|e| ConfineError::Control(e.into()))
}
