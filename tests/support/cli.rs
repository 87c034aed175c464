//! Running the `dreamgym` binary from the integration tests (included by path).

use std::process::Command;

/// The binary, run from the crate root.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dreamgym"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `c`: (success, stdout, stderr).
pub fn run(c: &mut Command) -> (bool, String, String) {
    let o = c.output().expect("binary runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}
