//! A broken copy of keys_doors for the tests of unsolvable instances (included by path).

use std::path::{Path, PathBuf};

/// keys_doors where picking up also deletes `agent_in` of the room: every goal stays reachable
/// if deletions are ignored (the static check passes), but nothing can be carried anywhere, so
/// `put_in_room` is unsolvable while `goto` and `pickup` are fine. Written to `dir`; returns the
/// file.
pub fn stranded_keys_doors(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/keys_doors.ron"),
    )
    .unwrap();
    let stranded = src.replacen(
        "\"not near(?o)\"],\n            message: Some(\"You pick up",
        "\"not near(?o)\", \"not agent_in(?r)\"],\n            message: Some(\"You pick up",
        1,
    );
    assert_ne!(
        stranded, src,
        "the replacement no longer applies to keys_doors.ron"
    );
    let path = dir.join("stranded.ron");
    std::fs::write(&path, stranded).unwrap();
    path
}
