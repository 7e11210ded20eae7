//! Bounded capture of a test's output: the first and the last bytes are kept, what lies
//! between is counted and cut, so a child that floods gigabytes costs nothing.

/// Keeps at most `limit` bytes: half from the start, half from the end.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Capture {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    half: usize,
    total: u64,
}

impl Capture {
    pub fn new(limit: usize) -> Self {
        Self {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            half: limit / 2,
            total: 0,
        }
    }

    /// Adds bytes as they arrive.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.half - self.head.len();
        if room > 0 {
            let (first, rest) = bytes.split_at(room.min(bytes.len()));
            self.head.extend_from_slice(first);
            bytes = rest;
        }
        if bytes.len() >= self.half {
            self.tail.clear();
            bytes = &bytes[bytes.len() - self.half..];
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.half);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// All bytes received.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes received but not kept.
    pub fn cut(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The kept text, with a marker where bytes were cut.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.cut() > 0 {
            text += &format!("\n[... {} bytes of output cut ...]\n", self.cut());
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        text += &String::from_utf8_lossy(&tail);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::Capture;

    #[test]
    fn keeps_everything_under_the_limit() {
        let mut c = Capture::new(16);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.text(), "hello world");
        assert_eq!(c.cut(), 0);
    }

    #[test]
    fn keeps_head_and_tail_of_a_flood() {
        let mut c = Capture::new(8);
        for _ in 0..1000 {
            c.push(b"abcdefghij");
        }
        c.push(b"WXYZ");
        assert_eq!(c.total(), 10_004);
        assert_eq!(c.cut(), 10_004 - 8);
        assert_eq!(c.text(), "abcd\n[... 9996 bytes of output cut ...]\nWXYZ");
    }
}
