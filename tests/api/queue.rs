//! The durable task queue: semantics on the library, and the admin endpoints over HTTP.

use std::time::Duration;

use proxyfleet::queue::{NewTask, Queue, QueuePolicy, TaskState, SCHEDULED_AFTER_MS};
use proxyfleet::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error_code, eventually, free_port, spawn_app_with, ADMIN_TOKEN};

const POLICY: QueuePolicy = QueuePolicy {
    max_attempts: 3,
    backoff_base_ms: 1000,
    lease_ms: 30_000,
    done_retention_ms: 3_600_000,
};

fn task(key: &str, due_ms: u64) -> NewTask {
    NewTask {
        kind: proxyfleet::queue::TaskKind::MailSend,
        key: key.to_string(),
        payload: json!({ "key": key }),
        due_ms,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_same_key_is_one_task_even_after_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let queue = Queue::new(Store::open(dir.path()).unwrap(), POLICY);
        let first = queue.enqueue(task("k1", 100), 100).await.unwrap();
        let second = queue.enqueue(task("k1", 100), 100).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(queue.counts(100).unwrap().ready, 1);
        assert_eq!(
            queue.counts(99).unwrap().ready,
            1,
            "due within the minute: work waiting"
        );
        let far = queue
            .enqueue(task("later", 1_000 + SCHEDULED_AFTER_MS), 100)
            .await
            .unwrap();
        let early = queue.counts(100).unwrap();
        assert_eq!(
            (early.ready, early.scheduled),
            (1, 1),
            "due in more than a minute: scheduled, not waiting"
        );
        assert_ne!(far, first);

        let leased = queue.lease(100).unwrap().expect("due task");
        assert_eq!(leased.id, first);
        assert!(queue.ack(&leased, 101).unwrap());
        let third = queue.enqueue(task("k1", 200), 200).await.unwrap();
        assert_eq!(third, first, "a finished task's key still dedupes");
        let counts = queue.counts(200).unwrap();
        assert_eq!((counts.ready, counts.done), (0, 1));
        assert!(queue.lease(10_000).unwrap().is_none());
    });
}

#[test]
fn failures_back_off_then_become_dead_letters_that_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let queue = Queue::new(Store::open(dir.path()).unwrap(), POLICY);
        let id = queue.enqueue(task("flaky", 0), 0).await.unwrap();
        let mut now = 0;
        for attempt in 1..=3u32 {
            let leased = queue.lease(now).unwrap().expect("due");
            assert_eq!((leased.id, leased.attempts), (id, attempt));
            assert!(queue.fail(&leased, "boom", now).unwrap());
            let after = queue.get(id).unwrap().unwrap();
            if attempt < 3 {
                assert_eq!(after.state, TaskState::Ready);
                let delay = after.due_ms - now;
                let expected = 1000u64 << (attempt - 1);
                assert!(
                    delay >= expected * 4 / 5 && delay <= expected * 6 / 5,
                    "backoff {delay} after try {attempt}"
                );
                assert!(
                    queue.lease(now + delay - 1).unwrap().is_none(),
                    "not before its backoff"
                );
                now = after.due_ms;
            } else {
                assert_eq!(after.state, TaskState::Dead);
                assert_eq!(after.last_error.as_deref(), Some("boom"));
            }
        }
        assert!(
            queue.lease(u64::MAX / 2).unwrap().is_none(),
            "dead letters are not handed out"
        );
        let dead = queue.list(TaskState::Dead, 10).unwrap();
        assert_eq!(dead.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);

        let revived = queue.retry_dead(id, now).await.unwrap();
        assert_eq!((revived.state, revived.attempts), (TaskState::Ready, 0));
        let leased = queue.lease(now).unwrap().expect("retried task is due");
        assert_eq!(leased.id, id);
        assert!(
            queue.retry_dead(id, now).await.is_err(),
            "only dead letters are retried"
        );
    });
}

#[test]
fn a_lease_held_by_a_crashed_process_is_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        // First "process": lease a task and die without acking (the runtime and every handle
        // are dropped; no shutdown code runs).
        let rt = runtime();
        rt.block_on(async {
            let store = Store::open(dir.path()).unwrap();
            let queue = Queue::new(store.clone(), POLICY);
            let id = queue.enqueue(task("crashy", 1_000), 1_000).await.unwrap();
            let leased = queue.lease(1_000).unwrap().unwrap();
            store.durable().await.unwrap();
            assert_eq!(leased.attempts, 1);
            id
        })
    };
    runtime().block_on(async {
        let queue = Queue::new(Store::open(dir.path()).unwrap(), POLICY);
        let during = 1_000 + POLICY.lease_ms - 1;
        assert!(
            queue.lease(during).unwrap().is_none(),
            "the lease still holds"
        );
        let again = queue
            .lease(1_000 + POLICY.lease_ms)
            .unwrap()
            .expect("lease ran out");
        assert_eq!((again.id, again.attempts), (id, 2));
        // The dead worker's late ack is refused: the task belongs to the new lease.
        let mut stale = again.clone();
        stale.attempts = 1;
        assert!(!queue.ack(&stale, 50_000).unwrap());
        assert!(queue.ack(&again, 50_000).unwrap());
    });
}

#[tokio::test]
async fn dead_letters_are_listed_and_retried_over_http() {
    // varnish's admin port is closed: every edge sync fails.
    let closed = format!("127.0.0.1:{}", free_port());
    let app = spawn_app_with(|c| {
        c.varnish_admin = Some(closed);
        c.queue_max_attempts = 2;
        c.queue_backoff_base_ms = 20;
    })
    .await;
    app.register_ok("edge1", 9000).await;
    let dead: Value = eventually(Duration::from_secs(15), "a dead letter", || async {
        let dead = app.admin_json("/api/v1/admin/queue/dead").await;
        (!dead["tasks"].as_array().unwrap().is_empty()).then_some(dead)
    })
    .await;
    let task = &dead["tasks"][0];
    assert_eq!(task["kind"], "edge.sync");
    assert_eq!(task["attempts"], 2);
    assert!(task["last_error"]
        .as_str()
        .unwrap()
        .contains("varnish admin"));
    let counts = app.admin_json("/api/v1/admin/queue").await;
    assert_eq!(counts["dead"], 1);
    assert_eq!(counts["by_kind"]["edge.sync"]["dead"], 1);

    let id = task["id"].as_u64().unwrap();
    // A newer change comes in: the sync we revive next is superseded by it and just ends.
    app.register_ok("edge2", 9001).await;
    let retry_path = format!("/api/v1/admin/queue/tasks/{id}/retry");
    let retried = app
        .send_as(Method::POST, &retry_path, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(retried.status(), StatusCode::OK);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["state"], "ready");
    assert_eq!(retried["attempts"], 0);

    let done = eventually(
        Duration::from_secs(15),
        "the retried task to finish",
        || async {
            let task = app
                .admin_json(&format!("/api/v1/admin/queue/tasks/{id}"))
                .await;
            (task["state"] == "done").then_some(task)
        },
    )
    .await;
    assert_eq!(done["id"], id);
    let twice = app
        .send_as(Method::POST, &retry_path, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(twice).await, "task_not_dead");
    let unknown = app
        .send_as(
            Method::POST,
            "/api/v1/admin/queue/tasks/999999/retry",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[test]
fn orphaned_leases_are_handed_out_at_start_with_the_try_counted() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let queue = Queue::new(Store::open(dir.path()).unwrap(), POLICY);
        let waiting = queue.enqueue(task("waiting", 5_000), 1_000).await.unwrap();
        let crashy = queue.enqueue(task("crashy", 1_000), 1_000).await.unwrap();
        // Leased by a run that then died, again and again: each start hands it out at once,
        // and the try it took counts, so a task that kills the server ends a dead letter.
        let mut now = 1_000;
        for attempt in 1..=POLICY.max_attempts {
            let leased = queue.lease(now).unwrap().expect("due");
            assert_eq!((leased.id, leased.attempts), (crashy, attempt));
            now += 1;
            assert_eq!(queue.release_orphaned_leases(now).unwrap(), 1);
            let released = queue.get(crashy).unwrap().unwrap();
            assert_eq!((released.state, released.due_ms), (TaskState::Ready, now));
            assert_eq!(
                released.last_error.as_deref(),
                Some("the server stopped while running it")
            );
        }
        assert!(queue.lease(now).unwrap().is_none(), "no try left");
        assert_eq!(queue.get(crashy).unwrap().unwrap().state, TaskState::Dead);
        // A task nobody leased is left as it was; with none leased, nothing is released.
        assert_eq!(queue.release_orphaned_leases(now).unwrap(), 0);
        let untouched = queue.get(waiting).unwrap().unwrap();
        assert_eq!(
            (untouched.state, untouched.due_ms),
            (TaskState::Ready, 5_000)
        );
    });
}

/// The server killed while a task runs: the next start runs it again at once, not after its
/// lease (an hour here) runs out.
#[tokio::test]
async fn work_interrupted_by_a_kill_runs_again_as_soon_as_the_server_is_back() {
    use crate::helpers::ServerProcess;
    let data = tempfile::tempdir().unwrap();
    let hook_dir = tempfile::tempdir().unwrap();
    let (started, release) = (
        hook_dir.path().join("started"),
        hook_dir.path().join("release"),
    );
    // The first run's retire hook stays busy until the test lets it go (or its directory is
    // gone: a hook that missed the release before the test ended looped on forever).
    let busy = format!(
        "touch '{started}'; while [ ! -e '{release}' ] && [ -e '{started}' ]; do sleep 0.1; done",
        started = started.display(),
        release = release.display()
    );
    let env = [("PROXYFLEET_QUEUE_LEASE_SECS", "3600")];
    let mut first_env = env.to_vec();
    first_env.push(("PROXYFLEET_RETIRE_COMMAND", busy.as_str()));
    let server = ServerProcess::start(data.path(), &first_env);
    assert_eq!(server.enrol("p1", 9001).await.status(), StatusCode::OK);
    let retired = server
        .admin_post_body(
            "/api/v1/admin/proxies/p1/action",
            &json!({ "action": "retire" }),
        )
        .await;
    let hook = retired["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "fleet.retire")
        .expect("the retire hook's task")["id"]
        .as_u64()
        .unwrap();
    eventually(Duration::from_secs(30), "the hook to start", || async {
        started.exists().then_some(())
    })
    .await;
    server.kill9();
    std::fs::write(&release, b"").unwrap();

    let mut second_env = env.to_vec();
    second_env.push(("PROXYFLEET_RETIRE_COMMAND", "exit 0"));
    let server = ServerProcess::start(data.path(), &second_env);
    let done = eventually(Duration::from_secs(30), "the hook to run again", || async {
        let task = server
            .admin_json(&format!("/api/v1/admin/queue/tasks/{hook}"))
            .await;
        (task["state"] == "done").then_some(task)
    })
    .await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["last_error"], "the server stopped while running it");
}
