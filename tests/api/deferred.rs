//! The store's deferred writes (`store::deferred`, the heartbeat's fast path), through the
//! library: visible at once, logged in commit order when folded, read again from the journal
//! after a stop that folded nothing, and never from a record older than its last rewind.

use proxyfleet::store::codec::encode;
use proxyfleet::store::{Change, Deferral, Store, TreeId};

const KEY: &str = "deferred.test";

fn write_now(store: &Store, value: u64, note: &str) {
    store
        .transaction(|tx| {
            tx.put(TreeId::Meta, KEY, &value)?;
            tx.log(value, note.to_string())?;
            Ok(())
        })
        .unwrap();
}

/// Defers `value` for KEY (which must exist) with a change-log entry `note`, and syncs.
fn defer(store: &Store, value: u64, note: &str) {
    let deferral = Deferral {
        writes: vec![(
            TreeId::Meta,
            KEY.as_bytes().to_vec(),
            encode(&value).unwrap(),
        )],
        change: Some((value, encode(&note.to_string()).unwrap())),
    };
    let done = store.defer(|| Ok(Some(((), deferral)))).unwrap();
    assert_eq!(done, Some(()));
    store.deferred_durable().unwrap();
}

fn value(store: &Store) -> u64 {
    store.get(TreeId::Meta, KEY).unwrap().unwrap()
}

fn notes(store: &Store) -> Vec<String> {
    store
        .changes_after::<String>(0, 100)
        .unwrap()
        .into_iter()
        .map(|change: Change<String>| change.kind)
        .collect()
}

#[tokio::test]
async fn deferred_writes_are_read_at_once_and_logged_in_order_when_folded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    write_now(&store, 1, "one");
    let writes_before = store.writes(TreeId::Meta);
    defer(&store, 2, "two");
    defer(&store, 3, "three");
    assert_eq!(value(&store), 3, "a read sees the newest deferred write");
    assert!(
        store.writes(TreeId::Meta) > writes_before,
        "readers that cache see a change"
    );
    assert_eq!(notes(&store), ["one"], "the change log learns at the fold");
    // A transaction folds first: it reads the deferred value, and its own entry follows.
    let seen = store
        .transaction(|tx| tx.get::<u64>(TreeId::Meta, KEY))
        .unwrap();
    assert_eq!(seen, Some(3));
    write_now(&store, 4, "four");
    assert_eq!(notes(&store), ["one", "two", "three", "four"]);
    // Nothing is pending: a fold changes nothing.
    store.fold_deferred().unwrap();
    assert_eq!(notes(&store), ["one", "two", "three", "four"]);
    assert_eq!(value(&store), 4);
    // `None` writes nothing.
    assert_eq!(store.defer(|| Ok(None::<((), Deferral)>)).unwrap(), None);
    assert_eq!(notes(&store).len(), 4);
}

#[tokio::test]
async fn a_stop_without_a_fold_is_replayed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write_now(&store, 1, "one");
        defer(&store, 2, "two");
        defer(&store, 3, "three");
        // Dropped without `close`: no fold, as after a kill -9.
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(value(&store), 3, "read from the journal at once");
    assert_eq!(store.changes_deferred(), 2);
    assert_eq!(
        notes(&store),
        ["one"],
        "the change log gets them at the fold"
    );
    store.fold_deferred().unwrap();
    assert_eq!(notes(&store), ["one", "two", "three"]);
    // Folded once: the next open finds nothing more to apply.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.changes_deferred(), 0);
    store.fold_deferred().unwrap();
    assert_eq!(notes(&store), ["one", "two", "three"]);
    assert_eq!(value(&store), 3);
}

#[tokio::test]
async fn records_left_from_before_a_rewind_are_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write_now(&store, 10, "ten");
        // Three records of the same size, folded: the journal starts again at its beginning.
        defer(&store, 11, "a-1");
        defer(&store, 12, "a-2");
        defer(&store, 13, "a-3");
        store.fold_deferred().unwrap();
        // A transaction writes past them, then one more deferred record (same size again)
        // lands over the first: the second and third are still in the file behind it.
        write_now(&store, 50, "fifty");
        defer(&store, 51, "b-1");
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        value(&store),
        51,
        "the old a-2 and a-3 were not applied again"
    );
    store.fold_deferred().unwrap();
    assert_eq!(value(&store), 51);
    assert_eq!(
        notes(&store),
        ["ten", "a-1", "a-2", "a-3", "fifty", "b-1"],
        "every entry once, in commit order"
    );
}

#[tokio::test]
async fn a_torn_record_at_the_end_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write_now(&store, 1, "one");
        defer(&store, 2, "two");
    }
    // A record cut short by the crash: its length says more than is there.
    let journal = dir.path().join("deferred.journal");
    let bytes = std::fs::read(&journal).unwrap();
    let end = bytes
        .windows(8)
        .position(|w| w == [0u8; 8])
        .expect("the journal has room after its record");
    let mut torn = bytes.clone();
    torn[end..end + 8].copy_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4]);
    torn[end + 8] = 7;
    std::fs::write(&journal, torn).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(value(&store), 2);
    assert_eq!(store.changes_deferred(), 1, "the torn record is not one");
    store.fold_deferred().unwrap();
    assert_eq!(notes(&store), ["one", "two"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the journal holds proxy records: owner only"
        );
    }
}
