//! `ByteReader`: the choices of a structure-aware target, read from the fuzzer's bytes.
//! An exhausted reader answers zeros, so every input decodes to something.

pub struct ByteReader<'a> {
    data: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&byte, rest)) => {
                self.data = rest;
                byte
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// One of `choices` (which must not be empty).
    pub fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.u8()) % choices.len()].clone()
    }

    /// Up to `max_bytes` bytes, the count read first.
    pub fn bytes(&mut self, max_bytes: usize) -> &'a [u8] {
        let wanted = usize::from(self.u8()).min(max_bytes).min(self.data.len());
        let (taken, rest) = self.data.split_at(wanted);
        self.data = rest;
        taken
    }

    /// A string of up to `max_bytes` bytes (invalid UTF-8 replaced).
    pub fn text(&mut self, max_bytes: usize) -> String {
        String::from_utf8_lossy(self.bytes(max_bytes)).into_owned()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}
