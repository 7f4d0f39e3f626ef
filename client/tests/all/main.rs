//! Leader election, and the event recorder (`events.rs`), against a real
//! API server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod events;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::SignedDuration;
use kube::Api;
use skiff_client::leader::{LeaderElector, Timing};
use skiff_testing::TestApi;

fn timing() -> Timing {
    Timing {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    }
}

/// A candidate whose leadership bumps `leading` while it lasts and
/// records its name in `leader`.
fn candidate(
    api: &TestApi,
    name: &'static str,
    leading: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    leader: Arc<std::sync::Mutex<Vec<&'static str>>>,
) -> tokio::task::JoinHandle<()> {
    let elector = LeaderElector::new(api.client.clone(), "kube-system", "test-lease", name, timing());
    tokio::spawn(elector.run(move || {
        let leading = leading.clone();
        let most = most.clone();
        let leader = leader.clone();
        async move {
            struct Out(Arc<AtomicUsize>);
            impl Drop for Out {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let now = leading.fetch_add(1, Ordering::SeqCst) + 1;
            let _out = Out(leading);
            most.fetch_max(now, Ordering::SeqCst);
            leader.lock().unwrap().push(name);
            std::future::pending::<()>().await;
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_leads_and_another_takes_over_when_it_stops() {
    let api = TestApi::start().await.unwrap();
    let leading = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let leaders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = candidate(&api, "a", leading.clone(), most.clone(), leaders.clone());
    let b = candidate(&api, "b", leading.clone(), most.clone(), leaders.clone());
    skiff_testing::eventually(Duration::from_secs(10), "a leader", || async {
        (leading.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await
    .unwrap();
    // Still the same single leader once the Lease shows it held, and
    // renewed, for half as long again as a lease lasts: had its holder
    // gone a lease's length without renewing, the other candidate would
    // have taken it (and the holder and transitions would say so).
    let leases: Api<Lease> = Api::namespaced(api.client.clone(), "kube-system");
    let lease = skiff_testing::eventually(
        Duration::from_secs(10),
        "the Lease renewed for 1.5 lease durations",
        || async {
            let spec = leases.get("test-lease").await.ok()?.spec?;
            let held = spec
                .renew_time
                .as_ref()?
                .0
                .duration_since(spec.acquire_time.as_ref()?.0);
            (held >= SignedDuration::try_from(timing().lease_duration * 3 / 2).unwrap()).then_some(spec)
        },
    )
    .await
    .unwrap();
    let first = leaders.lock().unwrap().clone();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(lease.holder_identity.as_deref(), Some(first[0]), "{lease:?}");
    assert_eq!(lease.lease_transitions, Some(0), "{lease:?}");
    // Stop the leader (as a crash would: no hand-over); the other takes
    // the lease once it expires.
    if first[0] == "a" {
        a.abort();
    } else {
        b.abort();
    }
    skiff_testing::eventually(Duration::from_secs(10), "a second leader", || async {
        (leaders.lock().unwrap().len() == 2).then_some(())
    })
    .await
    .unwrap();
    let all = leaders.lock().unwrap().clone();
    assert_ne!(all[0], all[1]);
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two leaders at once");
    a.abort();
    b.abort();
    let _ = (a.await, b.await);
    drop(leases);
    api.stop().await.unwrap();
}
