//! `POST /v1/events`: per-line answers, limits and backpressure, and durable
//! acknowledgements: an answered request's events are in the lake after a SIGKILL.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::{lake_counts, local_lake, post, post_full, simulate, Server};

const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");

fn order_paid(id: &str) -> String {
    json!({"event_id": id, "type": "order.paid", "occurred_at": "2026-11-20T10:00:00Z", "merchant_id": "m1", "order_id": format!("o-{id}")}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_get_an_answer_per_line_and_limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let server = Server::start(&lake, &["--no-simulator"], &[("ORDERPULSE_API__MAX_BODY_BYTES", "20000")]);
    let url = format!("{}/v1/events", server.base);
    let client = reqwest::Client::new();

    let body = [order_paid("a"), order_paid("b"), "{not json".to_owned(), order_paid("a"), String::new(), order_paid("c")].join("\n");
    let (status, answer) = post(&client, &url, &[NDJSON], body.clone().into_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let statuses: Vec<&str> = answer["lines"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "accepted", "rejected", "duplicate", "blank", "accepted"], "{answer}");
    assert_eq!(answer["lines"][2]["line"], 3);
    assert_eq!(answer["lines"][2]["reason"], "not_json");
    assert_eq!((answer["accepted"].as_u64(), answer["duplicates"].as_u64(), answer["rejected"].as_u64()), (Some(3), Some(1), Some(1)));

    // The same batch again (a client retry): nothing new.
    let (_, again) = post(&client, &url, &[NDJSON], body.into_bytes()).await;
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(again["duplicates"], 4, "{again}");

    // One event as application/json, pretty-printed across lines.
    let single = serde_json::to_vec_pretty(&serde_json::from_str::<Value>(&order_paid("d")).unwrap()).unwrap();
    let (status, answer) = post(&client, &url, &[], single).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap()["accepted"], 1);

    let counts = lake_counts(&local_lake(&lake)).await;
    assert_eq!(counts.rows, 4);
    assert_eq!(counts.quarantine_by_reason.get("not_json"), Some(&2));

    // Too large: 413 with a JSON error. Empty: 400.
    let big: Vec<u8> = (0..400).map(|i| order_paid(&format!("big{i}"))).collect::<Vec<_>>().join("\n").into_bytes();
    let (status, answer) = post(&client, &url, &[NDJSON], big).await;
    assert_eq!(status, 413);
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap()["error"]["code"], "body_too_large");
    let (status, answer) = post(&client, &url, &[NDJSON], b"\n".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap()["error"]["code"], "empty_body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let server = Server::start(&lake, &["--no-simulator"], &[("ORDERPULSE_INGEST__HTTP_QUEUE_REQUESTS", "1")]);
    let url = format!("{}/v1/events", server.base);
    let client = reqwest::Client::new();
    let requests = (0..40).map(|r| {
        let body = (0..200).map(|i| order_paid(&format!("r{r}-{i}"))).collect::<Vec<_>>().join("\n");
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { post_full(&client, &url, &[NDJSON], body.into_bytes()).await })
    });
    let mut accepted = 0;
    let mut refused = 0;
    for request in requests.collect::<Vec<_>>() {
        let (status, body, retry_after) = request.await.unwrap();
        match status {
            200 => accepted += serde_json::from_slice::<Value>(&body).unwrap()["accepted"].as_i64().unwrap(),
            429 => {
                refused += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "overloaded");
            }
            other => panic!("unexpected status {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(refused > 0, "40 concurrent requests against a queue of 1 were never refused");
    assert_eq!(lake_counts(&local_lake(&lake)).await.rows, accepted, "an answered request's events are missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_nine_and_retries_double_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (events, truth) = simulate(dir.path(), &["--days", "2", "--orders-per-day", "1000", "--seed", "41"]);
    let lines: Vec<String> = std::fs::read_to_string(&events).unwrap().lines().map(str::to_owned).collect();
    let batches: Vec<String> = lines.chunks(500).map(|c| c.join("\n")).collect();
    let lake = dir.path().join("lake");
    let client = reqwest::Client::new();
    let mut acknowledged: BTreeSet<usize> = BTreeSet::new();

    // Send every batch; kill the server every few batches, without waiting for answers
    // in flight, and send the unacknowledged batches again to the restarted server.
    let mut round = 0;
    while acknowledged.len() < batches.len() {
        round += 1;
        assert!(round < 50, "batches never all acknowledged");
        let server = Server::start(&lake, &["--no-simulator"], &[]);
        let url = format!("{}/v1/events", server.base);
        let pending: Vec<usize> = (0..batches.len()).filter(|i| !acknowledged.contains(i)).take(6).collect();
        let sends: Vec<_> = pending
            .iter()
            .map(|&i| {
                let (client, url, body) = (client.clone(), url.clone(), batches[i].clone().into_bytes());
                tokio::spawn(async move { (i, client.post(url).header(NDJSON.0, NDJSON.1).body(body).send().await) })
            })
            .collect();
        // Wait for the first answer, then kill with the others still in flight.
        let mut sends = sends.into_iter();
        if let Some(first) = sends.next()
            && let (i, Ok(response)) = first.await.unwrap()
            && response.status().is_success()
        {
            acknowledged.insert(i);
        }
        server.kill();
        for send in sends {
            if let (i, Ok(response)) = send.await.unwrap()
                && response.status().is_success()
                && response.bytes().await.is_ok()
            {
                acknowledged.insert(i);
            }
        }
    }

    let counts = lake_counts(&local_lake(&lake)).await;
    assert_eq!(counts.rows, counts.distinct_ids, "an event was written twice");
    assert_eq!(counts.rows, truth["events"].as_i64().unwrap(), "acknowledged events are missing");
}
