//! A window of a list: the same `LIMIT`/`OFFSET` on both backends.

/// At most `limit` rows, after skipping `offset`. A bare number is a
/// first page of that many rows (`store.events(None, 10)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows at most; a negative limit reads as zero.
    pub limit: i64,
    /// Rows skipped first; a negative offset reads as zero.
    pub offset: i64,
}

impl Page {
    /// `limit` rows after skipping `offset`.
    pub fn new(limit: i64, offset: i64) -> Page {
        Page { limit, offset }
    }

    /// The first `limit` rows.
    pub fn first(limit: i64) -> Page {
        Page { limit, offset: 0 }
    }

    /// The window after this one.
    pub fn next(&self) -> Page {
        Page {
            limit: self.limit,
            offset: self.offset.saturating_add(self.limit.max(0)),
        }
    }

    /// The bound `LIMIT` value (see `sql::clamp_limit`).
    pub(crate) fn sql_limit(&self) -> i64 {
        crate::sql::clamp_limit(self.limit)
    }

    /// The bound `OFFSET` value.
    pub(crate) fn sql_offset(&self) -> i64 {
        self.offset.max(0)
    }

    /// The window of an in-memory list.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = usize::try_from(self.sql_offset())
            .unwrap_or(usize::MAX)
            .min(items.len());
        let len = usize::try_from(self.sql_limit()).unwrap_or(usize::MAX);
        &items[start..start.saturating_add(len).min(items.len())]
    }
}

impl From<i64> for Page {
    fn from(limit: i64) -> Page {
        Page::first(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn slices_and_steps() {
        let v: Vec<i32> = (0..10).collect();
        assert_eq!(Page::new(3, 0).slice(&v), &[0, 1, 2]);
        assert_eq!(Page::new(3, 0).next().slice(&v), &[3, 4, 5]);
        assert_eq!(Page::new(3, 9).slice(&v), &[9]);
        assert!(Page::new(3, 12).slice(&v).is_empty());
        assert!(Page::new(-1, 0).slice(&v).is_empty());
        assert_eq!(Page::new(5, -4).slice(&v), &[0, 1, 2, 3, 4]);
        assert_eq!(Page::new(i64::MAX, i64::MAX).next().offset, i64::MAX);
    }
}
