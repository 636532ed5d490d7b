//! What Jenkins says of started work: the queue item a start answered
//! with, where that item is, and the state of the build it became.

/// A started build's place in the queue: `<root>/queue/item/<id>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueItem {
    /// The queue item id.
    pub id: u64,
}

impl QueueItem {
    /// The queue item a `Location` header names: `.../queue/item/<id>/`.
    pub fn from_location(location: &str) -> Option<QueueItem> {
        let mut segs = location.trim_end_matches('/').rsplit('/');
        let id = segs.next()?.parse().ok()?;
        (segs.next()? == "item" && segs.next()? == "queue").then_some(QueueItem { id })
    }
}

/// Where a queue item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// Still waiting (quiet period, blocked, no executor); Jenkins' reason.
    Waiting(Option<String>),
    /// Cancelled before it started.
    Cancelled,
    /// Became build `number`, at `url`.
    Started {
        /// The build number.
        number: u64,
        /// The build's page, as Jenkins names it.
        url: String,
    },
}

/// A build's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildState {
    /// Still running.
    pub building: bool,
    /// `SUCCESS`, `UNSTABLE`, `FAILURE`, `ABORTED`, ... once finished.
    pub result: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_items_from_locations() {
        assert_eq!(
            QueueItem::from_location("http://j:8080/ci/queue/item/39/"),
            Some(QueueItem { id: 39 })
        );
        assert_eq!(
            QueueItem::from_location("http://j/queue/item/7"),
            Some(QueueItem { id: 7 })
        );
        assert_eq!(QueueItem::from_location("http://j/job/x/"), None);
    }
}
