//! Writing: incremental updates (§7.5.6) that append new and changed objects, and a
//! cross-reference section of the file's own kind, after the original bytes.

use std::collections::HashMap;
use std::io::{Read, Seek};

use crate::object::{Dict, Obj};
use crate::reader::{Entry, Pdf};

impl<R: Read + Seek> Pdf<R> {
    /// A new object number.
    pub fn allocate(&mut self) -> u32 {
        // /Size is at most MAX_OBJECTS (checked at open): far from u32::MAX.
        self.size += 1;
        self.size - 1
    }

    /// The generation number of object `num` (0 for new objects).
    pub fn generation(&self, num: u32) -> u16 {
        match self.xref.get(&num) {
            Some(Entry::InFile { generation, .. }) => *generation,
            _ => 0,
        }
    }

    /// Start an incremental update.
    pub fn update(&self) -> Update {
        let mut body = Vec::new();
        if self.appended == 0 && !self.ends_with_eol {
            body.push(b'\n');
        }
        let generations = self
            .xref
            .iter()
            .filter_map(|(n, e)| match e {
                Entry::InFile { generation, .. } if *generation != 0 => Some((*n, *generation)),
                _ => None,
            })
            .collect();
        Update { base: self.len(), body, offsets: Vec::new(), generations }
    }

    /// Close `update`: its cross-reference section (of the file's kind) and trailer go at the
    /// end; the objects it wrote become the current versions. Returns the update's bytes.
    pub fn finish(&mut self, mut update: Update, changed: Vec<(u32, Obj)>) -> Vec<u8> {
        let xref_offset = update.base + update.body.len() as u64;
        let mut trailer = Dict::default();
        for key in ["Root", "Info", "ID"] {
            if let Some(v) = self.trailer.get(key) {
                trailer.set(key, v.clone());
            }
        }
        update.offsets.sort_unstable();
        let generation = |n: u32| update.generations.get(&n).copied().unwrap_or(0);
        if self.xref_stream {
            // §7.5.8: an uncompressed cross-reference stream; it lists itself too.
            let own = self.allocate();
            update.offsets.push((own, xref_offset));
            let mut data = Vec::new();
            let mut index = Vec::new();
            for group in contiguous(&update.offsets) {
                index.push(Obj::Int(i64::from(group[0].0)));
                index.push(Obj::Int(group.len() as i64));
                for (n, off) in group {
                    data.push(1);
                    data.extend_from_slice(&off.to_be_bytes()[3..]);
                    data.extend_from_slice(&generation(*n).to_be_bytes());
                }
            }
            trailer.set("Type", Obj::name("XRef"));
            trailer.set("Size", Obj::Int(i64::from(self.size)));
            trailer.set("Index", Obj::Array(index));
            trailer.set("W", Obj::Array(vec![Obj::Int(1), Obj::Int(5), Obj::Int(2)]));
            trailer.set("Prev", Obj::Int(self.last_xref as i64));
            trailer.set("Length", Obj::Int(data.len() as i64));
            update.body.extend_from_slice(format!("{own} 0 obj\n").as_bytes());
            Obj::Dict(trailer.clone()).write(&mut update.body);
            update.body.extend_from_slice(b"\nstream\n");
            update.body.extend_from_slice(&data);
            update.body.extend_from_slice(b"\nendstream\nendobj\n");
        } else {
            update.body.extend_from_slice(b"xref\n");
            for group in contiguous(&update.offsets) {
                update.body.extend_from_slice(format!("{} {}\n", group[0].0, group.len()).as_bytes());
                for (n, off) in group {
                    update.body.extend_from_slice(format!("{off:010} {:05} n\r\n", generation(*n)).as_bytes());
                }
            }
            trailer.set("Size", Obj::Int(i64::from(self.size)));
            trailer.set("Prev", Obj::Int(self.last_xref as i64));
            update.body.extend_from_slice(b"trailer\n");
            Obj::Dict(trailer.clone()).write(&mut update.body);
            update.body.push(b'\n');
        }
        update.body.extend_from_slice(format!("startxref\n{xref_offset}\n%%EOF\n").as_bytes());
        self.last_xref = xref_offset;
        self.appended += update.body.len() as u64;
        for (n, o) in changed {
            self.changed.insert(n, o);
        }
        update.body
    }
}

/// Runs of consecutive object numbers, for cross-reference subsections.
fn contiguous(offsets: &[(u32, u64)]) -> Vec<&[(u32, u64)]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=offsets.len() {
        if i == offsets.len() || offsets[i].0 != offsets[i - 1].0 + 1 {
            if start < i {
                groups.push(&offsets[start..i]);
            }
            start = i;
        }
    }
    groups
}

/// An incremental update being written.
pub struct Update {
    base: u64,
    /// The update's bytes so far.
    pub body: Vec<u8>,
    offsets: Vec<(u32, u64)>,
    /// Existing objects with a generation other than 0: a new version keeps it (§7.5.6).
    generations: HashMap<u32, u16>,
}

impl Update {
    /// Append object `num` (generation 0), returning where its serialization starts in `body`.
    pub fn object(&mut self, num: u32, obj: &Obj) -> usize {
        let at = self.body.len();
        self.offsets.push((num, self.base + at as u64));
        let generation = self.generations.get(&num).copied().unwrap_or(0);
        self.body.extend_from_slice(format!("{num} {generation} obj\n").as_bytes());
        let start = self.body.len();
        obj.write(&mut self.body);
        self.body.extend_from_slice(b"\nendobj\n");
        start
    }

    /// Append an object already serialized (with its `n 0 obj` and `endobj`), returning where
    /// it starts in `body`.
    pub fn raw_object(&mut self, num: u32, bytes: &[u8]) -> usize {
        let at = self.body.len();
        self.offsets.push((num, self.base + at as u64));
        self.body.extend_from_slice(bytes);
        at
    }

    /// Append a stream object with unfiltered `data`.
    pub fn stream(&mut self, num: u32, mut dict: Dict, data: &[u8]) {
        self.offsets.push((num, self.base + self.body.len() as u64));
        dict.set("Length", Obj::Int(data.len() as i64));
        self.body.extend_from_slice(format!("{num} 0 obj\n").as_bytes());
        Obj::Dict(dict).write(&mut self.body);
        self.body.extend_from_slice(b"\nstream\n");
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\nendstream\nendobj\n");
    }

    /// Where the update starts in the whole file.
    pub fn base(&self) -> u64 {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_numbers_form_subsections() {
        let offsets = [(3, 10), (4, 20), (7, 30)];
        let groups = contiguous(&offsets);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
    }
}
