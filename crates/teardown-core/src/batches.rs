//! Cutting a list into API calls that take at most so many entries and so many
//! bytes (`PutEvents`, `SendMessageBatch`), keeping the order.

/// `items` in runs of at most `max_count` entries whose `size`s add up to at most
/// `max_bytes` (an entry larger than that alone is a run of its own).
pub fn cut<T>(
    items: impl IntoIterator<Item = T>,
    size: impl Fn(&T) -> usize,
    max_count: usize,
    max_bytes: usize,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        if out.last().is_none_or(|b| b.len() >= max_count || bytes + n > max_bytes) {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += n;
        if let Some(batch) = out.last_mut() {
            batch.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn runs_are_cut_by_count_and_by_bytes_in_order() {
        assert_eq!(cut(1..=23, |_| 1, 10, 1000).iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        assert_eq!(cut([4, 4, 4, 9, 1], |n| *n, 10, 8), vec![vec![4, 4], vec![4], vec![9], vec![1]]);
        assert!(cut(Vec::<u8>::new(), |_| 1, 10, 10).is_empty());
    }
}
