//! DeleteMessageBatch bookkeeping: at most 10 entries per call, entry ids unique within the
//! call, and the per-entry result read even when the call itself succeeded.

/// SQS limit on entries per batch call.
pub const MAX_BATCH: usize = 10;

/// Entry id of the `i`-th entry of a batch.
pub fn entry_id(i: usize) -> String {
    i.to_string()
}

/// Splits `items` into batches of at most [`MAX_BATCH`].
pub fn batches<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for item in items {
        current.push(item);
        if current.len() == MAX_BATCH {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What a batch response means per entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Entries SQS reports as deleted.
    pub done: Vec<usize>,
    /// Entries reported failed, or not reported at all: retried one by one.
    pub retry_singly: Vec<usize>,
}

/// Reads a batch response of `n` entries from its `Successful[]` and `Failed[]` ids. An entry
/// in neither list is treated as failed: silence is not success.
pub fn settle(n: usize, successful: &[&str], failed: &[&str]) -> Settled {
    let mut s = Settled::default();
    for i in 0..n {
        let id = entry_id(i);
        if failed.contains(&id.as_str()) || !successful.contains(&id.as_str()) {
            s.retry_singly.push(i);
        } else {
            s.done.push(i);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_of_ten() {
        let b = batches((0..23).collect());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        assert!(batches(Vec::<u8>::new()).is_empty());
    }

    #[test]
    fn failed_and_missing_entries_are_retried_singly() {
        // HTTP 200 with one entry failed and one not mentioned at all.
        let s = settle(4, &["0", "2"], &["1"]);
        assert_eq!(s.done, vec![0, 2]);
        assert_eq!(s.retry_singly, vec![1, 3]);
        // Unknown ids in the response change nothing.
        let s = settle(2, &["0", "1", "7"], &["9"]);
        assert_eq!(s.done, vec![0, 1]);
        assert!(s.retry_singly.is_empty());
        // An id reported both ways is not trusted as deleted.
        let s = settle(1, &["0"], &["0"]);
        assert_eq!(s.retry_singly, vec![0]);
    }
}
