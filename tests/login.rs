//! Login protection in the example: password hashing off the worker's event loop behind a
//! bounded queue, and a per-account failure limit beside the per-address one.

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{App, test, web};
use common::{Reply, raw_request, send};
use secure_api_runtime::auth::password::Passwords;
use serde_json::{Value, json};

const PASSWORD: &str = "demo-password-1";

async fn example(
    passwords: Passwords,
) -> (
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    web::Data<users_api::AppState>,
) {
    let (api, state) = users_api::setup(passwords, PASSWORD);
    let app = test::init_service(
        App::new()
            .app_data(state.clone())
            .wrap(api.layer())
            .configure(users_api::routes),
    )
    .await;
    (app, state)
}

fn cheap() -> Passwords {
    Passwords::with_params(1024, 1, 1).unwrap()
}

/// A login from `203.0.113.<n>` (the per-address limit is 5 a minute: tests use a new
/// address for each attempt, as an attacker with many addresses would).
fn login(username: &str, password: &str, n: u8) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/login")
        .peer_addr(format!("203.0.113.{n}:1000").parse().unwrap())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(json!({ "username": username, "password": password }).to_string())
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds")
}

/// Asserts the 429 of a throttled account and returns its body.
fn assert_throttled(reply: &Reply) -> Value {
    let body = reply.assert_problem(429, "rate-limited");
    let retry = retry_after(reply);
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    body
}

#[actix_rt::test]
async fn logins_hash_off_the_worker_event_loop() {
    let (api, state) = users_api::setup(cheap(), PASSWORD);
    // An account whose stored hash is slow to check (its PHC string carries its own
    // parameters): about a second of argon2 on a current core.
    let slow_hash = Passwords::with_params(8 * 1024, 150, 1)
        .unwrap()
        .hash("slow-password")
        .unwrap();
    {
        let mut users = state.users.write().unwrap();
        let mut account = users["bob"].clone();
        account.password_hash = slow_hash;
        users.insert("slowpoke".to_owned(), account);
    }
    let (addr, handle) = common::serve!("127.0.0.1", 1, {
        let state = state.clone();
        move || {
            App::new()
                .app_data(state.clone())
                .wrap(api.layer())
                .configure(users_api::routes)
        }
    });

    let passwords = state.passwords.clone();
    let (login, cheap_reply, in_flight, login_done_first) =
        actix_web::rt::task::spawn_blocking(move || {
            let (done_tx, done_rx) = mpsc::channel();
            let login = std::thread::spawn(move || {
                let body = json!({ "username": "slowpoke", "password": "slow-password" });
                let reply = raw_request(
                    addr,
                    "POST",
                    "/api/login",
                    &[("Content-Type", "application/json")],
                    body.to_string().as_bytes(),
                )
                .unwrap();
                done_tx.send(()).unwrap();
                reply
            });
            // Wait until the login handler is checking the password.
            let deadline = Instant::now() + Duration::from_secs(30);
            while passwords.hashes_in_flight() == 0 {
                assert!(Instant::now() < deadline, "the login never started hashing");
                std::thread::sleep(Duration::from_millis(1));
            }
            // A cheap request to the same, single worker.
            let cheap_reply = raw_request(addr, "GET", "/api/me", &[], b"").unwrap();
            let in_flight = passwords.hashes_in_flight();
            let login_done_first = done_rx.try_recv().is_ok();
            (
                login.join().unwrap(),
                cheap_reply,
                in_flight,
                login_done_first,
            )
        })
        .await
        .unwrap();
    handle.stop(true).await;

    assert_eq!(cheap_reply.status, 401, "the cheap request was answered");
    assert_eq!(
        in_flight, 1,
        "the cheap request was answered while the login was still hashing"
    );
    assert!(!login_done_first, "the login had not finished");
    assert_eq!(
        login.status,
        200,
        "{}",
        String::from_utf8_lossy(&login.body)
    );
    assert_eq!(state.passwords.hashes_in_flight(), 0);
}

#[actix_rt::test]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    // One hash at a time (tens of milliseconds each), one waiting.
    let passwords = Passwords::with_params(8 * 1024, 4, 1)
        .unwrap()
        .max_concurrent_hashes(1)
        .max_queued_hashes(1);
    let (app, state) = example(passwords).await;
    let before = state.passwords.hash_operations();
    let names = ["alice", "bob", "mallory"];
    let (a, b, c) = futures_util::future::join3(
        send(&app, login(names[0], "wrong-1", 1)),
        send(&app, login(names[1], "wrong-2", 2)),
        send(&app, login(names[2], "wrong-3", 3)),
    )
    .await;
    let replies = [a, b, c];
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [401, 401, 503],
        "one running, one queued, one refused"
    );
    let refused = replies.iter().position(|r| r.status == 503).unwrap();
    let busy = &replies[refused];
    busy.assert_problem(503, "service-unavailable");
    assert_eq!(busy.header("retry-after"), Some("1"));
    busy.assert_leaks_none(&[
        "alice", "bob", "mallory", "wrong-", "hash", "queue", "argon",
    ]);
    assert_eq!(
        state.passwords.hash_operations() - before,
        2,
        "the refused login computed no hash"
    );
    // The refusal did not count against its account: ten real failures still go through.
    let name = names[refused];
    for n in 10..20 {
        assert_eq!(send(&app, login(name, "wrong", n)).await.status, 401);
    }
    assert_throttled(&send(&app, login(name, "wrong", 20)).await);
}

#[actix_rt::test]
async fn ten_failures_from_ten_addresses_throttle_the_account() {
    let (app, state) = example(cheap()).await;
    for n in 1..=10 {
        let r = send(&app, login("alice", &format!("guess-{n}"), n)).await;
        assert_eq!(r.status, 401, "failure {n}: {}", r.text());
    }
    // The eleventh attempt, from yet another address and with the right password, is
    // refused before any hashing.
    let before = state.passwords.hash_operations();
    let r = send(&app, login("alice", PASSWORD, 11)).await;
    assert_throttled(&r);
    r.assert_leaks_none(&["alice", PASSWORD, "account", "login"]);
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(
        state.passwords.hash_operations(),
        before,
        "a throttled account costs no hash"
    );
    // Another spelling of the same name is the same account.
    assert_throttled(&send(&app, login("  ALICE ", PASSWORD, 12)).await);
    // Another account is unaffected, from the same addresses.
    let r = send(&app, login("bob", PASSWORD, 1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(state.passwords.hash_operations(), before + 1);
}

#[actix_rt::test]
async fn unknown_usernames_are_throttled_the_same_way() {
    let (app, state) = example(cheap()).await;
    for n in 1..=10 {
        assert_eq!(send(&app, login("bob", "wrong", n)).await.status, 401);
        assert_eq!(
            send(&app, login("mallory", "wrong", n + 100)).await.status,
            401
        );
    }
    let before = state.passwords.hash_operations();
    let known = send(&app, login("bob", PASSWORD, 50)).await;
    // A fullwidth spelling of the unknown name is the same name.
    let unknown = send(&app, login("ＭＡＬＬＯＲＹ", "wrong", 150)).await;
    assert_eq!(
        state.passwords.hash_operations(),
        before,
        "no hash for either"
    );
    let a = assert_throttled(&known);
    let b = assert_throttled(&unknown);
    for field in ["type", "title", "status", "detail"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    let names = |r: &Reply| {
        let mut names: Vec<String> = r.headers.keys().map(|n| n.to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&known), names(&unknown), "the same headers");
    unknown.assert_leaks_none(&["mallory", "ＭＡＬＬＯＲＹ", "unknown", "user"]);
}

#[actix_rt::test]
async fn a_successful_login_does_not_count_as_a_failure() {
    let (app, _) = example(cheap()).await;
    for n in 1..=9 {
        assert_eq!(send(&app, login("alice", "wrong", n)).await.status, 401);
    }
    for n in 10..=12 {
        let r = send(&app, login("alice", PASSWORD, n)).await;
        assert_eq!(r.status, 200, "success {n}: {}", r.text());
    }
    // The tenth failure is still checked (a 401, not a 429): the successes took nothing.
    assert_eq!(send(&app, login("alice", "wrong", 13)).await.status, 401);
    // The budget is spent now, for right passwords too.
    assert_throttled(&send(&app, login("alice", PASSWORD, 14)).await);
}
