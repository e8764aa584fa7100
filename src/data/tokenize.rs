//! WordPiece tokenization from a Hugging Face `tokenizer.json` (the `tokenizers` crate), and
//! batches padded only to their longest example (dynamic padding).

use crate::error::{Error, Result};
use crate::models::bert::BertFeed;
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams, TruncationStrategy};

/// One tokenized example, unpadded: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Segment of each token: 0 for the first text, 1 for the second.
    pub type_ids: Vec<u32>,
    /// Whether the text was longer than the limit and cut.
    pub truncated: bool,
}

pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    pad_id: u32,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; texts longer than `max_len` tokens (specials included) are cut,
    /// the longer text of a pair first (Hugging Face's `longest_first`).
    pub fn load(path: &Path, max_len: usize) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::data(path, "tokenizer.json not found"));
        }
        if max_len < 4 {
            return Err(Error::Invalid(format!(
                "maximum sequence length must be at least 4, got {max_len}"
            )));
        }
        let invalid = |why: String| Error::data(path, format!("not a valid tokenizer.json: {why}"));
        let mut inner = no_panic(|| Tokenizer::from_file(path))
            .map_err(invalid)?
            .map_err(|e| invalid(e.to_string()))?;
        inner.with_padding(None::<PaddingParams>);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| Error::data(path, format!("truncation: {e}")))?;
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
            pad_id,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes one text or a text pair, with the special tokens.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let cannot =
            |why: String| Error::data(&self.path, format!("cannot tokenize {text:?}: {why}"));
        let enc = no_panic(|| match pair {
            None => self.inner.encode(text, true),
            Some(b) => self.inner.encode((text, b), true),
        })
        .map_err(cannot)?
        .map_err(|e| cannot(e.to_string()))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            type_ids: enc.get_type_ids().to_vec(),
            truncated: !enc.get_overflowing().is_empty(),
        })
    }

    /// Pads `examples` to the longest of them rounded up to a multiple of `multiple` (so that
    /// few distinct shapes occur): `[PAD]` ids, segment 0, attention mask 0.
    pub fn pad(&self, examples: &[&Encoded], multiple: usize) -> (BertFeed, usize) {
        let longest = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let len = longest.div_ceil(multiple.max(1)) * multiple.max(1);
        let (mut ids, mut types, mut mask) = (Vec::new(), Vec::new(), Vec::new());
        for e in examples {
            let n = e.ids.len();
            ids.extend(e.ids.iter().copied().chain((n..len).map(|_| self.pad_id)));
            types.extend(e.type_ids.iter().copied().chain((n..len).map(|_| 0)));
            mask.extend((0..len).map(|i| (i < n) as u32));
        }
        (BertFeed::new(ids, types, &mask, len), len)
    }
}

/// Runs `f`, turning a panic inside the tokenizers crate into an error message: it `expect`s
/// on some malformed tokenizer.json files, when loading (a broken `decoder` object) and when
/// encoding (a template naming an unknown special token); both found by fuzzing,
/// fuzz/seeds/bert_files/crash-*. The panic hook is silenced meanwhile, so that the user sees
/// one message.
fn no_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the tokenizers crate failed on it".into())
    })
}
