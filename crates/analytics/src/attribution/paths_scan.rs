//! The quick reading of a paths-text row, and the channel-name codes it needs.
//!
//! The careful row parser in `paths_text` splits, trims and parses with the standard library
//! and names every problem; on a large file most of its time goes to splitting on short
//! fields, trimming and hashing channel names. The quick reader here scans a row once, from
//! its first byte to its newline, and only accepts rows it reads with certainty: every channel
//! name non-empty after trimming, and the three numbers written as plain decimals (`12`,
//! `3400.5`) that it converts exactly like `str::parse::<f64>`. Anything else (a blank line,
//! the header, a malformed row, `1e3`, `+5`, a long mantissa, a value without conversion)
//! gets `None` and goes to the careful parser, so the quick reader never produces a violation
//! itself and cannot change one.

/// Marks an empty slot of the name index.
const EMPTY: u32 = u32::MAX;

/// Up to this many slots the name index stays at most an eighth full.
const SMALL_SLOTS: usize = 2048;

/// Channel names and their codes (0, 1, ... in first-seen order) within one part of the text.
#[derive(Debug, Default)]
pub(super) struct ChannelCodes {
    names: Vec<String>,
    keys: Vec<NameKey>,
    /// Per code, a hash of the name alone: a path's hash built from these is the same in
    /// every part, whatever codes the parts gave the names.
    hashes: Vec<u64>,
    /// Open addressing over codes, sized a power of two and, for a few hundred names, at most
    /// an eighth full, so a lookup nearly always ends on its first slot (a second one costs a
    /// mispredicted branch).
    slots: Vec<u32>,
    /// 64 less the bits of a slot number: a name's first slot is its hash's top bits, which
    /// depend on every byte of the name (the low bits of a product do not).
    shift: u32,
}

/// A name's length with its first and last (up to) eight bytes, zero-padded. For a name of
/// up to 16 bytes these hold every byte, so equal keys mean equal names without reading the
/// stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NameKey {
    len: usize,
    head: u64,
    tail: u64,
}

impl NameKey {
    /// The key of a name on its own.
    pub(super) fn of(name: &[u8]) -> Self {
        let len = name.len();
        let word = |part: &[u8]| {
            let mut word = [0u8; 8];
            let take = part.len().min(8);
            word[..take].copy_from_slice(&part[..take]);
            u64::from_le_bytes(word)
        };
        Self {
            len,
            head: word(&name[..len.min(8)]),
            tail: word(&name[len.saturating_sub(8)..]),
        }
    }

    /// The key of `bytes[start..end]`, equal to `of` on that slice. Reads two whole words
    /// around the name and masks them, where the text allows: copying a short name into a
    /// zeroed buffer costs a call and a stalled load, and this runs for every channel of
    /// every row.
    pub(super) fn within(bytes: &[u8], start: usize, end: usize) -> Self {
        let len = end.saturating_sub(start);
        let whole = len.min(8) as u32 * 8;
        let head = bytes.get(start..).and_then(|rest| rest.first_chunk::<8>());
        let tail = bytes.get(..end).and_then(|before| before.last_chunk::<8>());
        match (head, tail, whole) {
            (Some(head), Some(tail), 8..=64) => Self {
                len,
                head: u64::from_le_bytes(*head) & (u64::MAX >> (64 - whole)),
                tail: u64::from_le_bytes(*tail) >> (64 - whole),
            },
            _ => Self::of(bytes.get(start..end).unwrap_or_default()),
        }
    }

    fn holds_whole_name(self) -> bool {
        self.len <= 16
    }

    /// The first slot of the key in an index of `2^(64 - shift)` slots.
    fn slot(self, shift: u32) -> usize {
        self.hash().checked_shr(shift).unwrap_or_default() as usize
    }

    fn hash(self) -> u64 {
        let mixed = (self.head ^ (self.len as u64).rotate_left(32))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ self.tail;
        let mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
        mixed ^ (mixed >> 29)
    }
}

impl ChannelCodes {
    /// Forgets every name, keeping the buffers.
    pub(super) fn clear(&mut self) {
        self.names.clear();
        self.keys.clear();
        self.hashes.clear();
        self.slots.clear();
    }

    /// The hash of a path of codes given by this part: it depends on the names only.
    pub(super) fn path_hash(&self, codes: &[u32]) -> u64 {
        let hash = codes
            .iter()
            .fold(0, |hash, &code| path_hash_step(hash, self.name_hash(code)));
        path_hash_finish(hash, codes.len())
    }

    /// The hash of the name with this code.
    fn name_hash(&self, code: u32) -> u64 {
        self.hashes.get(code as usize).copied().unwrap_or_default()
    }

    /// The code of a (trimmed, non-empty) name, adding it when new.
    pub(super) fn code(&mut self, name: &str) -> u32 {
        let key = NameKey::of(name.as_bytes());
        match self.find(name.as_bytes(), key) {
            Some(code) => code,
            None => self.insert(name, key),
        }
    }

    /// The code of a known name (`key` must be `name`'s). Always inlined in the row reader:
    /// a call per channel name costs more than the lookup itself.
    #[inline(always)]
    fn find(&self, name: &[u8], key: NameKey) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut slot = key.slot(self.shift);
        loop {
            let code = self.slots[slot];
            if code == EMPTY {
                return None;
            }
            let known = code as usize;
            let same = || key.holds_whole_name() || self.names[known].as_bytes() == name;
            if self.keys[known] == key && same() {
                return Some(code);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The code of a (trimmed, non-empty) name given owned, adding it without copying when
    /// new.
    pub(super) fn code_owned(&mut self, name: String) -> u32 {
        let key = NameKey::of(name.as_bytes());
        match self.find(name.as_bytes(), key) {
            Some(code) => code,
            None => self.insert_owned(name, key),
        }
    }

    /// The names in code order, taken out (the codes then mean nothing: clear next).
    pub(super) fn take_names(&mut self) -> Vec<String> {
        std::mem::take(&mut self.names)
    }

    /// Adds a name not known yet (`key` must be `name`'s) and returns its code.
    fn insert(&mut self, name: &str, key: NameKey) -> u32 {
        self.insert_owned(name.to_owned(), key)
    }

    fn insert_owned(&mut self, name: String, key: NameKey) -> u32 {
        let code = self.names.len() as u32;
        self.names.push(name);
        self.keys.push(key);
        self.hashes.push(key.hash());
        // An eighth full while small (a file's few channels), half full past a few hundred
        // names, where the slots' memory counts more than a second probe now and then.
        let full = match self.slots.len() {
            0..SMALL_SLOTS => self.keys.len() * 8 > self.slots.len(),
            _ => self.keys.len() * 2 > self.slots.len(),
        };
        if full {
            self.rebuild((self.slots.len() * 2).max(256));
        } else {
            place(&mut self.slots, self.shift, key, code);
        }
        code
    }

    fn rebuild(&mut self, capacity: usize) {
        self.slots.clear();
        self.slots.resize(capacity, EMPTY);
        self.shift = 64 - capacity.trailing_zeros();
        for (code, &key) in self.keys.iter().enumerate() {
            place(&mut self.slots, self.shift, key, code as u32);
        }
    }
}

/// Puts a code in the first free slot from its key's.
fn place(slots: &mut [u32], shift: u32, key: NameKey, code: u32) {
    let mask = slots.len() - 1;
    let mut slot = key.slot(shift);
    while slots[slot] != EMPTY {
        slot = (slot + 1) & mask;
    }
    slots[slot] = code;
}

/// Adds a name's hash to a path's hash.
fn path_hash_step(hash: u64, name: u64) -> u64 {
    (hash.rotate_left(5) ^ name).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// A path's hash from its names' hashes added in order, and its length.
fn path_hash_finish(hash: u64, len: usize) -> u64 {
    // murmur3's finaliser: the path index uses both the low and the high bits.
    let mut hash = hash ^ len as u64;
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// A row the quick reader read.
pub(super) struct QuickRow {
    /// Conversions, value and nulls.
    pub(super) numbers: [f64; 3],
    /// The path's hash, as [`ChannelCodes::path_hash`] gives it (computed along the way, as
    /// a second loop over the codes would cost a mispredicted exit per row).
    pub(super) hash: u64,
    /// Where the next line starts (past the end of the text after the last line).
    pub(super) next_line: usize,
}

/// Reads the plain row that starts at byte `start` of `text`: pushes its channel codes onto
/// `codes` and returns the rest. `None` when the line is not a plain row; `codes` and
/// `channels` may then hold leftovers of the attempt (the caller drops the codes; the careful
/// parser assigns the same channel codes, and names of a row with a problem only matter when
/// the whole parse fails).
pub(super) fn quick_row(
    text: &str,
    start: usize,
    separator: &str,
    channels: &mut ChannelCodes,
    codes: &mut Vec<u32>,
) -> Option<QuickRow> {
    let row_start = codes.len();
    let (path_end, hash) = match separator.as_bytes() {
        // A one-byte separator is ASCII, so every cut lands on a char boundary.
        &[separator] => codes_split_on_byte(text, start, separator, channels, codes)?,
        _ => {
            let rest = text.get(start..)?;
            let line = rest.split('\n').next().unwrap_or_default();
            let end = line.find(';')?;
            let mut hash = 0;
            for name in line[..end].split(separator) {
                let code = channels.code(trimmed(name)?);
                hash = path_hash_step(hash, channels.name_hash(code));
                codes.push(code);
            }
            (start + end, hash)
        }
    };
    let hash = path_hash_finish(hash, codes.len() - row_start);
    let bytes = text.as_bytes();
    let (conversions, at) = plain_number(bytes, path_end + 1)?;
    let (value, at) = plain_number(bytes, next_field(bytes, at)?)?;
    let (nulls, at) = plain_number(bytes, next_field(bytes, at)?)?;
    let next_line = match bytes.get(at) {
        None => at + 1,
        Some(b'\n') => at + 1,
        Some(_) => return None,
    };
    if value > 0.0 && conversions == 0.0 {
        return None;
    }
    Some(QuickRow {
        numbers: [conversions, value, nulls],
        hash,
        next_line,
    })
}

/// The position after the `;` at `at`, if there is one.
fn next_field(bytes: &[u8], at: usize) -> Option<usize> {
    (bytes.get(at) == Some(&b';')).then_some(at + 1)
}

/// Codes the path column of the line at `start`, split on an ASCII separator; returns where
/// the column ends (its `;`) and the names' hashes added up with [`path_hash_step`], or
/// `None` when the line ends first or a name is empty.
fn codes_split_on_byte(
    text: &str,
    start: usize,
    separator: u8,
    channels: &mut ChannelCodes,
    codes: &mut Vec<u32>,
) -> Option<(usize, u64)> {
    let bytes = text.as_bytes();
    let mut hash = 0;
    let mut name_start = start;
    let mut stops = Stops::new(bytes, start, separator);
    loop {
        let stop = stops.next()?;
        let (first, last) = trim_one_space(bytes, name_start, stop);
        let code = match (
            bytes.get(first),
            last.checked_sub(1).and_then(|l| bytes.get(l)),
        ) {
            (Some(&a), Some(&b)) if first < last && visible(a) && visible(b) => {
                let key = NameKey::within(bytes, first, last);
                match channels.find(bytes.get(first..last)?, key) {
                    Some(code) => code,
                    None => channels.insert(text.get(first..last)?, key),
                }
            }
            // Empty, or edged by more blanks, a vertical tab or a non-ASCII character that may
            // be a space.
            _ => channels.code(trimmed(text.get(name_start..stop)?)?),
        };
        codes.push(code);
        hash = path_hash_step(hash, channels.name_hash(code));
        match bytes.get(stop) {
            Some(&b) if b == separator => name_start = stop + 1,
            Some(b';') => return Some((stop, hash)),
            _ => return None,
        }
    }
}

/// The separators, `;` and newlines from a position on, found 64 bytes at a time: one bit
/// per byte, walked with `trailing_zeros`. Looking for the next stop byte by byte, or even
/// word by word, mispredicts a branch on nearly every name, as names vary in length.
struct Stops<'a> {
    bytes: &'a [u8],
    separator: u8,
    /// Where the current block of 64 bytes starts, and its stop bits not yet taken.
    block: usize,
    bits: u64,
}

impl<'a> Stops<'a> {
    fn new(bytes: &'a [u8], from: usize, separator: u8) -> Self {
        let mut stops = Self {
            bytes,
            separator,
            block: from,
            bits: 0,
        };
        stops.bits = stops.block_bits();
        stops
    }

    /// The next stop, or `None` at the end of the text.
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.block += 64;
            if self.block >= self.bytes.len() {
                return None;
            }
            self.bits = self.block_bits();
        }
        let stop = self.block + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(stop)
    }

    fn block_bits(&self) -> u64 {
        let Some(block) = self.bytes.get(self.block..) else {
            return 0;
        };
        let Some(words) = block.first_chunk::<64>() else {
            let is_stop = |b: &u8| *b == self.separator || *b == b';' || *b == b'\n';
            return block
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, b)| is_stop(b))
                .fold(0, |bits, (at, _)| bits | 1 << at);
        };
        let mut bits = 0;
        for (k, word) in words.chunks_exact(8).enumerate() {
            let word = word
                .first_chunk::<8>()
                .map_or(0, |w| u64::from_le_bytes(*w));
            let found = equal_bytes(word, self.separator)
                | equal_bytes(word, b';')
                | equal_bytes(word, b'\n');
            bits |= gather_high_bits(found) << (8 * k);
        }
        bits
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of each byte of `word` that equals `byte`, exactly (the cheaper zero-byte
/// test can also mark a byte just after a match).
fn equal_bytes(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    !(((x & LOWS).wrapping_add(LOWS)) | x | LOWS)
}

/// The high bits of the eight bytes as the low eight bits (byte `k` to bit `k`): the
/// multiplication moves each to its place in the top byte without carries.
fn gather_high_bits(high_bits: u64) -> u64 {
    ((high_bits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Whether a byte is a visible ASCII character: never part of what `str::trim` removes.
fn visible(byte: u8) -> bool {
    (b'!'..=b'~').contains(&byte)
}

/// `start..end` less one space at each end, the usual ` > ` spacing, worked out without
/// branches (a loop over blanks mispredicts on most names: the first of a row has no leading
/// space, the others one). A name with more blanks keeps a blank edge, which sends it to
/// `str::trim`.
fn trim_one_space(bytes: &[u8], start: usize, end: usize) -> (usize, usize) {
    let space = |at: usize| bytes.get(at) == Some(&b' ');
    let first = start + usize::from((start < end) & space(start));
    let last = end - usize::from((end > first) & space(end.wrapping_sub(1)));
    (first, last)
}

/// The name as `str::trim` leaves it, or `None` when that is empty.
fn trimmed(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty()).then_some(name)
}

/// Powers of ten that are exact doubles: a mantissa below 2^53 divided by one of these is
/// rounded once, so the result is the correctly rounded decimal, which is what
/// `str::parse::<f64>` returns.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The largest mantissa whose conversion to a double is exact (2^53).
const EXACT_MANTISSA: u64 = 1 << 53;

/// Reads `[blanks] digits [. digits] [blanks]` at `at` and returns the number with the
/// position after it (the next `;`, newline or the end, or whatever else stopped it). Blanks
/// are spaces, tabs, form feeds and carriage returns, all of which `str::trim` removes.
/// `None` for anything else (signs, exponents, `inf`, `.5`, `5.`, more than 19 digits, a
/// mantissa past 2^53), which the careful parser then reads.
fn plain_number(bytes: &[u8], mut at: usize) -> Option<(f64, usize)> {
    let blank = |byte: Option<&u8>| matches!(byte, Some(b' ' | b'\t' | b'\r' | b'\x0c'));
    while blank(bytes.get(at)) {
        at += 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0;
    let mut fraction_digits = None;
    loop {
        match bytes.get(at) {
            Some(&digit @ b'0'..=b'9') => {
                // 19 digits never overflow a u64; longer numbers go to the careful parser.
                digits += 1;
                if digits > 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(digit - b'0');
                fraction_digits = fraction_digits.map(|n: usize| n + 1);
            }
            Some(b'.') if fraction_digits.is_none() && digits > 0 => fraction_digits = Some(0),
            _ => break,
        }
        at += 1;
    }
    while blank(bytes.get(at)) {
        at += 1;
    }
    let power = match fraction_digits {
        None if digits > 0 => 1.0,
        Some(n) if n > 0 => *EXACT_POWERS_OF_TEN.get(n)?,
        _ => return None,
    };
    if mantissa > EXACT_MANTISSA {
        return None;
    }
    Some((mantissa as f64 / power, at))
}
