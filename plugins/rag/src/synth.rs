//! A deterministic synthetic corpus for benchmarks: passage `i` is always the
//! same text, on any machine. Common English words give the model realistic
//! token counts (~100 words per passage, like Wikipedia/DPR passages);
//! made-up proper names (millions of combinations, Zipf-like reuse) give the
//! vocabulary the long tail that makes BM25 and dense search discriminate.

use std::io::{self, Write};

/// One generated passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticPassage {
    /// `syn-<i>`.
    pub id: String,
    /// A made-up place or person name.
    pub title: String,
    /// About 100 words of text.
    pub text: String,
}

const NOUNS: &[&str] = &[
    "river",
    "valley",
    "mountain",
    "harbor",
    "village",
    "castle",
    "bridge",
    "forest",
    "temple",
    "market",
    "railway",
    "museum",
    "library",
    "island",
    "desert",
    "glacier",
    "canal",
    "cathedral",
    "festival",
    "dynasty",
    "kingdom",
    "republic",
    "province",
    "district",
    "university",
    "theater",
    "orchestra",
    "novel",
    "poem",
    "painting",
    "sculpture",
    "symphony",
    "opera",
    "film",
    "album",
    "engine",
    "aircraft",
    "ship",
    "locomotive",
    "telescope",
    "satellite",
    "reactor",
    "vaccine",
    "protein",
    "mineral",
    "volcano",
    "earthquake",
    "treaty",
    "battle",
    "election",
    "parliament",
    "council",
    "merchant",
    "farmer",
    "soldier",
    "scientist",
    "composer",
    "architect",
    "painter",
    "poet",
    "inventor",
    "explorer",
    "monk",
    "queen",
    "king",
    "general",
    "bishop",
    "physician",
    "wheat",
    "rice",
    "cotton",
    "silk",
    "copper",
    "iron",
    "gold",
    "salt",
    "coffee",
    "tea",
    "wine",
    "wool",
    "timber",
    "coal",
    "oil",
    "language",
    "alphabet",
    "religion",
    "law",
    "tax",
    "coin",
    "currency",
    "trade",
    "route",
    "road",
    "tower",
    "wall",
    "garden",
    "fountain",
    "lake",
    "coast",
];
const VERBS: &[&str] = &[
    "built",
    "founded",
    "discovered",
    "conquered",
    "described",
    "designed",
    "painted",
    "wrote",
    "composed",
    "invented",
    "explored",
    "ruled",
    "defended",
    "destroyed",
    "restored",
    "expanded",
    "traded",
    "studied",
    "published",
    "recorded",
    "crossed",
    "mapped",
    "governed",
    "taught",
    "financed",
    "launched",
    "opened",
    "closed",
    "moved",
    "renamed",
    "celebrated",
    "translated",
];
const ADJECTIVES: &[&str] = &[
    "ancient",
    "northern",
    "southern",
    "eastern",
    "western",
    "famous",
    "small",
    "large",
    "royal",
    "wealthy",
    "remote",
    "coastal",
    "medieval",
    "modern",
    "sacred",
    "wooden",
    "stone",
    "golden",
    "silver",
    "crowded",
    "quiet",
    "fertile",
    "arid",
    "frozen",
    "tropical",
    "industrial",
    "rural",
    "imperial",
    "colonial",
    "independent",
    "influential",
    "popular",
    "rare",
    "early",
    "late",
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mir", "ta", "ven", "dor", "al", "bre", "cas", "del", "fen", "gar", "hol", "is",
    "jor", "kel", "lan", "mar", "nor", "ost", "pel", "quin", "ros", "sel", "tor", "ul", "var",
    "wes", "yen", "zan", "bar", "cor", "dun", "el", "fal", "gim", "har", "ith", "kor", "lis",
];

/// SplitMix64: tiny, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    /// Log-uniform rank in `0..n`: small ranks are much more frequent (Zipf-like).
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

/// The made-up name of rank `rank` (the same rank always gives the same name).
fn name(rank: usize) -> String {
    let mut rng = Rng::new(rank as u64 ^ 0x5eed);
    let syllables = 2 + rng.below(2);
    let mut word: String = (0..syllables).map(|_| rng.pick(SYLLABLES)).collect();
    if let Some(first) = word.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    word
}

/// Number of distinct names passages draw from.
const NAMES: usize = 200_000;

/// Passage `i` of the synthetic corpus.
pub fn passage(i: u64) -> SyntheticPassage {
    let mut rng = Rng::new(i);
    let title = format!("{} {}", name(rng.zipf(NAMES)), rng.pick(NOUNS));
    let mut sentences = Vec::new();
    let mut words = 0;
    while words < 90 {
        let sentence = match rng.below(4) {
            0 => format!(
                "The {} {} of {} was {} by {} in {}.",
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                title,
                rng.pick(VERBS),
                name(rng.zipf(NAMES)),
                1000 + rng.below(1020)
            ),
            1 => format!(
                "Its {} {} {} {} and the {} {} near {}.",
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                rng.pick(VERBS),
                name(rng.zipf(NAMES)),
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                name(rng.zipf(NAMES))
            ),
            2 => format!(
                "Historians say that {} {} a {} {} for the {} of {}.",
                name(rng.zipf(NAMES)),
                rng.pick(VERBS),
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                rng.pick(NOUNS),
                name(rng.zipf(NAMES))
            ),
            _ => format!(
                "Today the {} is known for {} {}, {} and a {} {}.",
                rng.pick(NOUNS),
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                rng.pick(NOUNS),
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS)
            ),
        };
        words += sentence.split_whitespace().count();
        sentences.push(sentence);
    }
    SyntheticPassage {
        id: format!("syn-{i}"),
        title,
        text: sentences.join(" "),
    }
}

/// Writes passages `0..n` as JSONL lines `{id, title, contents}`.
pub fn write_corpus(n: u64, out: &mut impl Write) -> io::Result<()> {
    for i in 0..n {
        let p = passage(i);
        let line = serde_json::json!({"id": p.id, "title": p.title, "contents": p.text});
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_are_deterministic_and_varied() {
        assert_eq!(passage(42), passage(42));
        assert_ne!(passage(1).text, passage(2).text);
        let words = passage(7).text.split_whitespace().count();
        assert!((90..140).contains(&words), "{words} words");
        let mut out = Vec::new();
        write_corpus(3, &mut out).unwrap();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 3);
    }
}
