//! Names of languages and metrics as hosts take them from users (JavaScript options, JSON-lines
//! requests): lower case, the same everywhere.

use super::{Language, Metric};

/// Every language a text index analyses, with its name.
pub const LANGUAGES: &[(&str, Language)] = &[
    ("arabic", Language::Arabic),
    ("danish", Language::Danish),
    ("dutch", Language::Dutch),
    ("english", Language::English),
    ("finnish", Language::Finnish),
    ("french", Language::French),
    ("german", Language::German),
    ("greek", Language::Greek),
    ("hungarian", Language::Hungarian),
    ("italian", Language::Italian),
    ("norwegian", Language::Norwegian),
    ("portuguese", Language::Portuguese),
    ("romanian", Language::Romanian),
    ("russian", Language::Russian),
    ("spanish", Language::Spanish),
    ("swedish", Language::Swedish),
    ("tamil", Language::Tamil),
    ("turkish", Language::Turkish),
];

/// A language by name (case-insensitive); `None` when there is no such language.
pub fn language_from_name(name: &str) -> Option<Language> {
    LANGUAGES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, l)| l)
}

/// The name of a language, as [`language_from_name`] takes it.
pub fn language_name(language: Language) -> &'static str {
    LANGUAGES
        .iter()
        .find(|&&(_, l)| l == language)
        .map_or("english", |&(n, _)| n)
}

/// The name of a metric, as [`metric_from_name`] takes it.
pub fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "cosine",
        Metric::L2 => "l2",
        Metric::Dot => "dot",
    }
}

/// A metric by name: `cosine`, `l2` or `dot` (case-insensitive).
pub fn metric_from_name(name: &str) -> Option<Metric> {
    [
        ("cosine", Metric::Cosine),
        ("l2", Metric::L2),
        ("dot", Metric::Dot),
    ]
    .into_iter()
    .find(|(n, _)| n.eq_ignore_ascii_case(name))
    .map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_case_insensitively_and_unknown_ones_do_not() {
        assert_eq!(language_from_name("English"), Some(Language::English));
        assert_eq!(language_from_name("tamil"), Some(Language::Tamil));
        assert_eq!(language_from_name("klingon"), None);
        assert_eq!(metric_from_name("L2"), Some(Metric::L2));
        assert_eq!(metric_from_name("cosine"), Some(Metric::Cosine));
        assert_eq!(metric_from_name("manhattan"), None);
        // Every name is unique, lower case, and names its language both ways.
        for (i, &(a, language)) in LANGUAGES.iter().enumerate() {
            assert_eq!(a, a.to_ascii_lowercase());
            assert!(LANGUAGES[i + 1..].iter().all(|(b, _)| *b != a));
            assert_eq!(language_name(language), a);
        }
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            assert_eq!(metric_from_name(metric_name(metric)), Some(metric));
        }
    }
}
