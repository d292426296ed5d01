//! Did-you-mean suggestions for mistyped keys and names.

/// Suggests the closest of `candidates` to a mistyped `word`, if one is close enough.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let keys = ["account", "region", "nat-gateway", "certificate"];
        assert_eq!(did_you_mean("acount", &keys), Some("account"));
        assert_eq!(did_you_mean("REGOIN", &keys), Some("region"));
        assert_eq!(did_you_mean("natgateway", &keys), Some("nat-gateway"));
        assert_eq!(did_you_mean("completely_different", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
