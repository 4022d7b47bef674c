//! Screenshots in results: base64 PNG text is taken out of a step's result,
//! stored once as a file named by its SHA-256, and the text replaced by that
//! file's relative path (the step lists where, in `images`).

use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::layout::{image_file, IMAGES};
use super::schema::ImageRef;

/// How base64 text of a PNG starts (the PNG signature, encoded).
const PNG_BASE64: &str = "iVBORw0KGg";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A decoded screenshot to store.
pub struct Image {
    pub hash: String,
    pub png: Vec<u8>,
}

/// A result with its screenshots taken out.
pub struct Extracted {
    pub result: Box<RawValue>,
    pub refs: Vec<ImageRef>,
    pub images: Vec<Image>,
}

/// Whether `result` may hold a screenshot (a look at the text, no parsing).
pub fn may_have_images(result: &RawValue) -> bool {
    result.get().contains(PNG_BASE64)
}

/// Takes the PNGs out of `result`; `None` when it has none (most results:
/// checked on the text, without parsing it).
pub fn extract(result: &RawValue) -> Option<Extracted> {
    if !may_have_images(result) {
        return None;
    }
    let mut tree: Value = serde_json::from_str(result.get()).ok()?;
    let mut found = Found::default();
    walk(&mut tree, &mut String::new(), &mut found);
    if found.refs.is_empty() {
        return None;
    }
    let result = serde_json::value::to_raw_value(&tree).ok()?;
    Some(Extracted {
        result,
        refs: found.refs,
        images: found.images,
    })
}

#[derive(Default)]
struct Found {
    refs: Vec<ImageRef>,
    images: Vec<Image>,
}

fn walk(v: &mut Value, pointer: &mut String, found: &mut Found) {
    match v {
        Value::String(s) if s.starts_with(PNG_BASE64) => {
            let Some(png) = decode(s) else { return };
            let hash = format!("{:x}", Sha256::digest(&png));
            let file = format!("{IMAGES}/{}", image_file(&hash));
            *s = file.clone();
            found.refs.push(ImageRef {
                pointer: pointer.clone(),
                file,
            });
            if !found.images.iter().any(|i| i.hash == hash) {
                found.images.push(Image { hash, png });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(item, pointer, found);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(item, pointer, found);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    bytes.starts_with(PNG_SIGNATURE).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn pngs_are_replaced_by_files_and_stored_once() {
        let png = [PNG_SIGNATURE, b"rest of a picture"].concat();
        let other = [PNG_SIGNATURE, b"another"].concat();
        let raw = serde_json::value::to_raw_value(&serde_json::json!({
            "image": b64(&png),
            "shots": [b64(&png), {"a/b": b64(&other)}],
            "text": "iVBORw0KGgo but not base64 of a PNG!",
        }))
        .unwrap();
        let out = extract(&raw).expect("images found");
        let pointers: Vec<_> = out.refs.iter().map(|r| r.pointer.as_str()).collect();
        assert_eq!(pointers, ["/image", "/shots/0", "/shots/1/a~1b"]);
        assert_eq!(out.images.len(), 2, "identical images are stored once");
        let tree: Value = serde_json::from_str(out.result.get()).unwrap();
        let hash = format!("{:x}", Sha256::digest(&png));
        assert_eq!(tree["image"], format!("images/{hash}.png"));
        assert_eq!(tree["shots"][0], tree["image"]);
        assert_eq!(tree["text"], "iVBORw0KGgo but not base64 of a PNG!");
    }

    #[test]
    fn results_without_pngs_are_left_alone() {
        let raw = RawValue::from_string(r#"{"stdout":"hi\n"}"#.into()).unwrap();
        assert!(extract(&raw).is_none());
    }
}
