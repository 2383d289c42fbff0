//! Raw carrier payloads over HTTP (`POST /v1/carriers/{carrier}/webhook`) and on the
//! command line (`orderpulse carriers map`): scans in the lake exactly once, bad payloads
//! quarantined whole with their reason and answered with a 4xx, unknown codes counted.

use serde_json::Value;

use crate::common::{local_lake, orderpulse, post, query, run_ok, scalar, Server};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../data/carriers/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_webhooks_land_once_and_bad_payloads_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let server = Server::start(&lake, &["--no-simulator"], &[]);
    let client = reqwest::Client::new();
    let webhook = |carrier: &str| format!("{}/v1/carriers/{carrier}/webhook", server.base);

    // A UPS payload, twice (a webhook retry): in the lake once.
    let payload = fixture("ups/two-packages.json");
    let (status, body) = post(&client, &webhook("ups"), &[], payload.clone()).await;
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["scans"].as_u64(), answer["accepted"].as_u64()), (Some(9), Some(9)), "{answer}");
    assert_eq!(answer["unknown_codes"], serde_json::json!([{"code": "QV/Q1", "scans": 1}]));
    let (_, body) = post(&client, &webhook("ups"), &[], payload).await;
    let retry: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((retry["accepted"].as_u64(), retry["duplicates"].as_u64()), (Some(0), Some(9)), "{retry}");
    let (status, _) = post(&client, &webhook("usps"), &[("content-type", "application/xml")], fixture("usps/track-response.xml")).await;
    assert_eq!(status, 200);
    let lake_view = local_lake(&lake);
    assert_eq!(scalar(&lake_view, "SELECT count(*) FROM carrier_events WHERE carrier = 'ups'").await, 9);
    assert_eq!(scalar(&lake_view, "SELECT count(DISTINCT event_id) FROM carrier_events").await, 16);

    // Bad payloads: a 4xx naming the problem, and the payload in quarantine, whole.
    let cases: [(&str, &[u8], u16, &str); 3] = [
        ("ups", b"<html>502 Bad Gateway</html>", 400, "unparsable_payload"),
        ("dhl", br#"{"shipments": [{"events": [{"timestamp": "2026-11-20T10:00:00Z", "statusCode": "transit"}]}]}"#, 400, "missing_tracking_number"),
        ("pigeon_post", br#"{"coo": true}"#, 404, "unknown_carrier"),
    ];
    for (carrier, payload, expected_status, code) in cases {
        let (status, body) = post(&client, &webhook(carrier), &[], payload.to_vec()).await;
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, error["error"]["code"].as_str()), (expected_status, Some(code)), "{carrier}: {error}");
        let quarantined = query(&lake_view, &format!("SELECT reason, field, CAST(raw AS VARCHAR) AS raw FROM quarantine WHERE field = '{code}'")).await;
        assert_eq!(quarantined.len(), 1, "{carrier}: {quarantined:?}");
        assert_eq!(quarantined[0]["reason"], "carrier_payload");
        assert_eq!(quarantined[0]["raw"].as_str().unwrap().as_bytes(), payload);
    }

    // Unknown codes, counted per carrier and code from the lake.
    let answer: Value =
        serde_json::from_slice(&client.get(format!("{}/v1/carriers/unknown-codes", server.base)).send().await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(answer["rows"][0]["carrier"], "ups");
    assert_eq!(answer["rows"][0]["code"], "QV/Q1");
    assert_eq!(answer["rows"][0]["scans"], 1);
}

#[test]
fn carriers_map_prints_the_canonical_scans_of_a_payload() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/carriers");
    let output = run_ok(orderpulse().args(["carriers", "map", "--carrier", "sf_express"]).arg(format!("{root}/sf_express/route-push.json")));
    let expected = std::fs::read_to_string(format!("{root}/sf_express/route-push.expected.ndjson")).unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
    let generic = run_ok(
        orderpulse()
            .args(["carriers", "map", "--carrier", "acme", "--mapping"])
            .arg(format!("{root}/acme/mapping.toml"))
            .arg(format!("{root}/acme/webhook.json")),
    );
    assert!(String::from_utf8_lossy(&generic.stderr).contains("unknown code: acme \"XYZ\""));
    let refused = orderpulse().args(["carriers", "map", "--carrier", "fedex"]).arg(format!("{root}/ups/two-packages.json")).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("not a fedex tracking payload"), "{stderr}");
}
