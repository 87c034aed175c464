//! Words: the model's vocabulary (interned training words, plus words a prediction meets for
//! the first time), the tokenizer, and how derived words are spelt from an action's words.
use rustc_hash::FxHashMap;

#[derive(Default)]
pub(super) struct Interner {
    pub(super) ids: FxHashMap<String, u32>,
    pub(super) words: Vec<String>,
    /// Each word as a number, if it is one.
    pub(super) numbers: Vec<Option<f64>>,
}

impl Interner {
    pub(super) fn id(&mut self, w: &str) -> u32 {
        if let Some(&i) = self.ids.get(w) {
            return i;
        }
        self.words.push(w.to_string());
        self.numbers.push(w.parse().ok());
        self.ids.insert(w.to_string(), self.words.len() as u32 - 1);
        self.words.len() as u32 - 1
    }
    pub(super) fn get(&self, w: &str) -> Option<u32> {
        self.ids.get(w).copied()
    }
}

/// Words (letters, digits, `_`, `-`, `/`) and single punctuation marks of a text, each with
/// whether a space comes before it, so that `box,` and `box` share the word `box`.
pub(super) fn tokens(s: &str) -> Vec<(&str, bool)> {
    let mut out = vec![];
    let mut space = false;
    let mut start: Option<usize> = None;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '/';
    for (i, c) in s.char_indices() {
        if let Some(st) = start
            && !is_word(c)
        {
            out.push((&s[st..i], space));
            start = None;
            space = false;
        }
        if c.is_whitespace() {
            space = true;
        } else if is_word(c) {
            start.get_or_insert(i);
        } else {
            out.push((&s[i..i + c.len_utf8()], space));
            space = false;
        }
    }
    if let Some(st) = start {
        out.push((&s[st..], space));
    }
    out
}

/// Words of one prediction: the training vocabulary plus words never seen in training (which can
/// fill variables, never match constants).
#[derive(Clone)]
pub(super) struct Vocab<'a> {
    pub(super) known: &'a Interner,
    pub(super) extra: Vec<String>,
    /// Index of `extra` (a web page brings thousands of unseen words: a linear search made
    /// tokenizing a state quadratic in its length).
    pub(super) extra_ids: FxHashMap<String, u32>,
}

impl<'a> Vocab<'a> {
    /// The training vocabulary, no unseen words yet.
    pub(super) fn new(known: &'a Interner) -> Self {
        Self {
            known,
            extra: vec![],
            extra_ids: FxHashMap::default(),
        }
    }

    pub(super) fn id(&mut self, w: &str) -> u32 {
        if let Some(i) = self.known.get(w) {
            return i;
        }
        if let Some(&i) = self.extra_ids.get(w) {
            return i;
        }
        let id = (self.known.words.len() + self.extra.len()) as u32;
        self.extra.push(w.to_string());
        self.extra_ids.insert(w.to_string(), id);
        id
    }
    /// The word as a number, if it is one.
    pub(super) fn number(&self, id: u32) -> Option<f64> {
        match self.known.numbers.get(id as usize) {
            Some(n) => *n,
            None => self.word(id).parse().ok(),
        }
    }

    pub(super) fn word(&self, id: u32) -> &str {
        let n = self.known.words.len() as u32;
        if id < n {
            &self.known.words[id as usize]
        } else {
            &self.extra[(id - n) as usize]
        }
    }
}

/// A text as word ids (in a prediction's vocabulary) and where spaces go.
pub(super) struct Tokenized {
    pub(super) ids: Vec<u32>,
    pub(super) spacing: Vec<bool>,
}

impl Tokenized {
    pub(super) fn new(v: &mut Vocab, text: &str) -> Self {
        let t = tokens(text);
        Tokenized {
            ids: t.iter().map(|(w, _)| v.id(w)).collect(),
            spacing: t.iter().map(|(_, sp)| *sp).collect(),
        }
    }
}

/// Separators tried between joined words.
pub(super) const JOIN_SEPARATORS: [&str; 3] = ["", "_", "-"];

/// Find how `value` is spelt from consecutive `words` (a start, then each word after one of
/// [`JOIN_SEPARATORS`]); the separators and the span, or `None`.
pub(super) fn spell(value: &str, words: &[&str]) -> Option<(usize, Vec<&'static str>)> {
    for start in 0..words.len() {
        let Some(mut rest) = value.strip_prefix(words[start]) else {
            continue;
        };
        let mut seps = vec![""];
        for w in &words[start + 1..] {
            if rest.is_empty() {
                break;
            }
            let Some((sep, r)) = JOIN_SEPARATORS.iter().find_map(|sep| {
                rest.strip_prefix(sep)
                    .and_then(|r| r.strip_prefix(w))
                    .map(|r| (*sep, r))
            }) else {
                break;
            };
            seps.push(sep);
            rest = r;
        }
        if rest.is_empty() && seps.len() > 1 {
            return Some((start, seps));
        }
    }
    None
}

/// The kind word of a tokenized `[id] kind: ...` line (`None` for lines of other forms, or a
/// token that is not a known word).
pub(super) fn line_kind_word(
    mut toks: impl Iterator<Item = Option<u32>>,
    words: &Interner,
) -> Option<u32> {
    let is = |t: Option<u32>, w: &str| t.is_some() && t == words.get(w);
    let (t0, _, t2, kind, t4) = (
        toks.next()?,
        toks.next()?,
        toks.next()?,
        toks.next()?,
        toks.next()?,
    );
    (is(t0, "[") && is(t2, "]") && is(t4, ":"))
        .then_some(kind)
        .flatten()
}

/// Count one more line of `kind` (if it has one) in `counts`.
pub(super) fn count_kind(counts: &mut Vec<(u32, u32)>, kind: Option<u32>) {
    let Some(kind) = kind else { return };
    match counts.iter_mut().find(|(k, _)| *k == kind) {
        Some(e) => e.1 += 1,
        None => counts.push((kind, 1)),
    }
}
