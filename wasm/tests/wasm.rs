//! The Wasm runtime against real components (built from `test-programs/`
//! for wasm32-wasip2): instances per request, exit codes, limits, and bad
//! components, with the runtime serving others throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use skiff_test_programs as programs;
use skiff_testing::eventually;
use skiff_wasm::{
    AppendFile, Environment, Limits, PoolConfig, Preopen, RuntimeConfig, StopHandle, Termination, WasmError,
    WasmRuntime,
};

fn runtime(dir: &std::path::Path) -> WasmRuntime {
    WasmRuntime::new(RuntimeConfig {
        cache_dir: dir.join("compiled"),
        pool: PoolConfig::default(),
    })
    .unwrap()
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn get(path: &str) -> hyper::Request<Empty<bytes::Bytes>> {
    hyper::Request::builder()
        .uri(format!("http://pod.local{path}"))
        .body(Empty::new())
        .unwrap()
}

async fn body_of(response: hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_components_get_an_instance_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("greeting"), "from a volume").unwrap();
    let runtime = runtime(dir.path());
    let env = Environment {
        env: vec![("GREETING".into(), "hi there".into())],
        preopens: vec![Preopen {
            host: config.clone(),
            guest: "/config".into(),
            writable: false,
        }],
        ..Environment::default()
    };
    let service = runtime.http_service(&read(programs::HTTP_HELLO), env).unwrap();
    let text = body_of(service.handle(get("/hello")).await.unwrap()).await;
    assert!(text.contains("hello from skiff"), "{text}");
    assert!(text.contains("/hello"), "{text}");
    assert!(text.contains("hi there"), "{text}");
    assert!(text.contains("from a volume"), "{text}");

    // Concurrent requests each see a fresh instance: the counter is 1.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            body_of(service.handle(get("/count")).await.unwrap()).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().trim(), "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_and_greedy_instances_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let limited = Environment {
        limits: Limits {
            memory_bytes: Some(32 << 20),
            timeout: Some(Duration::from_millis(300)),
        },
        ..Environment::default()
    };
    let hello = runtime
        .http_service(&read(programs::HTTP_HELLO), Environment::default())
        .unwrap();
    let spin = runtime
        .http_service(&read(programs::HTTP_SPIN), limited.clone())
        .unwrap();
    let hog = runtime.http_service(&read(programs::HTTP_HOG), limited).unwrap();

    let started = Instant::now();
    let spinning = tokio::spawn(async move { spin.handle(get("/")).await });
    let hogging = tokio::spawn(async move { hog.handle(get("/")).await });
    // Others are served while those run.
    for _ in 0..5 {
        let text = body_of(hello.handle(get("/")).await.unwrap()).await;
        assert!(text.contains("hello from skiff"));
    }
    match spinning.await.unwrap() {
        Err(WasmError::Trap { termination, .. }) => assert_eq!(termination, Termination::DeadlineExceeded),
        other => panic!("a spinning handler should be interrupted: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "interrupted promptly");
    match hogging.await.unwrap() {
        Err(WasmError::Trap { termination, message }) => {
            assert_eq!(termination, Termination::OomKilled, "{message}");
        }
        other => panic!("a greedy handler should hit its memory limit: {other:?}"),
    }
    let text = body_of(hello.handle(get("/")).await.unwrap()).await;
    assert!(text.contains("hello from skiff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_report_exit_codes_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let stdout = dir.path().join("stdout.log");
    let stderr = dir.path().join("stderr.log");
    let env = Environment {
        args: vec!["cli-hello".into(), "3".into()],
        env: vec![("GREETING".into(), "hey".into())],
        stdout: Some(Arc::new(AppendFile(stdout.clone()))),
        stderr: Some(Arc::new(AppendFile(stderr.clone()))),
        ..Environment::default()
    };
    let command = runtime.command(&read(programs::CLI_HELLO), env).unwrap();
    let exit = command.run(StopHandle::default()).await.unwrap();
    // WASI 0.2's `exit` carries only success or failure, so any non-zero
    // code reaches the host as 1.
    assert_eq!(exit.code, 1);
    assert_eq!(exit.termination, Termination::Error);
    let out = std::fs::read_to_string(&stdout).unwrap();
    assert!(out.contains("hello from skiff") && out.contains("hey"), "{out}");
    assert!(!std::fs::read_to_string(&stderr).unwrap().is_empty());

    let ok = runtime
        .command(
            &read(programs::CLI_HELLO),
            Environment {
                args: vec!["cli-hello".into()],
                ..Environment::default()
            },
        )
        .unwrap();
    let exit = ok.run(StopHandle::default()).await.unwrap();
    assert_eq!((exit.code, exit.termination), (0, Termination::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_stopped_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let stdout = dir.path().join("spin.out");
    let spin = runtime
        .command(
            &read(programs::CLI_SPIN),
            Environment {
                stdout: Some(Arc::new(AppendFile(stdout.clone()))),
                ..Environment::default()
            },
        )
        .unwrap();
    let stop = StopHandle::default();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { spin.run(stop).await }
    });
    // It printed before it started spinning; it is not done yet.
    eventually(Duration::from_secs(10), "cli-spin to start spinning", || async {
        let printed = std::fs::read_to_string(&stdout).unwrap_or_default();
        printed.contains("spinning").then_some(())
    })
    .await
    .unwrap();
    assert!(!running.is_finished(), "a spinning command keeps running until stopped");
    let stopped_at = Instant::now();
    stop.stop();
    let exit = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.termination, Termination::Killed);
    assert!(stopped_at.elapsed() < Duration::from_secs(1));

    let timed = Environment {
        limits: Limits {
            timeout: Some(Duration::from_millis(200)),
            memory_bytes: Some(16 << 20),
        },
        ..Environment::default()
    };
    let spin = runtime.command(&read(programs::CLI_SPIN), timed.clone()).unwrap();
    let exit = spin.run(StopHandle::default()).await.unwrap();
    assert_eq!(exit.termination, Termination::DeadlineExceeded);
    let hog = runtime.command(&read(programs::CLI_HOG), timed).unwrap();
    let exit = hog.run(StopHandle::default()).await.unwrap();
    assert_eq!(exit.termination, Termination::OomKilled, "{exit:?}");
    assert_ne!(exit.code, 0);
}

#[tokio::test]
async fn bad_components_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    assert!(matches!(
        runtime.command(&read(programs::NOT_A_COMPONENT), Environment::default()),
        Err(WasmError::NotAComponent)
    ));
    assert!(matches!(
        runtime.command(b"hello, world", Environment::default()),
        Err(WasmError::NotWasm)
    ));
    match runtime.command(&read(programs::BAD_IMPORT), Environment::default()) {
        Err(WasmError::Link(message)) => assert!(message.contains("skiff:test"), "{message}"),
        other => panic!("an unknown import should fail to link: {other:?}"),
    }
    assert!(matches!(
        runtime.command(&read(programs::HTTP_HELLO), Environment::default()),
        Err(WasmError::Link(_))
    ));
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = read(programs::HTTP_HELLO);
    let first = runtime(dir.path());
    let (digest, _, _) = first.load(&bytes).unwrap();
    assert!(first.cache().is_cached_on_disk(&digest));
    drop(first);
    // A restarted runtime loads the native code instead of compiling.
    let second = runtime(dir.path());
    let started = Instant::now();
    let service = second.http_service(&bytes, Environment::default()).unwrap();
    let loaded_in = started.elapsed();
    let text = body_of(service.handle(get("/")).await.unwrap()).await;
    assert!(text.contains("hello from skiff"));
    assert!(loaded_in < Duration::from_secs(2), "loaded from disk in {loaded_in:?}");
}

#[test]
fn pods_of_a_new_image_starting_at_once_compile_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(runtime(dir.path()));
    let bytes = Arc::new(read(programs::HTTP_HELLO));
    let loads: Vec<_> = (0..8)
        .map(|_| {
            let (runtime, bytes) = (runtime.clone(), bytes.clone());
            std::thread::spawn(move || runtime.load(&bytes).map(|(digest, _, _)| digest))
        })
        .collect();
    let digests: Vec<String> = loads.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        runtime.cache().compilations(),
        1,
        "one compilation, the others waited for it"
    );
}

/// An [`Outgoing`](skiff_wasm::Outgoing) that reads each request, as a
/// server would, answers it with what it was asked, and remembers it.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl skiff_wasm::Outgoing for Recorder {
    fn send(
        &self,
        request: http::Request<skiff_wasm::WasiBody>,
        options: skiff_wasm::RequestOptions,
    ) -> skiff_wasm::Sending {
        let line = format!(
            "{} {} {:?}",
            request.method(),
            request.uri(),
            options.first_byte_timeout
        );
        self.0.lock().unwrap().push(line.clone());
        Box::pin(async move {
            request.into_body().collect().await?;
            let body = http_body_util::Full::new(bytes::Bytes::from(format!("answered {line}\n")))
                .map_err(|never| match never {})
                .boxed_unsync();
            Ok(http::Response::new(body))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_components_call_out_through_their_environment_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let recorder = Arc::new(Recorder::default());
    let env = |outgoing: Option<Arc<dyn skiff_wasm::Outgoing>>| Environment {
        env: vec![("TARGET_URL".into(), "http://upstream.example/base/".into())],
        outgoing,
        ..Environment::default()
    };

    // wstd's proxy example, unchanged: its request goes to the outgoing
    // handler the environment names, with the URI it built.
    let proxy = runtime
        .http_service(&read(programs::WSTD_HTTP_SERVER_PROXY), env(Some(recorder.clone())))
        .unwrap();
    let response = proxy.handle(get("/proxy/a/b")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        body_of(response).await,
        "answered GET http://upstream.example/base/a/b None\n"
    );
    assert_eq!(recorder.0.lock().unwrap().len(), 1);

    // Without one, the call is refused and the guest's error is a 500.
    let refused = runtime
        .http_service(&read(programs::WSTD_HTTP_SERVER_PROXY), env(None))
        .unwrap();
    let response = refused.handle(get("/proxy/a")).await;
    assert!(
        response.as_ref().map_or(true, |r| r.status().is_server_error()),
        "{:?}",
        response.map(|r| r.status())
    );

    // wstd's client example as a command: it prints the answer.
    let out = dir.path().join("stdout");
    let client = runtime
        .command(
            &read(programs::WSTD_HTTP_CLIENT),
            Environment {
                args: vec![
                    "client".into(),
                    "--first-byte-timeout".into(),
                    "2s".into(),
                    "http://upstream.example/x".into(),
                ],
                stdout: Some(Arc::new(AppendFile(out.clone()))),
                stderr: Some(Arc::new(AppendFile(dir.path().join("stderr")))),
                outgoing: Some(recorder.clone()),
                ..Environment::default()
            },
        )
        .unwrap();
    let exit = client.run(StopHandle::default()).await.unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    assert_eq!(exit.code, 0, "{exit:?}: {stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "answered GET http://upstream.example/x Some(2s)\n"
    );
}
