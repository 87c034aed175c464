//! The experience model's one rule for words. Every stage that compares texts word by word —
//! the line rewrites' goal words, the additive rewards' features, the curriculum's grounding
//! check — splits text with [`words`]: lower-case runs of letters and digits, where a `.`
//! between two digits joins (a price `$12.50` is the word `12.50`, and `end.` is `end`) and so
//! do a `-` or `'` inside a word (`t-shirts`, `don't`: one word each, as a reader counts them —
//! the additive rewards' features are word positions, and WebShop's reward accuracy falls
//! from 0.998 to 0.984 when `t-shirts` counts as two).
//!
//! The native model's [`tokens`](super::native) are not words: they keep punctuation and
//! spacing so that a predicted line can be written back exactly. The policy's featurizer
//! (`dreamgym_policy::text::tokenize`) has a rule of its own on purpose: a checkpoint's
//! vocabulary is stored with it, so its rule is part of the checkpoint format.

/// The lower-case words of `text`: runs of letters and digits, joined by a `.` between two
/// digits (decimal numbers stay whole) and by a `-` or `'` between two letters or digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |k: Option<usize>| k.and_then(|k| chars.get(k)).map(|&(_, c)| c);
    let mut spans = vec![];
    let mut start = None;
    for (k, &(offset, c)) in chars.iter().enumerate() {
        let (before, after) = (at(k.checked_sub(1)), at(Some(k + 1)));
        let both = |test: fn(&char) -> bool| {
            before.is_some_and(|c| test(&c)) && after.is_some_and(|c| test(&c))
        };
        let in_word = c.is_alphanumeric()
            || (c == '.' && both(char::is_ascii_digit))
            || ((c == '-' || c == '\'') && both(|c| c.is_alphanumeric()));
        match (in_word, start) {
            (true, None) => start = Some(offset),
            (false, Some(s)) => {
                spans.push((s, offset));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans.into_iter().map(|(a, b)| text[a..b].to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        words(s).collect()
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_with_decimals_whole() {
        assert_eq!(
            split("Put the Blue_ball, then."),
            ["put", "the", "blue", "ball", "then"]
        );
        assert_eq!(
            split("price: $12.50 (was 3.)"),
            ["price", "12.50", "was", "3"]
        );
        assert_eq!(
            split("x-large t-shirts, don't -a- 1.5.2 .5"),
            ["x-large", "t-shirts", "don't", "a", "1.5.2", "5"]
        );
        assert!(split(" ... ").is_empty());
        assert_eq!(split("Größe 40"), ["größe", "40"]);
    }
}
