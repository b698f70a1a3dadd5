//! A minimal DER reader (definite lengths, single-byte tags), shared by the parameter parsing
//! here and the PKI structures (TSA requests, certificates) in `cloudsign-pki`.

/// A DER reader over one buffer.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// What has not been read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// The next tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.bytes.first().copied()
    }

    /// The next element: (tag, content, whole encoding).
    pub fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let start = self.bytes;
        let (&tag, rest) = self.bytes.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        self.bytes = &rest[len..];
        let header = start.len() - rest.len();
        Some((tag, &rest[..len], &start[..header + len]))
    }

    /// The next element's content if it has `tag`.
    pub fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content, _) if t == tag => Some(content),
            _ => None,
        }
    }
}
