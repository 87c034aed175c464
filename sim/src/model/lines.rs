//! The line grammar of states: DreamGym's abstract textual states are lists of `[id] kind: text`
//! lines. What a line is about (its id and kind) and which lines a step changed are read here by
//! every stage of the native model, recall and fidelity.

/// The id of a `[id] kind: text` state line; `None` for lines of another form.
pub(crate) fn line_id(line: &str) -> Option<&str> {
    line.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(id, _)| id)
}

/// The items of `a` that are not in `b`.
pub(crate) fn diff<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    // a scan of `b` per line is fastest for the usual few dozen lines; states of thousands of
    // lines (web pages) made it quadratic: 10k lines took seconds per step
    if a.len().saturating_mul(b.len()) <= 4096 {
        return a.iter().filter(|x| !b.contains(x)).collect();
    }
    let in_b: std::collections::HashSet<&str> = b.iter().map(String::as_str).collect();
    a.iter().filter(|x| !in_b.contains(x.as_str())).collect()
}

/// The kind of a `[id] kind: text` line (`""` for lines of another form).
pub(crate) fn line_kind(line: &str) -> &str {
    line.split_once("] ")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map_or("", |(k, _)| k)
}

/// What a line is about: its entity id and kind, or the whole line when it has no id.
pub(crate) fn line_subject(line: &str) -> (&str, &str) {
    match line_id(line) {
        Some(id) => (id, line_kind(line)),
        None => (line, ""),
    }
}
