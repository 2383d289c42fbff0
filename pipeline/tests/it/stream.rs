//! The stream processor against a real lake: killed with SIGKILL while it follows a lake
//! that is being written, restarted each time, it ends in the same state, `order_status`
//! and timer firings as an uninterrupted replay of the finished lake; and `run` serves
//! order timelines and "where is my order?" texts from its state.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::common::{local_lake, orderpulse, query, run_ok, simulate, Server};

/// `orderpulse process --once` on `lake`; returns its summary without the counters
/// (duplicates and late arrivals depend on how the run was cut up).
fn process_once(lake: &Path) -> Value {
    let output = run_ok(orderpulse().args(["process", "--once", "--lake"]).arg(lake));
    let mut summary: Value = serde_json::from_slice(&output.stdout).expect("the summary is JSON");
    summary.as_object_mut().unwrap().remove("counters");
    summary
}

/// The newest checkpoint's sequence number.
fn checkpoint_seq(lake: &Path) -> u64 {
    std::fs::read_dir(lake.join("_stream/checkpoints"))
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".bin")?.parse().ok()).max().unwrap_or(0))
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What the processor wrote to the lake, in a comparable form.
async fn outputs(lake: &Path) -> (Vec<serde_json::Map<String, Value>>, Vec<serde_json::Map<String, Value>>) {
    let lake = local_lake(lake);
    let statuses = query(
        &lake,
        "SELECT order_id, merchant_id, status, created_at, shipped_at, delivered_at, completed_at, cancelled_at, parcels, \
         carriers, last_scan_status, last_scan_at, eta_from, eta_to, flags, last_event_at FROM order_status ORDER BY order_id",
    )
    .await;
    let firings = query(&lake, "SELECT due_at, kind, subject, order_id, merchant_id FROM timer_firings ORDER BY due_at, kind, subject").await;
    (statuses, firings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_following_a_live_lake_it_ends_as_a_replay_does() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = simulate(dir.path(), &["--days", "5", "--orders-per-day", "800", "--seed", "5"]);
    let live = dir.path().join("live");
    let process = || {
        let mut command = orderpulse();
        command
            .args(["process", "--lake"])
            .arg(&live)
            .env("ORDERPULSE_STREAM__CHECKPOINT_INTERVAL", "100ms")
            .env("ORDERPULSE_STREAM__POLL_INTERVAL", "20ms")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    // The lake is written in small commits while the processor follows it.
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_orderpulse"))
        .args(["ingest", "--quiet"])
        .arg(&events)
        .arg("--lake")
        .arg(&live)
        .env("ORDERPULSE_INGEST__BATCH_MAX_EVENTS", "200")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    for _ in 0..5 {
        // Killed after a checkpoint or two, or at a random moment, whichever comes first.
        let target = checkpoint_seq(&live) + rng.random_range(1..3);
        let mut child = process().spawn().unwrap();
        let deadline = Instant::now() + Duration::from_millis(rng.random_range(300..1500));
        while checkpoint_seq(&live) < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..80))).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(ingest.wait().unwrap().success());
    assert_eq!(kills, 5, "the processor is killed every time (it runs until stopped)");
    let live_summary = process_once(&live);

    // Replay: the same events, read from the finished lake by a processor that starts
    // from nothing and is never interrupted. The copy's state is of a format this build
    // does not read (as after an upgrade): refused, with the way out named, which is
    // `--rebuild` (the state and its outputs deleted, then rebuilt from the event tables).
    let replay = dir.path().join("replay");
    copy_dir(&live, &replay);
    let newest = replay.join(format!("_stream/checkpoints/{:020}.bin", checkpoint_seq(&replay)));
    let mut bytes = std::fs::read(&newest).unwrap_or_else(|e| panic!("{}: {e}", newest.display()));
    bytes[4..6].copy_from_slice(&(orderpulse::stream::checkpoint::FORMAT + 1).to_le_bytes());
    std::fs::write(&newest, bytes).unwrap();
    let refused = orderpulse().args(["process", "--once", "--lake"]).arg(&replay).output().unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && message.contains("holds state format") && message.contains("--rebuild"), "{message}");
    let rebuilt = run_ok(orderpulse().args(["process", "--once", "--rebuild", "--lake"]).arg(&replay));
    let mut replay_summary: Value = serde_json::from_slice(&rebuilt.stdout).expect("the summary is JSON");
    replay_summary.as_object_mut().unwrap().remove("counters");

    assert!(live_summary["orders"].as_u64().unwrap() > 100, "{live_summary}");
    assert!(!live_summary["lanes"].as_array().unwrap().is_empty(), "{live_summary}");
    assert_eq!(live_summary, replay_summary, "live (killed {kills} times) and replayed states differ");

    let (live_status, live_firings) = outputs(&live).await;
    let (replay_status, replay_firings) = outputs(&replay).await;
    let orders = crate::common::scalar(&local_lake(&live), "SELECT count(DISTINCT order_id) FROM order_events").await;
    assert_eq!(live_status.len() as i64, orders, "one order_status row per order");
    assert!(live_status == replay_status, "order_status differs between the live and the replayed run");
    assert!(!live_firings.is_empty());
    assert_eq!(live_firings.len(), replay_firings.len(), "timer firings written once each");
    assert!(live_firings == replay_firings, "timer firings differ between the live and the replayed run");
}

const LOTUS: &str = "op_stream_lotus_key";
const NORTHWIND: &str = "op_stream_northwind_key";
const ADMIN: &str = "op_stream_admin_key";

async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let language = response.headers().get("content-language").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, response.text().await.unwrap(), language)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_where_an_order_is_from_the_stream_state() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = simulate(dir.path(), &["--days", "2", "--orders-per-day", "300", "--seed", "3"]);
    let lake_dir = dir.path().join("lake");
    run_ok(orderpulse().args(["ingest", "--quiet"]).arg(&events).arg("--lake").arg(&lake_dir));
    let lake = local_lake(&lake_dir);
    let delivered = query(
        &lake,
        "SELECT s.order_id, o.merchant_id FROM order_events s JOIN order_events o ON o.order_id = s.order_id AND o.type = 'order.created' \
         JOIN carrier_events c ON c.tracking_number = s.tracking_number AND c.status = 'delivered' \
         WHERE s.type = 'order.shipped' AND o.merchant_id = 'm_lotus' ORDER BY s.order_id LIMIT 2",
    )
    .await;
    let order_id = delivered[0]["order_id"].as_str().unwrap().to_owned();
    // Another merchant's order under the id of the second: one order in the state, which
    // neither merchant may see.
    let conflicted = delivered[1]["order_id"].as_str().unwrap().to_owned();
    let elsewhere = dir.path().join("elsewhere.ndjson");
    let line = serde_json::json!({
        "event_id": "northwind-same-id", "type": "order.created", "occurred_at": "2026-11-02T12:00:00Z",
        "merchant_id": "m_northwind", "order_id": conflicted,
    });
    std::fs::write(&elsewhere, format!("{line}\n")).unwrap();
    run_ok(orderpulse().args(["ingest", "--quiet"]).arg(&elsewhere).arg("--lake").arg(&lake_dir));

    let entry = |name: &str, merchant: Option<&str>, key: &str| {
        let hash = orderpulse::api::auth::sha256_hex(key);
        let role = match merchant {
            Some(merchant) => format!("role = \"merchant\"\nmerchant = \"{merchant}\""),
            None => "role = \"admin\"".to_owned(),
        };
        format!("[[auth.keys]]\nname = \"{name}\"\n{role}\nsha256 = \"{hash}\"\n")
    };
    let config = dir.path().join("orderpulse.toml");
    let keys = [entry("lotus", Some("m_lotus"), LOTUS), entry("northwind", Some("m_northwind"), NORTHWIND), entry("ops", None, ADMIN)];
    std::fs::write(&config, keys.join("\n")).unwrap();
    let server = Server::start(&lake_dir, &["--no-simulator", "--config", config.to_str().unwrap()], &[]);
    let client = reqwest::Client::new();
    let lotus = format!("Bearer {LOTUS}");
    let url = format!("{}/v1/orders/{order_id}", server.base);

    // The processor reads the lake's snapshot right after start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let timeline: Value = loop {
        let (status, body, _) = get(&client, &url, &[("authorization", &lotus)]).await;
        let caught_up = status == 200 && body.contains("\"status\":\"delivered\"") && !body.contains("\"watermark\":null");
        if caught_up {
            break serde_json::from_str(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "the order never appeared: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // `/readyz` tells when the processor has read the whole lake since its start.
    loop {
        let (_, ready, _) = get(&client, &format!("{}/readyz", server.base), &[]).await;
        let stream = serde_json::from_str::<Value>(&ready).unwrap()["stream"].clone();
        if stream == "caught_up" {
            break;
        }
        assert!(stream == "catching_up" && Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(timeline["order_id"], order_id.as_str());
    assert_eq!(timeline["merchant_id"], "m_lotus");
    assert!(matches!(timeline["status"].as_str(), Some("delivered" | "completed" | "return_requested" | "partially_delivered")), "{timeline}");
    let milestones: Vec<&str> = timeline["milestones"].as_array().unwrap().iter().map(|m| m["milestone"].as_str().unwrap()).collect();
    assert_eq!(milestones.first(), Some(&"order_created"), "{milestones:?}");
    assert!(milestones.contains(&"shipped"), "{milestones:?}");
    let scans = timeline["parcels"][0]["scans"].as_array().unwrap();
    assert!(scans.iter().any(|s| s["status"] == "delivered"), "{timeline}");
    assert!(scans.iter().all(|s| s["location"].is_object()));

    let text_url = format!("{url}/status-text");
    let (status, body, language) = get(&client, &text_url, &[("authorization", &lotus)]).await;
    assert_eq!((status, language.as_deref()), (200, Some("en")), "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let text = answer["text"].as_str().unwrap();
    assert!(text.contains(&order_id) && text.ends_with('.'), "{text}");
    let (status, german, language) =
        get(&client, &text_url, &[("authorization", &lotus), ("accept-language", "de-DE, de;q=0.9, en;q=0.5"), ("accept", "text/plain")]).await;
    assert_eq!((status, language.as_deref()), (200, Some("de")));
    assert!(german.contains(&order_id) && german != text && german.contains("Ihre"), "{german}");

    // Another merchant's key, and an unknown order: 404 with a JSON error, alike.
    let northwind = format!("Bearer {NORTHWIND}");
    for (url, key) in [(&url, &northwind), (&format!("{}/v1/orders/no-such-order", server.base), &lotus)] {
        let (status, body, _) = get(&client, url, &[("authorization", key)]).await;
        assert_eq!(status, 404, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "order_not_found");
    }
    let (status, _, _) = get(&client, &url, &[]).await;
    assert_eq!(status, 401, "no key, no order");

    // The order id both merchants used: shown flagged to an admin (once the processor has
    // read the second ingest's commit), a 409 for each merchant (the state mixes their
    // events).
    let conflicted_url = format!("{}/v1/orders/{conflicted}", server.base);
    let admin = format!("Bearer {ADMIN}");
    let conflict = loop {
        let (status, body, _) = get(&client, &conflicted_url, &[("authorization", &admin)]).await;
        assert_eq!(status, 200, "{body}");
        let timeline: Value = serde_json::from_str(&body).unwrap();
        if let Some(flag) = timeline["flags"].as_array().unwrap().iter().find(|f| f["flag"] == "merchant_conflict") {
            break flag.clone();
        }
        assert!(Instant::now() < deadline, "the conflict was never flagged: {timeline}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(conflict["merchant_ids"], serde_json::json!(["m_lotus", "m_northwind"]));
    for key in [&lotus, &northwind] {
        for url in [conflicted_url.clone(), format!("{conflicted_url}/status-text")] {
            let (status, body, _) = get(&client, &url, &[("authorization", key)]).await;
            assert_eq!(status, 409, "{url}: {body}");
            let error: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["error"]["code"], "order_id_conflict", "{body}");
            assert!(!body.contains("m_northwind") && !body.contains("m_lotus"), "the error names no merchant: {body}");
        }
    }

    // The operator's numbers: every merchant's, so not for a merchant's key.
    let metrics_url = format!("{}/metrics", server.base);
    let (status, _, _) = get(&client, &metrics_url, &[("authorization", &lotus)]).await;
    assert_eq!(status, 403);
    let (status, page, _) = get(&client, &metrics_url, &[("authorization", &admin)]).await;
    assert_eq!(status, 200, "{page}");
    let sample = |name: &str| {
        let line = page.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name} in {page}"));
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
    };
    assert_eq!(sample("orderpulse_stream_caught_up"), 1.0);
    assert_eq!(sample("orderpulse_stream_merchant_conflicts_total"), 1.0);
    assert!(sample("orderpulse_stream_orders") >= 600.0 && sample("orderpulse_stream_events_applied_total") > sample("orderpulse_stream_orders"), "{page}");
    assert!(page.contains("# TYPE orderpulse_stream_events_applied_total counter"), "{page}");
}
