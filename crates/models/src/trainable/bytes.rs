//! A byte-level tokenizer: token `b` is byte `b`, plus three control tokens. No vocabulary
//! file, lossless on any text, and small enough that the output layer costs little — what a
//! model trained from scratch on 2 cores needs.

#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    pub const BOS: u32 = 256;
    pub const EOS: u32 = 257;
    pub const PAD: u32 = 258;
    pub const VOCAB: usize = 259;

    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    /// Bytes back to text; control tokens are dropped, invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter(|&&i| i < 256).map(|&i| i as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_text_and_drops_control_tokens() {
        let t = ByteTokenizer;
        let s = "17 × 23 = 391 <tool_call>{\"a\": 1}</tool_call> ✓";
        assert_eq!(t.decode(&t.encode(s)), s);
        assert_eq!(t.encode("Hi"), vec![72, 105]);
        assert_eq!(t.decode(&[ByteTokenizer::BOS, 72, 105, ByteTokenizer::EOS]), "Hi");
    }
}
