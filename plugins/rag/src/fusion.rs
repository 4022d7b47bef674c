//! Reciprocal-rank fusion: merges ranked lists by summing `1 / (K + rank)`.

use std::collections::HashMap;
use std::hash::Hash;

/// The usual RRF constant (Cormack et al. 2009).
pub const RRF_K: f32 = 60.0;

/// Fuses ranked lists (best first) into the top `k` (item, score), best
/// first. Ties keep the order in which items were first seen.
pub fn reciprocal_rank_fusion<T: Clone + Eq + Hash>(lists: &[Vec<T>], k: usize) -> Vec<(T, f32)> {
    let mut fused: Vec<(T, f32)> = Vec::new();
    let mut position: HashMap<T, usize> = HashMap::new();
    for list in lists {
        for (rank, item) in list.iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f32 + 1.0);
            match position.get(item) {
                Some(&at) => fused[at].1 += score,
                None => {
                    position.insert(item.clone(), fused.len());
                    fused.push((item.clone(), score));
                }
            }
        }
    }
    // Stable sort: equal scores stay in first-seen order.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused.truncate(k);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_in_both_lists_wins() {
        let fused = reciprocal_rank_fusion(&[vec!["a", "b", "c"], vec!["c", "d", "b"]], 3);
        let order: Vec<_> = fused.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, ["c", "b", "a"]);
        assert!((fused[0].1 - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
    }
}
