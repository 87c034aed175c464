//! Commands never write over what they read: an output that is an input (the same path, a
//! symbolic link to it, a hard link of it) is refused before anything is written, and reading
//! commands never turn a file into a buffer log.

#[path = "support/cli.rs"]
mod support;

use std::path::{Path, PathBuf};
use support::{bin, run};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/adp")
        .join(name)
}

/// A buffer log holding the ADP sample, and its bytes.
fn buffer_of_the_adp_sample(dir: &Path) -> (PathBuf, Vec<u8>) {
    let buf = dir.join("b.dglog");
    let (ok, _, err) = run(bin()
        .args(["data", "import-adp"])
        .arg(data("alfworld_train.json"))
        .arg("--buffer")
        .arg(&buf));
    assert!(ok, "{err}");
    let bytes = std::fs::read(&buf).unwrap();
    (buf, bytes)
}

#[test]
fn import_adp_refuses_an_out_that_is_its_buffer_or_links_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (buf, before) = buffer_of_the_adp_sample(dir.path());
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&buf, &link).unwrap();
    for out in [&buf, &link] {
        let (ok, _, err) = run(bin()
            .args(["data", "import-adp"])
            .arg(data("alfworld_train.json"))
            .arg("--out")
            .arg(out)
            .arg("--buffer")
            .arg(&buf));
        assert!(!ok, "{}", out.display());
        assert!(err.contains("is the same file as --buffer"), "{err}");
        assert_eq!(
            std::fs::read(&buf).unwrap(),
            before,
            "the buffer is untouched"
        );
    }
    // --buffer the input file itself
    let input = dir.path().join("in.json");
    std::fs::copy(data("alfworld_train.json"), &input).unwrap();
    let (ok, _, err) = run(bin()
        .args(["data", "import-adp"])
        .arg(&input)
        .arg("--buffer")
        .arg(&input));
    assert!(!ok);
    assert!(err.contains("same file as INPUT"), "{err}");
}

#[test]
fn buffer_export_to_a_hard_link_of_the_buffer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (buf, before) = buffer_of_the_adp_sample(dir.path());
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&buf, &hard).unwrap();
    let (ok, _, err) = run(bin().args(["buffer", "export"]).arg(&buf).arg(&hard));
    assert!(!ok, "a hard link of the buffer was written over");
    assert!(err.contains("same file as BUFFER"), "{err}");
    assert_eq!(std::fs::read(&buf).unwrap(), before);
    assert!(run(bin().args(["buffer", "stats"]).arg(&buf)).0);
}

#[test]
fn export_sft_refuses_to_write_over_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("t.jsonl");
    let (ok, _, err) = run(bin()
        .args(["data", "import-adp"])
        .arg(data("alfworld_train.json"))
        .arg("--out")
        .arg(&jsonl));
    assert!(ok, "{err}");
    let before = std::fs::read(&jsonl).unwrap();
    let (ok, _, err) = run(bin()
        .args(["model", "export-sft", "--data"])
        .arg(&jsonl)
        .arg("--out")
        .arg(&jsonl));
    assert!(!ok);
    assert!(err.contains("same file as --data"), "{err}");
    assert_eq!(std::fs::read(&jsonl).unwrap(), before);
}

#[test]
fn reading_commands_leave_an_empty_file_empty() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.dglog");
    std::fs::write(&empty, b"").unwrap();
    let out = dir.path().join("out.jsonl");
    for args in [
        vec!["buffer", "stats"],
        vec!["buffer", "export"],
        vec!["data", "export-adp"],
    ] {
        let mut c = bin();
        c.args(&args).arg(&empty);
        if args[1] == "export" {
            c.arg(&out);
        }
        if args[1] == "export-adp" {
            c.arg("--out").arg(&out);
        }
        let (ok, _, err) = run(&mut c);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("an empty file, not a buffer log"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "{args:?}");
    }
}
