//! The image store against a real NATS server: what is read is what was stored, whatever its size
//! in chunks, and reading leaves nothing behind on the server (no consumer per read: under image
//! traffic those reached the server's consumer limit and every read failed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream;
use jobs::images::ImageStore;
use jobs::{Topology, provision};
use platform::nats::Namespace;
use testkit::{nats_namespace, nats_url};

#[tokio::test]
async fn objects_of_any_size_read_back_whole_and_reads_leave_no_consumer() {
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap());
    provision(&js, &topology).await.unwrap();
    let store = ImageStore::new(js.clone(), &topology);

    // Empty, one byte, exactly one 128 KiB chunk, one byte more, several chunks.
    for size in [0, 1, 128 * 1024, 128 * 1024 + 1, 300_000] {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let key = format!("items/x/{size}");
        store.put(&key, &bytes).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(bytes), "{size} bytes");
    }
    // Replaced under the same name: the new bytes, not the old chunks.
    store.put("items/x/1", b"replaced").await.unwrap();
    assert_eq!(
        store.get("items/x/1").await.unwrap().as_deref(),
        Some(&b"replaced"[..])
    );
    store.delete("items/x/0").await.unwrap();
    assert_eq!(store.get("items/x/0").await.unwrap(), None);
    assert_eq!(store.get("never/stored").await.unwrap(), None);

    // A burst of reads, then the store's stream has no consumer at all.
    let reads = (0..200).map(|_| store.get("items/x/300000"));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap().map(|b| b.len()), Some(300_000));
    }
    let mut stream = js
        .get_stream(format!("OBJ_{}", topology.images_store()))
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}
