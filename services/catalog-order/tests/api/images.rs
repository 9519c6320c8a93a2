//! Item images end to end: upload (admin, multipart) → outbox → worker → thumbnails in the
//! object store → `image.processed` → served with caching headers; and every way an upload can be
//! wrong, each refused with a problem and nothing written.

use std::time::Duration;

use crate::support::{Shop, problem};
use catalog_order::maintenance::{ORPHAN_GRACE, sweep_images};
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use jobs::images::{ImageStore, digest};
use jobs::{Topology, provision};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use testkit::eventually;

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn form(bytes: Vec<u8>) -> Form {
    // The declared name and type are lies on purpose: only the bytes count.
    Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name("photo.gif")
            .mime_str("text/plain")
            .unwrap(),
    )
}

async fn upload(
    shop: &Shop,
    token: &str,
    item: &str,
    form: Form,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = shop
        .client
        .post(shop.url(&format!("/v1/items/{item}/images")))
        .bearer_auth(token)
        .multipart(form);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn job_status(shop: &Shop, token: &str, job: &str) -> Value {
    shop.get(&format!("/v1/jobs/{job}"), Some(token))
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_for_job(shop: &Shop, token: &str, job: &str, status: &str) -> Value {
    let reached = eventually(Duration::from_secs(20), || async {
        job_status(shop, token, job).await["status"] == status
    })
    .await;
    let last = job_status(shop, token, job).await;
    assert!(reached, "job never became {status}: {last}");
    last
}

#[tokio::test]
async fn an_upload_becomes_three_sizes_served_with_caching_headers() {
    let mut shop = Shop::spawn().await;
    shop.add_worker().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;

    let r = upload(&shop, &admin, &item, form(jpeg(1600, 1200)), None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let accepted: Value = r.json().await.unwrap();
    let (job, image) = (
        accepted["job_id"].as_str().unwrap().to_owned(),
        accepted["image_id"].as_str().unwrap().to_owned(),
    );
    let done = wait_for_job(&shop, &admin, &job, "succeeded").await;
    assert_eq!(done["kind"], "image.thumbnail");
    assert_eq!(done["attempts"], 1);

    // The event that marks the image ready may land just after the job's own status.
    let images = || async {
        let list: Value = shop
            .get(&format!("/v1/items/{item}/images"), None)
            .await
            .json()
            .await
            .unwrap();
        list
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            images().await[0]["status"] == "ready"
        })
        .await
    );
    let list = images().await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], image.as_str());
    assert_eq!(
        (list[0]["width"].as_i64(), list[0]["height"].as_i64()),
        (Some(1600), Some(1200))
    );
    let sizes: Vec<(String, i64, i64)> = list[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["size"].as_str().unwrap().to_owned(),
                v["width"].as_i64().unwrap(),
                v["height"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("thumb".to_owned(), 128, 96),
            ("small".to_owned(), 320, 240),
            ("medium".to_owned(), 800, 600)
        ]
    );

    let url = list[0]["variants"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/v1/items/{item}/images/{image}/thumb"));
    let r = shop.get(&url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = r.bytes().await.unwrap();
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (128, 96));

    let revalidate = shop
        .client
        .get(shop.url(&url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidate.status(), StatusCode::NOT_MODIFIED);
    assert!(revalidate.bytes().await.unwrap().is_empty());

    let missing = shop
        .get(&format!("/v1/items/{item}/images/{image}/huge"), None)
        .await;
    let p = problem(missing, StatusCode::NOT_FOUND).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("thumb, small, medium")
    );
    let other_item = shop.item(&admin, &cat, "PIC-2", 100, 5).await;
    let r = shop
        .get(
            &format!("/v1/items/{other_item}/images/{image}/thumb"),
            None,
        )
        .await;
    problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_same_upload_twice_with_one_key_is_one_image_and_one_job() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    let photo = jpeg(300, 200);

    let first = upload(&shop, &admin, &item, form(photo.clone()), Some("up-1")).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = upload(&shop, &admin, &item, form(photo), Some("up-1")).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(shop.count("item_images").await, 1);
    assert_eq!(shop.count("jobs").await, 1);

    let other = upload(&shop, &admin, &item, form(jpeg(200, 300)), Some("up-1")).await;
    let p = problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        p["detail"].as_str().unwrap().contains("Idempotency-Key"),
        "{p}"
    );
    assert_eq!(shop.count("item_images").await, 1);
}

#[tokio::test]
async fn a_corrupt_image_ends_dead_with_its_error_not_retried_forever() {
    let mut shop = Shop::spawn().await;
    shop.add_worker().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    // A PNG whose header is fine (so the upload is accepted) but whose pixels are cut off.
    let whole = png(400, 300);
    let broken = whole[..whole.len() / 2].to_vec();

    let r = upload(&shop, &admin, &item, form(broken), None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dead = wait_for_job(&shop, &admin, &job, "dead").await;
    assert_eq!(dead["attempts"], 1, "a corrupt file is not retried: {dead}");
    assert!(
        dead["error"].as_str().unwrap().contains("corrupt image"),
        "{dead}"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let list: Value = shop
                .get(&format!("/v1/items/{item}/images"), None)
                .await
                .json()
                .await
                .unwrap();
            list[0]["status"] == "failed"
        })
        .await
    );
}

#[tokio::test]
async fn bad_uploads_get_a_problem_and_write_nothing() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let ann = shop.customer("ann@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    let photo = jpeg(64, 64);

    // Who: nobody, a customer.
    let r = shop
        .client
        .post(shop.url(&format!("/v1/items/{item}/images")))
        .multipart(form(photo.clone()))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    let r = upload(&shop, &ann, &item, form(photo.clone()), None).await;
    problem(r, StatusCode::FORBIDDEN).await;

    // Where: an unknown item, a malformed id.
    let r = upload(
        &shop,
        &admin,
        "0190a5f0-0000-7000-8000-000000000000",
        form(photo.clone()),
        None,
    )
    .await;
    problem(r, StatusCode::NOT_FOUND).await;
    let r = upload(&shop, &admin, "not-a-uuid", form(photo.clone()), None).await;
    problem(r, StatusCode::BAD_REQUEST).await;

    // What: not an image (whatever it claims), an SVG, nothing, the wrong part, two files.
    let r = upload(
        &shop,
        &admin,
        &item,
        form(b"GIF89a but not really".to_vec()),
        None,
    )
    .await;
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let r = upload(&shop, &admin, &item, form(svg.to_vec()), None).await;
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // A form without parts is not even a well-formed multipart body.
    let r = upload(&shop, &admin, &item, Form::new(), None).await;
    problem(r, StatusCode::BAD_REQUEST).await;
    let wrong = Form::new().part("picture", Part::bytes(photo.clone()));
    let r = upload(&shop, &admin, &item, wrong, None).await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "picture", "{p}");
    let two = form(photo.clone()).part("file", Part::bytes(photo.clone()));
    let r = upload(&shop, &admin, &item, two, None).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = upload(&shop, &admin, &item, form(Vec::new()), None).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;

    // A JSON body instead of a form.
    let r = shop
        .client
        .post(shop.url(&format!("/v1/items/{item}/images")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"file": "aGVsbG8="}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // How big: over 10 MiB, and a tiny file declaring a 60 000 × 60 000 canvas.
    let mut huge = jpeg(64, 64);
    huge.resize(10 * 1024 * 1024 + 1, 0);
    let r = upload(&shop, &admin, &item, form(huge), None).await;
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let r = upload(&shop, &admin, &item, form(bomb), None).await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "file", "{p}");

    assert_eq!(shop.count("item_images").await, 0);
    assert_eq!(shop.count("jobs").await, 0);
}

/// A PNG that does not compress: about `width × height × 3` bytes.
fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let [a, b, c, _] = state.to_be_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// The shop's image store, as the services open it.
async fn image_store(shop: &Shop) -> ImageStore {
    let nats = async_nats::connect(testkit::nats_url()).await.unwrap();
    let topology = Topology::from_settings(&shop.settings.nats).unwrap();
    provision(&async_nats::jetstream::new(nats.clone()), &topology)
        .await
        .unwrap();
    ImageStore::new(async_nats::jetstream::new(nats), &topology)
}

async fn object_names(store: &ImageStore) -> Vec<String> {
    let mut names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_full_image_store_refuses_uploads_with_507_and_writes_nothing() {
    let shop = Shop::spawn_with(|s| s.nats.nats_images_max_bytes = 256 * 1024).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    let store = image_store(&shop).await;

    let small = noisy_png(100, 100); // ~30 KB
    let r = upload(&shop, &admin, &item, form(small), None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let before = object_names(&store).await;
    assert_eq!(before.len(), 1);

    let big = noisy_png(300, 300); // ~270 KB: past the limit on its own
    assert!(big.len() > 256 * 1024);
    let r = upload(&shop, &admin, &item, form(big), Some("full-1")).await;
    let p = problem(r, StatusCode::INSUFFICIENT_STORAGE).await;
    assert_eq!(p["type"], "/problems/insufficient-storage");
    assert!(p["detail"].as_str().unwrap().contains("full"), "{p}");
    assert_eq!(shop.count("item_images").await, 1);
    assert_eq!(shop.count("jobs").await, 1);
    assert_eq!(shop.count("idempotency_keys").await, 0);
    assert_eq!(object_names(&store).await, before);

    // Uploads that fit still go in, up to the limit.
    let r = upload(&shop, &admin, &item, form(noisy_png(150, 150)), None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(object_names(&store).await.len(), 2);
}

#[tokio::test]
async fn an_upload_whose_transaction_fails_leaves_no_original_behind() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    let store = image_store(&shop).await;
    // The database refuses the image row after the original was stored (a fault injected in
    // the real PostgreSQL, as a constraint or a lost connection would).
    let db = shop.db.pool().await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON item_images FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&db)
    .await
    .unwrap();
    let r = upload(&shop, &admin, &item, form(png(64, 64)), None).await;
    problem(r, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(shop.count("jobs").await, 0);
    assert_eq!(object_names(&store).await, Vec::<String>::new());
}

#[tokio::test]
async fn the_sweep_deletes_old_objects_of_images_that_have_no_row_and_nothing_else() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    let store = image_store(&shop).await;
    let r = upload(&shop, &admin, &item, form(png(64, 64)), None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let kept = object_names(&store).await;
    // What a replica killed between its put and its commit leaves, and an object not ours.
    let orphan = format!("items/{item}/{}/original", uuid::Uuid::now_v7());
    store.put(&orphan, b"orphan").await.unwrap();
    store
        .put("elsewhere/readme", b"not an image")
        .await
        .unwrap();

    let db = shop.db.pool().await;
    let now = time::OffsetDateTime::now_utc();
    let sweep = |now| sweep_images(&db, &store, now, ORPHAN_GRACE);
    // Within the grace period an orphan may be an upload about to commit.
    assert_eq!(sweep(now).await.unwrap(), 0);
    assert_eq!(object_names(&store).await.len(), 3);
    let later = now + ORPHAN_GRACE + Duration::from_secs(60);
    assert_eq!(sweep(later).await.unwrap(), 1);
    let mut left = kept.clone();
    left.push("elsewhere/readme".to_owned());
    left.sort();
    assert_eq!(object_names(&store).await, left);
    assert_eq!(sweep(later).await.unwrap(), 0);
}

/// `catalog-order images backup|restore DIR` as an operator runs it.
fn images_command(shop: &Shop, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalog-order"))
        .arg("images")
        .args(args)
        .env_clear()
        .envs(testkit::coverage_env())
        .env("APP_ENV", "test")
        .env("NATS_URL", testkit::nats_url())
        .env("NATS_NAMESPACE", &shop.namespace)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn images_survive_a_lost_store_through_backup_and_restore_byte_for_byte() {
    let mut shop = Shop::spawn().await;
    shop.add_worker().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "PIC-1", 100, 5).await;
    for picture in [jpeg(900, 600), png(300, 200)] {
        let r = upload(&shop, &admin, &item, form(picture), None).await;
        let accepted: Value = r.json().await.unwrap();
        wait_for_job(
            &shop,
            &admin,
            accepted["job_id"].as_str().unwrap(),
            "succeeded",
        )
        .await;
    }
    let list = || async {
        let list: Value = shop
            .get(&format!("/v1/items/{item}/images"), None)
            .await
            .json()
            .await
            .unwrap();
        list
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            list()
                .await
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["status"] == "ready")
        })
        .await
    );
    let urls: Vec<String> = list()
        .await
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["variants"].as_array().unwrap().clone())
        .map(|v| v["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 6);
    let served = || async {
        let mut all = Vec::new();
        for url in &urls {
            let r = shop.get(url, None).await;
            all.push((r.status(), r.bytes().await.unwrap()));
        }
        all
    };
    let before = served().await;
    assert!(before.iter().all(|(status, _)| *status == StatusCode::OK));

    let store = image_store(&shop).await;
    let stored = store.list().await.unwrap();
    assert_eq!(stored.len(), 8); // 2 originals, 6 sizes
    // The digest the backup checks is the one the store records.
    for object in &stored {
        let bytes = store.get(&object.name).await.unwrap().unwrap();
        assert_eq!(object.digest.as_deref(), Some(digest(&bytes).as_str()));
    }

    let dir = std::env::temp_dir().join(format!("images-backup-{}", shop.namespace));
    let path = dir.to_str().unwrap();
    let first = images_command(&shop, &["backup", path]);
    assert!(first.contains("objects=8 written=8 unchanged=0"), "{first}");
    assert!(first.contains("result=ok"), "{first}");
    let again = images_command(&shop, &["backup", path]);
    assert!(again.contains("written=0 unchanged=8"), "{again}");

    // The NATS volume is lost: the store and everything in it.
    let js = async_nats::jetstream::new(async_nats::connect(testkit::nats_url()).await.unwrap());
    js.delete_object_store(
        Topology::from_settings(&shop.settings.nats)
            .unwrap()
            .images_store(),
    )
    .await
    .unwrap();
    let r = shop.get(&urls[0], None).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    // A backup that runs now finds an empty store and must not forget what it holds.
    let empty = images_command(&shop, &["backup", path]);
    assert!(
        empty.contains("objects=0 written=0 unchanged=0 bytes=0 kept=8"),
        "{empty}"
    );

    let restored = images_command(&shop, &["restore", path]);
    assert!(
        restored.contains("objects=8 restored=8 present=0 result=ok"),
        "{restored}"
    );
    assert_eq!(served().await, before);
    let twice = images_command(&shop, &["restore", path]);
    assert!(twice.contains("restored=0 present=8"), "{twice}");

    // A damaged backup file is refused by name, not restored.
    let victim = &stored[0].name;
    std::fs::write(dir.join("objects").join(victim), b"bit rot").unwrap();
    store.delete(victim).await.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalog-order"))
        .args(["images", "restore", path])
        .env_clear()
        .envs(testkit::coverage_env())
        .env("APP_ENV", "test")
        .env("NATS_URL", testkit::nats_url())
        .env("NATS_NAMESPACE", &shop.namespace)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        output.contains("damaged") && output.contains(victim.as_str()),
        "{output}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
