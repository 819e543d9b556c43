//! The lifecycle's item in a real table (moto's DynamoDB, reached one request at a time
//! as DynamoDB orders the writes of an item): every phase reads back as written, a write
//! goes in only over the version it read, and of racing writers exactly one wins.

#[path = "../support/mod.rs"]
mod support;

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use support::Moto;
use teardown::lifecycle::{Answer, Bounds, Calls, Event, Item, Requester, Rules, Seen, step};
use teardown::request::Operation;
use teardown::state::Key;
use teardown::target_items::{Stored, TargetItems, Written, from_attributes, to_attributes};

async fn items(moto: &Moto, name: &str) -> TargetItems {
    let client = support::dynamodb_at(&support::one_at_a_time::start(&moto.endpoint).await);
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("an attribute definition"),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().expect("a key"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable in moto");
    TargetItems::new(client, name.to_owned())
}

fn key(id: &str) -> Key {
    Key {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        operation: Operation::TerminateWorkspaces,
        target: id.into(),
    }
}

/// One item of each phase, as the lifecycle makes them.
fn phases() -> Vec<Item> {
    let rules = Rules { calls: Calls::Idempotent, bounds: Bounds::from_settings(60, 360, 5, 7200) };
    let by = Requester::new("token-a", "{\"kind\":\"direct\",\"requestId\":\"r-1\"}");
    let want =
        Event::Request { by: by.clone(), call: "r-1".into(), seen: Seen::Standing { failed: None }, dry_run: false };
    let calling = step(&Item::default(), &want, 1_800_000_000, &rules).item;
    let accepted = Event::Answer { by, call: "r-1".into(), answer: Answer::Accepted { job: Some("rec-1".into()) } };
    let following = step(&calling, &accepted, 1_800_000_001, &rules).item;
    vec![Item::default(), calling, following]
}

#[test]
fn every_phase_maps_to_attributes_and_back_unchanged() {
    for (version, item) in phases().into_iter().enumerate() {
        let stored = Stored { version: version as u64 + 1, item };
        let attributes = to_attributes(&key("ws-1"), &stored, "w-1", 1_800_086_400);
        assert_eq!(from_attributes(&attributes), Ok(stored));
    }
}

#[tokio::test]
async fn a_write_goes_in_only_over_the_version_it_read_and_a_loser_learns_what_won() {
    let moto = Moto::start();
    let table = items(&moto, "teardown-state").await;
    let k = key("ws-1");
    let [_, calling, following] = <[Item; 3]>::try_from(phases()).expect("three phases");
    let never = table.load(std::slice::from_ref(&k)).await.expect("a load");
    assert_eq!(never, vec![Stored::default()], "a target never written reads as version 0");

    let first = table.write(&k, &never[0], &calling, "w-1", 1).await.expect("a write");
    assert_eq!(first, Written::Won(Stored { version: 1, item: calling.clone() }));
    // A second writer that read the item before the first wrote it loses, and is told what won.
    let late = table.write(&k, &never[0], &following, "w-2", 1).await.expect("a write");
    assert_eq!(late, Written::Lost(Stored { version: 1, item: calling.clone() }));
    // Over what won, it goes in.
    let Written::Lost(won) = late else { unreachable!() };
    let second = table.write(&k, &won, &following, "w-3", 1).await.expect("a write");
    assert_eq!(second, Written::Won(Stored { version: 2, item: following.clone() }));
    assert_eq!(table.load(&[k]).await.expect("a load"), vec![Stored { version: 2, item: following }]);
}

#[tokio::test]
async fn a_write_sent_again_after_its_answer_was_lost_knows_itself() {
    let moto = Moto::start();
    let table = items(&moto, "teardown-state").await;
    let k = key("ws-2");
    let calling = phases().swap_remove(1);
    let first = table.write(&k, &Stored::default(), &calling, "w-same", 1).await.expect("a write");
    // The SDK's retry of the same write (same token) finds it in, and counts it as made.
    let again = table.write(&k, &Stored::default(), &calling, "w-same", 1).await.expect("a write");
    assert_eq!(first, again);
}

#[tokio::test]
async fn of_eight_racing_writers_from_one_version_exactly_one_wins() {
    let moto = Moto::start();
    let table = items(&moto, "teardown-state").await;
    let k = key("ws-3");
    let calling = phases().swap_remove(1);
    let writes = (0..8).map(|i| {
        let (table, k, calling) = (table.clone(), k.clone(), calling.clone());
        tokio::spawn(async move { table.write(&k, &Stored::default(), &calling, &format!("w-{i}"), 1).await })
    });
    let mut won = 0;
    for write in writes {
        if let Ok(Ok(Written::Won(_))) = write.await {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn many_targets_load_in_one_call_per_hundred_each_in_its_place() {
    let moto = Moto::start();
    let table = items(&moto, "teardown-state").await;
    let keys: Vec<Key> = (0..150).map(|i| key(&format!("ws-{i:03}"))).collect();
    let calling = phases().swap_remove(1);
    for k in keys.iter().step_by(7) {
        table.write(k, &Stored::default(), &calling, "w", 1).await.expect("a write");
    }
    let loaded = table.load(&keys).await.expect("a load");
    for (i, stored) in loaded.iter().enumerate() {
        let expected = if i % 7 == 0 { 1 } else { 0 };
        assert_eq!(stored.version, expected, "{}", keys[i].target);
    }
}
